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
@click.option("--grace", "grace_s", default=5.0, show_default=True, type=click.FloatRange(0, 8),
              help="Seconds that requests in flight get after SIGTERM/SIGINT (a second signal exits at once).")
def mock_cmd(host: str, port: int, seed: int | None, clock: str | None, threads: int,
             citizens_per_city: int | None, grace_s: float) -> None:
    """Serve the mock city systems (all dialects, admin API under /__admin/).

    SIGTERM or SIGINT: hung requests are released, requests in flight get ``--grace`` seconds
    to be answered, queued ones are dropped, and the process exits 0."""
    from essc.mockserver import create_app
    from essc.mockserver.serve import start_in_thread
    from essc.service.lifecycle import Shutdown

    config = {}
    if seed is not None:
        config["SEED"] = seed
    if clock:
        config["CLOCK_MODE"] = clock
    if citizens_per_city:
        config["CITIZENS_PER_CITY"] = citizens_per_city
    shutdown = Shutdown().install()
    server = start_in_thread(create_app(config), host, port, threads=threads)
    click.echo(f"mock city systems on {server.url} (admin: /__admin/cities)", err=True)
    shutdown.wait()
    shutdown.begin()
    shutdown.released = True  # the mock holds nothing another process would wait for
    server.stop(timeout=grace_s)
    shutdown.done()
    click.echo(f"mock city systems stopped in {shutdown.elapsed():.2f}s", err=True)
