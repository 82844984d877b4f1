"""The hang checks of a run wait on the plugins' time budgets together.

``test_upstream_fault[hang]`` proves that a plugin gives up on a city that does not answer
within its budget (``timeouts.total_s``): it must wait for that budget, seconds per city. One
city after another, 400 cities wait ~20 minutes for nothing but clocks. So the first hang check
of a run that needs a probe probes its own city together with the next cities whose hang check
is selected in this process (up to ``batch`` at once, each on its own thread): every city gets
its own hang fault on ``read_card`` and its own call, timed on its own; each city's check then
asserts on its own probe, exactly as if it had made the call itself. The hung requests are
released (a mock reset that keeps the cities) as soon as every call of the batch came back.

A probe is taken once per city and process; a check whose probe is missing (run alone,
``-k``, a re-run) probes again.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["CHECK", "KIND", "Probe", "HangProbes", "hang_fault"]

CHECK = "test_upstream_fault"
KIND = "hang"
OPERATION = "read_card"


@dataclass
class Probe:
    """What one city's ``read_card`` did against a hanging city."""

    city: str
    elapsed_s: float = 0.0
    answer: Any = None  #: what the call returned (the plugin did not notice the hang)
    error: BaseException | None = None  #: what the call raised
    setup_problem: str | None = None  #: the mock refused to set the probe up (nothing was called)


def hang_fault(city: str, total_s: float) -> dict:
    """The fault rule of a city's hang check: ``read_card`` hangs longer than the plugin's budget."""
    return {"city": city, "operation": OPERATION, "kind": KIND, "retry_after": 7, "hang_s": total_s + 3}


class HangProbes:
    """Hang probes of one process, taken in batches (see the module's docstring).

    ``upcoming()`` lists the cities whose hang check this process runs after the current one
    (in run order); ``prepare(city)`` sets the mock up for ``city`` (its mode, its hang fault)
    and returns the ``read_card`` request; ``call(city, request)`` is the registry's call;
    ``release()`` lets the hung requests go (a reset of the mock that keeps the cities)."""

    def __init__(self, *, upcoming: Callable[[], Iterable[str]], prepare: Callable[[str], dict],
                 call: Callable[[str, dict], Any], release: Callable[[], None], batch: int) -> None:
        self._upcoming, self._prepare, self._call, self._release = upcoming, prepare, call, release
        self.batch = max(1, batch)
        self._done: dict[str, Probe] = {}
        self.batches: list[int] = []  #: sizes of the batches taken (for tests and curiosity)

    def probe(self, city: str) -> Probe:
        """The probe of ``city``: taken now, with a batch of the upcoming cities, unless a batch
        took it already. Each probe is handed out once."""
        if city not in self._done:
            others = [c for c in dict.fromkeys(self._upcoming()) if c != city and c not in self._done]
            self._take([city, *others[: self.batch - 1]])
        return self._done.pop(city)

    def _take(self, cities: list[str]) -> None:
        ready: list[tuple[str, dict]] = []
        for city in cities:
            try:
                ready.append((city, self._prepare(city)))
            except Exception as err:  # the mock refused: that city's check reports it
                self._done[city] = Probe(city, setup_problem=f"{type(err).__name__}: {err}")
        try:
            if ready:
                with ThreadPoolExecutor(max_workers=len(ready), thread_name_prefix="essc-hang") as pool:
                    for probe in pool.map(lambda item: self._one(*item), ready):
                        self._done[probe.city] = probe
        finally:
            self.batches.append(len(ready))
            self._release()

    def _one(self, city: str, request: dict) -> Probe:
        probe = Probe(city)
        started = time.monotonic()
        try:
            probe.answer = self._call(city, request)
        except BaseException as err:  # noqa: BLE001 - the check judges what was raised
            probe.error = err
        probe.elapsed_s = time.monotonic() - started
        return probe
