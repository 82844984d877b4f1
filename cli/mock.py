"""``essc mock``: run the mock city systems on a production WSGI server."""
from __future__ import annotations

import click


@click.command("mock")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--seed", default=None, type=int, help="Seed of the synthetic citizens and faults.")
@click.option("--clock", type=click.Choice(["realtime", "frozen"]), default=None, help="Virtual clock mode.")
@click.option("--threads", default=48, show_default=True, type=int, help="Server threads.")
@click.option("--citizens-per-city", default=None, type=int, help="Synthetic citizens per city (default 12).")
def mock_cmd(host: str, port: int, seed: int | None, clock: str | None, threads: int,
             citizens_per_city: int | None) -> None:
    """Serve the mock city systems (all dialects, admin API under /__admin/)."""
    from essc.mockserver import create_app
    from essc.mockserver.serve import serve

    config = {}
    if seed is not None:
        config["SEED"] = seed
    if clock:
        config["CLOCK_MODE"] = clock
    if citizens_per_city:
        config["CITIZENS_PER_CITY"] = citizens_per_city
    click.echo(f"mock city systems on http://{host}:{port} (admin: /__admin/cities)", err=True)
    serve(create_app(config), host, port, threads=threads)
