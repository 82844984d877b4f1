"""Several API processes behind one port: ``essc serve --processes N``.

One Python process runs its Python code on one core at a time (the GIL): measured on a 2-core
machine with cities answering in 300 ms, one ``essc serve`` used 0.87 of a core and reached
~111 activations/s while the rest of the machine idled; two processes on the same SQLite
database reached ~173/s (bench/activation_bench.py, README "Slow cities").

:class:`Supervisor` - the parent - reserves the port (:func:`bind`), then forks ``N`` children
that each run the whole service (waitress, flow pool, queue workers) on a listening socket of
their own on that port (:func:`listener`, ``SO_REUSEPORT``): the kernel spreads new
connections over them evenly (a keep-alive connection stays with the child that accepted it).
One socket shared by all children (gunicorn's pre-fork model, the fallback where
``SO_REUSEPORT`` is missing) lets whichever child wakes first take every connection: under a
light load one child took all of them while the other idled.

What the children share, so that any of them may answer any request: the database
(activations, leases, nonces of signatures, codes, sessions; SQLite in WAL mode on embedded
defaults, PostgreSQL on the scale-out path: SQLite's writers queue on a lock file shared by the
children, service/writers.py), the queue, the data folder (secret key, OIDC
signing key: made by the parent before the fork, so children never race to create them). A
long-poll answered by one child sees a transition made by another by re-reading the row.

Each city's bulkhead is shared through memory (:class:`SharedInFlight`, made before the fork
for every city a plugin serves): each child counts its own calls in flight and admits one while
the sum over all children is below the city's limit, so the city never sees more than its
manifest allows in all, whichever child the load lands on (a city loaded later guards
``ceil(limit / N)`` slots in each child). ``/metrics`` adds up the counters of every child
(prometheus_client's multiprocess mode; the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``).
Each city's circuit breaker is per child, but an open one is shared the same way: a child that
opens it writes until when, and the others stop calling the city too until then, each sending
its own half-open probe afterwards (a city loaded later has a breaker per child). What each
child keeps for itself: its breakers' failure counts and metrics (``essc_city_*`` gauges are
those of the child that answered the scrape) and, without Redis, the throttle of failed
signatures (each child counts its own failures against ``ceil(limit / N)``).

CPUs: when the children are at least as many as the CPUs the service may run on (by default:
one per core), each holds itself to one of them before it starts a thread (:func:`pin_cpu`,
``ServiceConfig.api_pin_cpus``: auto, on, off; the threads it starts keep the CPU). A Python
process runs Python on one core at a time (the GIL); left free, its threads - waitress's, the
flow pool's - handed the GIL and their work to each other across the cores, and each such
hand-over woke a thread on the other core: on a 2-core virtual machine with cities answering in
300 ms, the service's CPU per activation fell from 5.9-6.4 to 5.0-5.4 ms when each of the two
processes kept one core, and the slow-city bench went from 169-178 to 180-212 activations/s
(bench/activation_bench.py, 6 alternating pairs); on PostgreSQL 8.7 -> 6.4 ms, 112 -> 144/s.
The kernel still moves every other process (the database server, a mock) to whichever core is
free. With fewer children than CPUs (a large machine, a node shared with other services) ``auto``
leaves them to the kernel too: a child held to a CPU another program keeps busy could not leave it.

Signals: SIGTERM or SIGINT to the parent stops every child the way ``essc serve`` stops (no new
connections, requests in flight and queue tasks get the grace, what is held is released); a
second signal ends them at once. The children take their orders from the parent only
(:data:`STOP_SIGNAL`, SIGUSR1: the first asks them to stop, the second ends them) and ignore
SIGTERM and SIGINT: a terminal's Ctrl-C, or an init system that signals every process of the
service at once, reaches them too and must not count as a second signal. They also stop when
the parent is gone (killed). A child that dies while the service runs is started again (after 1 s, doubling
up to 30 s while children keep dying within 10 s of their start).
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import cast

from essc.core.masking import get_logger

from .lifecycle import HARD_DEADLINE_S, SIGNALS

log = get_logger("essc.service.processes")

__all__ = ["STOP_SIGNAL", "SharedInFlight", "Supervisor", "bind", "cpu_of", "default_processes", "listener",
           "orphan_watch", "pin_cpu"]

#: what the parent sends its children: the first asks them to stop, the second ends them now
STOP_SIGNAL = signal.SIGUSR1

#: a child that ran at least this long before dying restarts after the shortest pause
STABLE_S = 10.0
RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0


def default_processes(cpus: int | None = None) -> int:
    """``essc serve``'s processes when none are asked for: one per core, at most 4 (each holds a
    database pool and ~100-170 MB; beyond 4, run more machines)."""
    if not hasattr(os, "fork"):  # Windows: one process
        return 1
    return max(1, min(4, cpus if cpus is not None else (os.cpu_count() or 1)))


REUSEPORT = hasattr(socket, "SO_REUSEPORT")
BACKLOG = 2048


def cpu_of(index: int, processes: int, allowed: Iterable[int]) -> int:
    """The CPU of API process ``index`` of ``processes``: spread over the ``allowed`` CPUs (2 of
    4 get the 1st and the 3rd, so that two neighbours that may share a core are not both taken),
    several per CPU when there are more processes than CPUs."""
    cpus = sorted(allowed)
    return cpus[(index % processes) * len(cpus) // processes]


def pin_cpu(index: int, processes: int, setting: str = "auto") -> int | None:
    """Hold this process to its CPU (:func:`cpu_of`) - call it in the new child before it starts a
    thread: the calling thread is held, and the threads it starts afterwards. ``setting``
    (``ServiceConfig.api_pin_cpus``): ``auto`` holds it when the processes are at least as many as
    the CPUs allowed (the service has them to itself: with fewer, as on a large machine or a node
    shared with others, the kernel had better move each to whichever CPU is free), ``on`` always,
    ``off`` never. Returns the CPU, or None when not held (also where there is nothing to choose:
    one CPU allowed, one process, or no ``os.sched_setaffinity``: not Linux; and when the system
    refuses it, e.g. a sandbox: then the process runs where the kernel puts it, with a warning)."""
    if setting == "off" or processes < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2 or (setting == "auto" and processes < len(allowed)):
        return None
    cpu = cpu_of(index, processes, allowed)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as err:
        log.warning("API process %d could not be held to CPU %d (%s): the kernel places it", index, cpu, err)
        return None
    return cpu


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if REUSEPORT:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def bind(host: str, port: int) -> socket.socket:
    """The parent's hold on the port (port 0: a free one, then kept for every child). With
    ``SO_REUSEPORT`` it is bound but does not listen (the children's sockets do); without it,
    it is the listening socket the children share."""
    sock = _socket(host, port)
    if not REUSEPORT:
        sock.listen(BACKLOG)
        sock.setblocking(False)
    return sock


def listener(held: socket.socket) -> socket.socket:
    """In a child: its own listening socket on the port ``held`` by the parent (the shared one
    itself without ``SO_REUSEPORT``)."""
    if not REUSEPORT:
        return held
    host, port = held.getsockname()[:2]
    sock = _socket(host, port)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def orphan_watch(on_orphaned: Callable[[], None], poll_s: float = 0.5) -> threading.Thread:
    """In a child: call ``on_orphaned()`` once the parent is gone (killed: nobody will send
    :data:`STOP_SIGNAL` any more)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        on_orphaned()

    thread = threading.Thread(target=watch, name="essc-orphan-watch", daemon=True)
    thread.start()
    return thread


class SharedInFlight:
    """Calls in flight to each city, one count per API process, and until when a process opened
    the city's circuit breaker, in memory the processes share (an anonymous shared mapping made by
    the parent before the fork): the :class:`~essc.core.resilience.Peers` of each child's guards.
    A child writes only its own counts (under its guard's lock); the parent zeroes those of a child
    that died (a breaker stays open: the city failed, whoever saw it)."""

    def __init__(self, cities: Iterable[str], processes: int) -> None:
        self.rows = {city: i for i, city in enumerate(sorted(set(cities)))}
        self.processes = processes
        self.counts = multiprocessing.RawArray("i", max(1, len(self.rows)) * processes)  # zeroed
        #: per city, until when (time.monotonic, the same clock in every process) a process opened
        #: its circuit breaker; 0: none did (core/resilience.py: the others adopt it)
        self.breakers = multiprocessing.RawArray("d", max(1, len(self.rows)))  # zeroed
        self.index: int | None = None

    def of_process(self, index: int) -> SharedInFlight:
        """In child ``index`` (after the fork: this object is the child's copy)."""
        self.index = index
        return self

    def covers(self, city: str) -> bool:
        return self.index is not None and city in self.rows

    def others(self, city: str) -> int:
        base, counts = self.rows[city] * self.processes, self.counts
        return sum(counts[base + j] for j in range(self.processes) if j != self.index)

    def add(self, city: str, delta: int) -> None:
        self.counts[self.rows[city] * self.processes + cast(int, self.index)] += delta

    def open_until(self, city: str) -> float:
        return float(self.breakers[self.rows[city]])

    def set_open_until(self, city: str, until: float) -> None:
        self.breakers[self.rows[city]] = until  # one aligned 8-byte store: whole for every reader

    def total(self, city: str) -> int:
        base = self.rows[city] * self.processes
        return sum(self.counts[base:base + self.processes])

    def clear(self, index: int) -> None:
        """Forget the calls of process ``index`` (it died: they ended with it)."""
        for row in range(len(self.rows)):
            self.counts[row * self.processes + index] = 0


class Supervisor:
    """Fork ``processes`` children running ``child(index)`` (its return value is the child's exit
    code), keep them running, stop them on a signal. :meth:`run` returns the exit code of the
    whole: 0 when every child stopped cleanly."""

    def __init__(self, processes: int, child: Callable[[int], int], *,
                 hard_deadline_s: float = HARD_DEADLINE_S + 1.0,
                 on_death: Callable[[int], None] | None = None) -> None:
        """``on_death(index)``: called when child ``index`` died while the service ran."""
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.processes, self.child, self.on_death = processes, child, on_death
        self.hard_deadline_s = hard_deadline_s
        self.children: dict[int, int] = {}  #: pid -> index
        self.signals: list[int] = []
        self.codes: dict[int, int] = {}  #: index -> exit code at the shutdown
        self.restarts = 0

    def _handle(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)  # only recorded: the loop forwards it

    def _fork(self, index: int) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            code = 1
            try:
                for signum in SIGNALS:  # orders come from the parent (STOP_SIGNAL)
                    signal.signal(signum, signal.SIG_IGN)
                code = self.child(index)
            except BaseException:  # noqa: BLE001 - reported, then the child ends
                log.exception("API process %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = index
        return pid

    def _forward(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def run(self, poll_s: float = 0.05) -> int:
        for signum in SIGNALS:
            signal.signal(signum, self._handle)
        gc.collect()
        gc.freeze()  # what was imported stays shared with the children (copy on write)
        started: dict[int, float] = {}
        pause: dict[int, float] = {}
        due: dict[int, float] = {}  #: index -> when a dead child starts again
        for index in range(self.processes):
            self._fork(index)
            started[index] = time.monotonic()
        stopping_at: float | None = None
        forwarded = 0
        while self.children or (stopping_at is None and due):
            if len(self.signals) > forwarded:
                if stopping_at is None:
                    stopping_at = time.monotonic()
                    due.clear()
                    log.warning("%s received: stopping %d API process(es)",
                                signal.Signals(self.signals[0]).name, len(self.children))
                # the first signal asks the children to stop; a second one makes them stop now
                self._forward(STOP_SIGNAL)
                forwarded = len(self.signals)
            while self.children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:  # pragma: no cover - none left
                    self.children.clear()
                    break
                if pid == 0:
                    break
                if pid not in self.children:
                    continue
                index = self.children.pop(pid)
                code = os.waitstatus_to_exitcode(status)
                if stopping_at is not None:
                    self.codes[index] = code
                    continue
                if self.on_death is not None:
                    self.on_death(index)
                ran = time.monotonic() - started[index]
                pause[index] = RESTART_MIN_S if ran >= STABLE_S else min(RESTART_MAX_S,
                                                                         pause.get(index, RESTART_MIN_S / 2) * 2)
                due[index] = time.monotonic() + pause[index]
                log.error("API process %d (pid %d) exited with %s after %.1fs: starting it again in %gs",
                          index, pid, code, ran, pause[index])
            now = time.monotonic()
            for index, when in sorted(due.items()):
                if when <= now and stopping_at is None:
                    del due[index]
                    self.restarts += 1
                    self._fork(index)
                    started[index] = time.monotonic()
            if stopping_at is not None and now - stopping_at > self.hard_deadline_s:
                log.error("%d API process(es) still running %gs after the signal: killing them",
                          len(self.children), self.hard_deadline_s)
                self._forward(signal.SIGKILL)
                self.codes.update({index: -9 for index in self.children.values()})
                for pid in list(self.children):
                    os.waitpid(pid, 0)
                self.children.clear()
                break
            time.sleep(poll_s)
        if len(self.signals) > 1:
            return 128 + self.signals[-1]
        bad = [code for code in self.codes.values() if code != 0]
        return bad[0] if bad else 0
