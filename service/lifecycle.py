"""Clean shutdown of the long-running commands (``essc serve``, ``essc worker``, ``essc mock``).

The first SIGTERM or SIGINT asks the process to stop: the command stops accepting work, lets
what runs finish within a grace budget, releases what it still holds (see
:meth:`essc.service.runtime.Runtime.release_held`) and returns, so the process exits 0.
A second signal during the shutdown exits at once with ``128 + signal number``; a watchdog
ends a shutdown that overruns :data:`HARD_DEADLINE_S` (0 if what the process held was already
released, else 1), so an orchestrator never waits on a hung process.

The signal handler only records the signal (no locks, no I/O but ``os.write``): the main
thread polls for it, so a signal landing while the main thread holds a lock cannot deadlock.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any, NoReturn

from essc.core.masking import get_logger

log = get_logger("essc.service.lifecycle")

__all__ = ["GRACE_S", "HARD_DEADLINE_S", "AtMostEvery", "Shutdown", "leave", "listening",
           "quiet_queue_warnings", "serve_until_signal"]

#: Default seconds that work in flight (requests, queue tasks) gets to finish after a signal.
GRACE_S = 6.0
#: pause after a turn of the server's loop, per open socket (see serve_until_signal); shorter
#: pauses (fewer than ~100 connections) are not taken
LOOP_PAUSE_PER_SOCKET_S = 4e-6
LOOP_PAUSE_MIN_S = 0.0004
#: Seconds after the first signal at which the process is ended whatever it is doing.
HARD_DEADLINE_S = 9.5
#: Signals that ask for a clean shutdown.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_now(code: int, message: str) -> None:
    """Leave at once (from a signal handler or the watchdog): no locks taken, nothing joined."""
    try:
        os.write(2, f"{message}\n".encode())
    except OSError:  # pragma: no cover - stderr closed
        pass
    os._exit(code)


def leave(code: int = 0) -> NoReturn:
    """Exit now, output flushed, without the interpreter's finalization: for a shutdown that
    abandoned threads at the grace (still waiting on a city), around which finalization took
    seconds. What they held is released before this is called."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # pragma: no cover - closed
            pass
    os._exit(code)


class Shutdown:
    """The shutdown request of this process: :meth:`install` the handlers (main thread), then
    :meth:`wait` (or poll :attr:`requested`), then :meth:`begin` the shutdown."""

    def __init__(self, hard_deadline_s: float = HARD_DEADLINE_S) -> None:
        self.hard_deadline_s = hard_deadline_s
        self.signum: int | None = None
        self.started_at: float | None = None
        self.released = False  #: what the process held is released: the watchdog may exit 0
        self._watchdog: threading.Timer | None = None

    def install(self, signals: tuple[int, ...] = SIGNALS) -> Shutdown:
        for signum in signals:
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            _exit_now(128 + signum, f"{signal.Signals(signum).name} again during the shutdown: exiting now")
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def wait(self, poll_s: float = 0.1) -> int:
        """Block until a signal asks to stop; returns its number."""
        while self.signum is None:
            time.sleep(poll_s)
        return self.signum

    def begin(self) -> None:
        """Start the clock of the shutdown (and its watchdog); idempotent."""
        if self.started_at is not None:
            return
        self.started_at = time.monotonic()
        name = signal.Signals(self.signum).name if self.signum else "stop"
        log.warning("%s received: shutting down (grace budget, then exit)", name)
        self._watchdog = threading.Timer(self.hard_deadline_s, self._overrun)
        self._watchdog.daemon = True
        self._watchdog.start()

    def remaining(self, budget: float) -> float:
        """Seconds left of ``budget`` counted from :meth:`begin`."""
        if self.started_at is None:
            return budget
        return max(0.0, budget - (time.monotonic() - self.started_at))

    def elapsed(self) -> float:
        """Seconds since :meth:`begin` (0 before)."""
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def done(self) -> None:
        """The shutdown finished in time: cancel the watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _overrun(self) -> None:
        sys.stderr.flush()
        _exit_now(0 if self.released else 1,
                  f"shutdown overran {self.hard_deadline_s:g}s: exiting now "
                  f"({'leases released' if self.released else 'leases NOT released'})")


class AtMostEvery(logging.Filter):
    """Let one record through per ``interval_s`` (the others are counted, and the next record
    that passes says how many were left out). For waitress's "Task queue depth is N" warning,
    written for every request that waits for an API thread: under a burst it cost ~8% of the
    process's CPU (profiled) and said the same thing thousands of times."""

    def __init__(self, interval_s: float = 10.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval_s, self.clock = interval_s, clock
        self._next = 0.0
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        if now < self._next:
            self.left_out += 1
            return False
        self._next = now + self.interval_s
        if self.left_out:
            record.msg = f"{record.getMessage()} ({self.left_out} such warnings left out)"
            record.args = None
            self.left_out = 0
        return True


def quiet_queue_warnings(interval_s: float = 10.0) -> None:
    """Waitress's task-queue warnings at most once per ``interval_s`` (idempotent)."""
    logger = logging.getLogger("waitress.queue")
    if not any(isinstance(f, AtMostEvery) for f in logger.filters):
        logger.addFilter(AtMostEvery(interval_s))


def listening(server: Any) -> list[str]:
    """``host:port`` of every socket a ``waitress.create_server(...)`` result listens on."""
    pairs = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [f"[{h}]:{p}" if ":" in str(h) else f"{h}:{p}" for h, p in pairs]


def serve_until_signal(server: Any, shutdown: Shutdown, *, grace_s: float = GRACE_S, on_signal: Any = None,
                       poll_s: float = 0.2) -> bool:
    """Run a waitress server (``waitress.create_server(...)``) in this thread until ``shutdown``
    is requested; then close the listening socket (new connections are refused), call
    ``on_signal()``, close idle connections and let the requests in flight finish and their
    answers go out, for up to ``grace_s`` seconds. Closes every socket of the server.

    Returns True when every request in flight was answered."""
    from waitress import wasyncore
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer

    # the socket map of the server (one listener) or of all of them (MultiSocketServer, e.g.
    # "localhost" on IPv4 and IPv6); create_server never uses wasyncore's global map
    sockets = server._map if isinstance(server, BaseWSGIServer) else server.map  # type: ignore[attr-defined]
    use_poll = server.adj.asyncore_use_poll
    while not shutdown.requested:
        started = time.monotonic()
        wasyncore.loop(timeout=poll_s, map=sockets, use_poll=use_poll, count=1)
        # each turn of waitress's loop asks every open connection whether it is readable and
        # writable (~0.75 us each): with hundreds of keep-alive channels, turning once per event
        # spent more CPU on the idle ones than on the requests. Let events gather instead, so a
        # turn costs at most about half of the loop's time (+ at most ~2 ms per event at 500).
        pause = len(sockets) * LOOP_PAUSE_PER_SOCKET_S - (time.monotonic() - started)
        if pause > LOOP_PAUSE_MIN_S:
            time.sleep(pause)
    shutdown.begin()
    # the listening sockets only (BaseWSGIServer.close would also close the trigger that wakes
    # the loop when an answer is ready); safe here: the loop runs in this thread, between polls
    for listener in [obj for obj in sockets.values() if isinstance(obj, BaseWSGIServer)]:
        wasyncore.dispatcher.close(listener)
    if on_signal is not None:
        on_signal()
    dispatcher = server.task_dispatcher
    finished = False
    while True:
        busy = 0
        for channel in [obj for obj in list(sockets.values()) if isinstance(obj, HTTPChannel)]:
            if channel.requests or channel.total_outbufs_len:
                busy += 1  # a request runs or its answer is still being sent
            elif not channel.will_close:
                channel.will_close = True  # idle (keep-alive): closed at the next poll
        if not busy and not dispatcher.queue:
            finished = True
            break
        if shutdown.remaining(grace_s) <= 0:
            log.warning("%d connection(s) still busy after %gs: closing them", busy, grace_s)
            break
        wasyncore.loop(timeout=0.05, map=sockets, use_poll=use_poll, count=1)
    dispatcher.shutdown(cancel_pending=True, timeout=min(0.5, shutdown.remaining(grace_s) + 0.1))
    wasyncore.close_all(sockets, ignore_all=True)
    return finished
