"""``essc operator-password`` and ``essc launch-url``: helpers for the console and the pages."""
from __future__ import annotations

import sys

import click


@click.command("operator-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from standard input (one line).")
def operator_password_cmd(from_stdin: bool) -> None:
    """Print the password_hash of a console operator (werkzeug, scrypt) for the operators file."""
    from werkzeug.security import generate_password_hash

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        raise click.BadParameter("an operator password needs at least 12 characters", param_hint="password")
    click.echo(generate_password_hash(password))


@click.command("launch-url")
@click.option("--base", "base_url", default="http://127.0.0.1:8080", show_default=True,
              help="Where essc serve answers.")
@click.option("--channel", default="demo", show_default=True, help="A channel of the channels file.")
@click.option("--id-number", required=True, help="The citizen's ID number (sealed into the URL, never shown).")
@click.option("--name", required=True, help="The citizen's name (sealed into the URL).")
@click.option("--return-url", required=True, help="Where the citizen goes back to (one of the channel's return_urls).")
@click.option("--ttl", "ttl_s", default=300, show_default=True, type=click.IntRange(1, 600),
              help="Seconds it is valid.")
def launch_url_cmd(base_url: str, channel: str, id_number: str, name: str, return_url: str, ttl_s: int) -> None:
    """Print a signed launch URL of the citizen's pages, as the channel's backend makes it
    (docs/launch.md), with the channel's hmac_secret from the channels file (ESSC_CHANNELS_FILE)."""
    from essc.service.channels import Channels
    from essc.service.config import ServiceConfig
    from essc.service.pages.launch import build_launch_url, return_url_allowed

    found = Channels.load(ServiceConfig.from_env().channels_file).channels.get(channel)
    if found is None or not found.hmac_secret:
        raise click.BadParameter(f"channel {channel!r} has no hmac_secret in the channels file", param_hint="--channel")
    if not return_url_allowed(return_url, found.return_urls):
        raise click.BadParameter(f"not under the channel's return_urls {list(found.return_urls)}",
                                 param_hint="--return-url")
    click.echo(build_launch_url(base_url, channel, found.hmac_secret, id_number=id_number, name=name,
                                return_url=return_url, ttl_s=ttl_s))
