"""Run the mock with waitress: :func:`serve` (blocking, for ``essc mock``) or
:func:`start_in_thread` (an ephemeral port in a background thread, for tests).

Every request runs in its own waitress worker thread, so a hanging or slow request never
blocks the others (as long as fewer than ``threads`` requests hang at once).

waitress reads a whole request body before the app runs, spilling bodies above 512 KiB to a
temporary file (so a large body costs disk, not memory); the app then refuses bodies above
``MAX_BODY_BYTES`` with the dialect's error. waitress itself cuts bodies above
:func:`server_body_ceiling` (413, plain text) so that a huge upload cannot fill the disk.
"""
from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server

from .state import STATE_KEY

__all__ = ["serve", "start_in_thread", "server_body_ceiling", "RunningServer"]

#: waitress settings shared by both ways of running.
_WAITRESS = {"ident": "essc-mock", "asyncore_use_poll": True, "connection_limit": 1000, "channel_timeout": 120}
#: The least body size that waitress cuts by itself (bodies the app refuses get its answer).
SERVER_CEILING_MIN = 64 * 1024 * 1024


def server_body_ceiling(app: Flask) -> int:
    """The body size above which waitress answers 413 itself: far above the app's limit."""
    return max(SERVER_CEILING_MIN, 4 * int(app.config["MAX_BODY_BYTES"]))


def _settings(app: Flask) -> dict[str, Any]:
    return {**_WAITRESS, "max_request_body_size": server_body_ceiling(app)}


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8765, threads: int = 48) -> None:
    """Serve ``app`` with waitress until interrupted (blocking)."""
    server = create_server(app, host=host, port=port, threads=threads, **_settings(app))
    server.print_listen("essc mock serving on http://{}:{}")
    server.run()


class RunningServer:
    """A mock running in a background thread; :meth:`stop` ends it (idempotent)."""

    def __init__(self, app: Flask, host: str, port: int, threads: int) -> None:
        self.app = app
        self._map: dict[int, Any] = {}
        self._server = create_server(app, host=host, port=port, threads=threads, map=self._map, **_settings(app))
        self.host = host
        self.port = int(self._server.effective_port)
        self.url = f"http://{host}:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"essc-mock:{self.port}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)

    def stop(self, timeout: float = 5.0) -> None:
        """Release hung requests, let the running ones finish (their answers still go out
        through the live loop), then stop the loop and close every socket."""
        if self._stopping.is_set():
            return
        state = self.app.extensions.get(STATE_KEY)
        if state is not None:
            state.release_hangs()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        self._stopping.set()
        self._server.pull_trigger()  # wake the poll loop now (the trigger is still open)
        self._thread.join(timeout)
        # close the sockets only once the loop is gone: closing them from the loop thread
        # raced with pull_trigger() above (a closed or, worse, reused file descriptor)
        wasyncore.close_all(self._map)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}>"


def start_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 32) -> RunningServer:
    """Serve ``app`` on ``host:port`` (0 = an ephemeral port) in a daemon thread; ``.url``, ``.stop()``."""
    return RunningServer(app, host, port, threads)
