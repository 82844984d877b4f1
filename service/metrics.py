"""Prometheus metrics of the activation API, in a CollectorRegistry of their own (never
the process-global one, so several apps - e.g. in tests - never collide).

* ``essc_activations{status}`` - activations by status (read from the store at scrape time);
* ``essc_settlements{state}`` - medical settlements by state (read at scrape time; a
  ``reversal_failed`` one needs an operator);
* ``essc_queue_depth`` - tasks waiting in the queue (pending + scheduled);
* ``essc_api_activations_submitted_total{outcome}`` - POST /v1/activations by outcome
  (the resulting status, or the error code of a rejected request);
* ``essc_adapter_call_seconds{city,operation,outcome}`` - latency of every adapter call,
  observed through the ``essc_adapter_called`` hook (outcome ``ok`` or the error code);
* per city, read from ``Registry.resilience_snapshot()`` at scrape time (core/resilience.py):
  ``essc_city_breaker_state{city,state}`` (1 for the breaker's state, 0 for the others),
  ``essc_city_in_flight{city}``, ``essc_city_in_flight_limit{city}``,
  ``essc_city_rejected_total{city,reason}`` (``bulkhead_full`` / ``circuit_open``),
  ``essc_city_breaker_opened_total{city}``.

Several API processes (``essc serve --processes N``, essc.service.processes): the supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` before the fork, so the counters and histograms above are
kept in files per process and every scrape adds them up over all processes (prometheus_client's
multiprocess mode); the store's figures are the database's; the ``essc_city_*`` figures are
those of the process that answered the scrape (each guards its own share of a city's bulkhead).
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from essc.core import hookimpl
from essc.core.masking import get_logger
from essc.core.resilience import REJECT_REASONS, STATES

from . import settlement_store, states

__all__ = ["ApiMetrics", "AdapterCallObserver", "CONTENT_TYPE_LATEST"]

log = get_logger("essc.service.metrics")

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_attach_lock = threading.Lock()


class AdapterCallObserver:
    """The one hook implementation per plugin manager; forwards to every live ApiMetrics."""

    NAME = "essc.service.metrics"

    def __init__(self) -> None:
        self.sinks: weakref.WeakSet[ApiMetrics] = weakref.WeakSet()

    @hookimpl
    def essc_adapter_called(self, city, operation, plugin, elapsed_s, error):
        for sink in list(self.sinks):
            sink.observe_adapter_call(city, operation, elapsed_s, error)

    @classmethod
    def attach(cls, pm, sink: ApiMetrics) -> AdapterCallObserver:
        """Register the observer on ``pm`` once (guarded), and add ``sink`` to it."""
        with _attach_lock:
            observer = pm.get_plugin(cls.NAME)
            if observer is None:
                observer = cls()
                pm.register(observer, name=cls.NAME)
            observer.sinks.add(sink)
            return observer


class _StoreCollector:
    """Gauges read at scrape time: activations by status and the queue depth."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def collect(self):
        by_status = GaugeMetricFamily("essc_activations", "Activations by status", labels=["status"])
        try:
            counts = self.runtime.store.counts()
        except Exception:  # a scrape must not fail because the database is down
            log.exception("metrics: reading activation counts failed")
        else:
            for status in sorted(set(states.ALL) | set(counts)):
                by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        settlements = GaugeMetricFamily("essc_settlements", "Medical settlements by state (reversal_failed: an "
                                        "operator must look)", labels=["state"])
        try:
            by_state = self.runtime.settlements.store.counts()
        except Exception:
            log.exception("metrics: reading settlement counts failed")
        else:
            for state in sorted(set(settlement_store.STATES) | set(by_state)):
                settlements.add_metric([state], by_state.get(state, 0))
        yield settlements
        depth = GaugeMetricFamily("essc_queue_depth", "Queued activation tasks (pending + scheduled)")
        try:
            depth.add_metric([], self.runtime.queue_depth())
        except Exception:
            log.exception("metrics: reading the queue depth failed")
        yield depth


class _ResilienceCollector:
    """Per-city breaker state, calls in flight and refusals, read at scrape time."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def collect(self):
        state = GaugeMetricFamily("essc_city_breaker_state", "Circuit breaker state per city (1 = current)",
                                  labels=["city", "state"])
        in_flight = GaugeMetricFamily("essc_city_in_flight", "Calls to the city in flight", labels=["city"])
        limit = GaugeMetricFamily("essc_city_in_flight_limit", "Bulkhead limit of the city", labels=["city"])
        rejected = CounterMetricFamily("essc_city_rejected", "Calls refused without calling the city",
                                       labels=["city", "reason"])
        opened = CounterMetricFamily("essc_city_breaker_opened", "Times the city's breaker opened", labels=["city"])
        try:
            snapshot = self.runtime.registry.resilience_snapshot()
        except Exception:  # a scrape must not fail
            log.exception("metrics: reading the resilience snapshot failed")
            snapshot = {}
        for city, s in snapshot.items():
            for name in STATES:
                state.add_metric([city, name], 1 if s["breaker"] == name else 0)
            in_flight.add_metric([city], s["in_flight"])
            limit.add_metric([city], s["limit"])
            for reason in REJECT_REASONS:
                rejected.add_metric([city, reason], s["rejected_by"].get(reason, 0))
            opened.add_metric([city], s["opened"])
        yield from (state, in_flight, limit, rejected, opened)


class ApiMetrics:
    def __init__(self, runtime) -> None:
        self.registry = CollectorRegistry()
        self.submitted = Counter("essc_api_activations_submitted", "Activations submitted through the API",
                                 ["outcome"], registry=self.registry)
        self.verified = Counter("essc_api_verifications", "Identity checks (verifications) through the API",
                                ["outcome"], registry=self.registry)
        self.adapter_seconds = Histogram("essc_adapter_call_seconds", "Latency of adapter calls",
                                         ["city", "operation", "outcome"], buckets=_BUCKETS,
                                         registry=self.registry)
        # each label set's child, looked up once: labels() checks and locks on every call (~1.5% of
        # an activation's CPU for 3 city calls); the sets are bounded (cities x operations x codes)
        self._adapter_children: dict[tuple[str, str, str], Any] = {}
        self._store, self._resilience = _StoreCollector(runtime), _ResilienceCollector(runtime)
        self.registry.register(self._store)
        self.registry.register(self._resilience)
        AdapterCallObserver.attach(runtime.registry.pm, self)

    def observe_adapter_call(self, city: str, operation: str, elapsed_s: float, error) -> None:
        key = (city, operation, "ok" if error is None else getattr(error, "code", "error"))
        child = self._adapter_children.get(key)
        if child is None:
            child = self._adapter_children[key] = self.adapter_seconds.labels(*key)
        child.observe(elapsed_s)

    def count_submission(self, outcome: str) -> None:
        self.submitted.labels(outcome).inc()

    def count_verification(self, outcome: str) -> None:
        self.verified.labels(outcome).inc()

    def render(self) -> bytes:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        every_process = CollectorRegistry()  # the counters of every process, added up
        multiprocess.MultiProcessCollector(every_process)
        for collector in (self._store, self._resilience):
            every_process.register(collector)
        return generate_latest(every_process)
