"""``essc serve``, ``essc worker``, ``essc activate`` and ``essc demo``: the activation service."""
from __future__ import annotations

import os
import signal
import socket
import sys

import click

GRACE_HELP = ("Seconds that work in flight gets after SIGTERM/SIGINT before what is still held is "
              "released (the process exits within 10 s; a second signal exits at once).")


@click.command("demo")
@click.option("--wait", "wait_s", default=30.0, show_default=True, help="Seconds to wait for each scene.")
def demo_cmd(wait_s: float) -> None:
    """A scripted tour on embedded defaults (SQLite, local queue, in-process mock)."""
    from rich.console import Console

    from essc.service import demo

    console = Console()
    if not console.is_terminal:  # piped or logged: rich would assume 80 columns
        console = Console(width=120)
    ok = demo.run(console, wait_s=wait_s)
    sys.exit(0 if ok else 1)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--threads", default=None, type=int,
              help="API threads per process (default: ESSC_API_THREADS, else 128; each answer holds one at "
                   "most ESSC_ANSWER_BUDGET_S, a long-poll at most ESSC_MAX_WAIT_S).")
@click.option("--processes", default=None, type=click.IntRange(1, 64),
              help="API processes sharing the port (default: ESSC_API_PROCESSES, else one per core up to 4; "
                   "1 while the mock city systems run in-process).")
@click.option("--grace", "grace_s", default=6.0, show_default=True, type=click.FloatRange(0, 8), help=GRACE_HELP)
def serve_cmd(host: str, port: int, threads: int | None, processes: int | None, grace_s: float) -> None:
    """Run the activation API (waitress) with queue workers, SQLite by default, and the mock
    city systems in-process unless a real city endpoint is configured.

    With several processes (one per core by default) a supervisor binds the port and forks the
    API processes, which share it and the database (essc.service.processes).

    SIGTERM or SIGINT: new connections are refused, requests in flight and queue tasks get
    ``--grace`` seconds to finish, then what is still held is released and the process exits 0."""
    from essc.core.settings import Settings
    from essc.service.config import ServiceConfig
    from essc.service.local import real_endpoint_configured
    from essc.service.processes import default_processes

    config, settings = _config(ServiceConfig.from_env), Settings.from_env()
    wanted = processes or config.api_processes or None
    count = wanted or default_processes()
    if count > 1 and not hasattr(os, "fork"):
        raise click.UsageError(f"--processes {count} needs os.fork (Linux, macOS): run one process per port here")
    if count > 1 and not real_endpoint_configured(settings):
        if wanted:
            raise click.UsageError(f"--processes {count} needs real city endpoints (ESSC_CITY_BASE_URL or a "
                                   "config file): the in-process mock city systems live in one process")
        count = 1
    if count == 1:
        sys.exit(_serve_api(config, settings, host=host, port=port, threads=threads, grace_s=grace_s))
    sys.exit(_supervise(config, settings, count, host=host, port=port, threads=threads, grace_s=grace_s))


def _supervise(config, settings, count: int, *, host: str, port: int, threads: int | None, grace_s: float) -> int:
    """``count`` API processes on one socket, under a supervisor (essc.service.processes)."""
    import shutil
    import tempfile

    # before prometheus_client is imported: /metrics adds up the counters of every process
    metrics_dir = tempfile.mkdtemp(prefix="essc-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _fork_api(config, settings, count, host=host, port=port, threads=threads, grace_s=grace_s)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _fork_api(config, settings, count: int, *, host: str, port: int, threads: int | None, grace_s: float) -> int:
    from essc.service.api import create_app
    from essc.service.processes import SharedInFlight, Supervisor, bind, listener, pin_cpu
    from essc.service.runtime import Runtime

    # made once, before the fork: the children never race to create the secret, the signing key
    # or the tables (and share the imported code with the parent, copy on write)
    runtime = Runtime(config, settings=settings)
    create_app(runtime)
    runtime.close()
    runtime.store.close()
    sock = bind(host, port)
    address = sock.getsockname()
    where = f"[{address[0]}]:{address[1]}" if sock.family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
    click.echo(f"activation API on http://{where} ({count} processes, database "
               f"{runtime.store.url.split('?')[0]})", err=True)
    settings.bulkhead_share = count
    config.api_processes = count  # what each process shares (e.g. the failed-signature throttle)

    # every city a plugin serves shares its bulkhead over the processes (a city loaded later: ceil(limit / count))
    shared = SharedInFlight([info.code for info in runtime.registry.cities()], count)

    def child(index: int) -> int:
        cpu = pin_cpu(index, count, config.api_pin_cpus)  # before any thread starts
        settings.bulkhead_peers = shared.of_process(index)
        return _serve_api(config, settings, sock=listener(sock), threads=threads, grace_s=grace_s, index=index,
                          cpu=cpu)

    code = Supervisor(count, child, on_death=shared.clear).run()
    click.echo(f"activation API stopped ({count} processes, exit {code})", err=True)
    return code


def _serve_api(config, settings, *, host: str = "", port: int = 0, sock=None, threads: int | None,
               grace_s: float, index: int | None = None, cpu: int | None = None) -> int:
    """One API process until SIGTERM/SIGINT: on ``host``:``port``, or on the supervisor's ``sock``
    (then ``index`` names it, ``cpu`` the CPU it is held to, and it also stops when the supervisor
    is gone)."""
    from waitress.server import create_server

    from essc.service.api import create_app
    from essc.service.lifecycle import Shutdown, leave, listening, quiet_queue_warnings, serve_until_signal
    from essc.service.local import local_runtime
    from essc.service.processes import STOP_SIGNAL, orphan_watch

    if sock is None:
        shutdown = Shutdown().install()
    else:  # the supervisor's orders only (essc.service.processes)
        shutdown = Shutdown().install((STOP_SIGNAL,))
        orphan_watch(lambda: setattr(shutdown, "signum", shutdown.signum or signal.SIGTERM))
    quiet_queue_warnings()
    name = "activation API" if index is None else f"activation API process {index} (pid {os.getpid()})"
    with local_runtime(config, settings=settings) as (runtime, mock_url):
        where = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
        server = create_server(create_app(runtime, {"PAGES_DEMO_HINTS": bool(mock_url)}),
                               threads=threads or runtime.config.api_threads,
                               connection_limit=runtime.config.api_connections, **where)
        if mock_url:
            click.echo(f"mock city systems in-process at {mock_url}", err=True)
        if sock is None:
            click.echo(f"{name} on {', '.join('http://' + a for a in listening(server))} "
                       f"(database {runtime.store.url.split('?')[0]})", err=True)
        else:
            click.echo(f"{name} listening{'' if cpu is None else f' (CPU {cpu})'}", err=True)
        answered = serve_until_signal(server, shutdown, grace_s=grace_s, on_signal=runtime.stop_taking_work)
        workers_done = runtime.stop_workers(timeout=max(shutdown.remaining(grace_s), 0.1))
        released = runtime.release_held()
        shutdown.released = True
        # leaving local_runtime closes the database and stops the in-process mock
    shutdown.done()
    click.echo(f"{name} stopped in {shutdown.elapsed():.2f}s (requests "
               f"{'all answered' if answered else 'cut at the grace'}, workers "
               f"{'finished' if workers_done else 'cut at the grace'}, {len(released)} released)", err=True)
    if not (answered and workers_done):
        leave(0)  # threads were abandoned inside city calls: do not finalize around them
    return 0


def _config(load):
    """The service's configuration from the environment; a value it cannot take ends the command
    with a message naming the variable (exit 1), not a traceback."""
    try:
        return load()
    except ValueError as err:
        raise click.ClickException(f"configuration: {err}") from None


@click.command("worker")
@click.option("--workers", default=2, show_default=True, type=int, help="Worker threads.")
@click.option("--grace", "grace_s", default=6.0, show_default=True, type=click.FloatRange(0, 8), help=GRACE_HELP)
def worker_cmd(workers: int, grace_s: float) -> None:
    """Run queue workers only (scale-out: point ESSC_DATABASE_URL / ESSC_QUEUE_URL at servers).

    SIGTERM or SIGINT: no new task is taken, running ones get ``--grace`` seconds, then the
    leases still held are released (the activations go back to the queue) and it exits 0."""
    from essc.service.config import ServiceConfig
    from essc.service.lifecycle import Shutdown, leave
    from essc.service.runtime import Runtime

    config = _config(ServiceConfig.from_env)
    shutdown = Shutdown().install()
    runtime = Runtime(config)
    runtime.start_workers(workers)
    click.echo(f"essc worker: {workers} thread(s) on {runtime.config.resolved_queue_url().split('@')[-1]}", err=True)
    shutdown.wait()
    shutdown.begin()
    try:
        workers_done = runtime.stop_workers(timeout=grace_s)
        released = runtime.release_held()
        shutdown.released = True
    finally:
        runtime.store.close()
    shutdown.done()
    click.echo(f"essc worker: stopped in {shutdown.elapsed():.2f}s (tasks "
               f"{'finished' if workers_done else 'cut at the grace'}, {len(released)} released)", err=True)
    if not workers_done:
        leave(0)  # threads were abandoned inside city calls: do not finalize around them


@click.command("activate")
@click.option("--city", required=True, help="City code or name (杭州, hangzhou, hz, 330100).")
@click.option("--id-number", help="Citizen ID number (default: a synthetic citizen of the mock).")
@click.option("--name", help="Citizen name in Chinese characters.")
@click.option("--scenario", default="normal", show_default=True,
              help="With the mock and no --id-number: which synthetic citizen to use.")
@click.option("--sms-code", default=None, help="SMS code (the mock accepts 123456).")
@click.option("--password", default=None, help="e-SSC password instead of an SMS code (mock: 147258).")
@click.option("--face-token", default="live-cli", show_default=True, help="Token of a passed liveness check.")
@click.option("--wait", "wait_s", default=60.0, show_default=True, help="Seconds to wait while pending.")
def activate_cmd(city, id_number, name, scenario, sms_code, password, face_token, wait_s) -> None:
    """Walk one activation with a progress display, ending in the credential or a clear failure."""
    from rich.console import Console

    from essc.core.errors import EsscError
    from essc.service import states
    from essc.service.cli_flow import resolve_city, walk
    from essc.service.config import ServiceConfig
    from essc.service.local import local_runtime

    console = Console()
    with local_runtime(_config(ServiceConfig.from_env)) as (runtime, mock_url):
        try:
            code = resolve_city(runtime.registry, city)
        except EsscError as err:
            raise click.BadParameter(err.message, param_hint="--city") from None
        if not id_number:
            if not mock_url:
                raise click.UsageError("--id-number and --name are required with real city endpoints")
            if runtime.registry.served(code) is None:  # no plugin, no mock city: any synthetic citizen
                import datetime

                from essc.core.idnumber import make_id_number

                id_number, name = make_id_number(code, datetime.date(1990, 3, 7), 17), "张三"
            else:
                from essc.mockserver.client import MockAdmin

                citizen = MockAdmin(mock_url).citizen(code, scenario)
                id_number, name = citizen["id_number"], citizen["name"]
        elif not name:
            raise click.UsageError("--name is required with --id-number")
        if not sms_code and not password:
            sms_code = "123456" if mock_url else click.prompt("SMS code", hide_input=True)
        try:
            act = walk(console, runtime, code, id_number, name, face_token, sms_code, password, wait_s)
        except EsscError as err:
            console.print(f"[red]{err.code}[/]: {err.message}")
            sys.exit(2)
    sys.exit(0 if act["status"] in (states.ACTIVATED,) else 1)
