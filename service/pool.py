"""Where the flow's city calls run, and how the API waits for them.

City systems answer in hundreds of milliseconds to seconds. A request thread that runs the
whole round trip itself holds the thread for all of it, and a few slow cities take every
thread. So the flow's city steps run in :class:`FlowPool`, a bounded pool of threads that
only wait on sockets (sized by ``ServiceConfig.flow_threads``); the API hands the step over,
waits at most ``answer_budget_s`` for it and answers with where the activation stands
(202 if the city is slower than the budget: the step goes on, the channel long-polls
``GET /v1/activations/{id}?wait=S`` or receives its callback).

Admission is bounded (``max_in_flight`` steps in the pool): beyond it a new submission or
verification is refused with 503 + ``Retry-After`` before anything is recorded, instead of
queueing without bound. What was accepted always runs.

:class:`Changes` lets a long-poll wait for an activation's next transition (an event in this
process, a cheap re-read for transitions made by other processes).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from essc.core.masking import get_logger

from .errors import ServiceBusy

log = get_logger("essc.service.pool")


class FlowPool:
    def __init__(self, threads: int, max_in_flight: int) -> None:
        self.threads, self.max_in_flight = threads, max_in_flight
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="essc-flow")
        self._lock = threading.Condition()
        self._in_flight = 0
        self.refused = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def check(self) -> None:
        """Refuse new work (503, Retry-After) when the pool is full; nothing is recorded yet."""
        if self._in_flight >= self.max_in_flight:
            with self._lock:
                self.refused += 1
            raise ServiceBusy(f"{self._in_flight} city steps in flight (limit {self.max_in_flight})",
                              retry_after=1.0)

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in the pool. Never refuses: call :meth:`check` before accepting."""
        with self._lock:
            self._in_flight += 1

        def task() -> Any:
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._lock.notify_all()

        return self._executor.submit(task)

    def run_when_free(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Like :meth:`run`, but first wait until a pool thread is free: a queue worker takes a
        task off the shared queue only when this process can start it (another process with
        free threads takes the rest)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight < self.threads)
        return self.run(fn, *args)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no step is in flight (True), or ``timeout_s`` passed (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._in_flight, timeout=max(timeout_s, 0.0))

    def shutdown(self, wait: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


def answer_within(future: Future[Any], budget_s: float) -> tuple[bool, Any]:
    """``(True, result)`` if ``future`` finishes within ``budget_s`` (its exception re-raised),
    else ``(False, None)``: the step goes on in the pool."""
    try:
        return True, future.result(timeout=budget_s)
    except TimeoutError:
        return False, None


#: ``callback`` of a change whose store did not read the activation's callback
UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()
Listener = Callable[[str, "str | None", "dict | None", Any], None]


class Changes:
    """Transitions of activations in this process, for long-polls to wait on. A transition wakes
    the waiters of its own activation only (one event each), never every long-poll."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: dict[str, int] = {}
        self._waiters: dict[str, list[threading.Event]] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(act_id, status, act, callback)`` after every transition made in this
        process: ``act`` is the activation after it (None when not at hand), ``callback`` the
        last announcement of its callback (``''`` none yet; None: it has no callback; UNKNOWN:
        not read)."""
        self._listeners.append(listener)

    def changed(self, act_id: str, status: str | None = None, *, act: dict | None = None,
                callback: Any = UNKNOWN) -> None:
        with self._lock:
            self._version[act_id] = self._version.get(act_id, 0) + 1
            if len(self._version) > 100_000:  # keep it bounded: waiters re-read the row anyway
                self._version.clear()
            waiters = self._waiters.pop(act_id, ())
        for event in waiters:
            event.set()
        for listener in self._listeners:
            try:
                listener(act_id, status, act, callback)
            except Exception:  # a listener must not break the transition that was made
                log.exception("activation %s: a change listener failed", act_id)

    def touched(self, act_id: str) -> None:
        """The activation's lease changed (released) but not its state: wake its long-polls, which
        look again (listeners are not called)."""
        with self._lock:
            self._version[act_id] = self._version.get(act_id, 0) + 1
            waiters = self._waiters.pop(act_id, ())
        for event in waiters:
            event.set()

    def version(self, act_id: str) -> int:
        return self._version.get(act_id, 0)

    def wait(self, act_id: str, seen: int, timeout_s: float) -> None:
        """Return when ``act_id`` changed after version ``seen``, or after ``timeout_s``."""
        event = threading.Event()
        with self._lock:
            if self._version.get(act_id, 0) != seen:
                return
            self._waiters.setdefault(act_id, []).append(event)
        if event.wait(max(timeout_s, 0.0)):
            return
        with self._lock:  # timed out: leave no event behind
            waiters = self._waiters.get(act_id)
            if waiters is not None and event in waiters:
                waiters.remove(event)
                if not waiters:
                    del self._waiters[act_id]
