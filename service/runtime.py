"""Wiring of the activation service: registry + store + huey queue + workers.

One :class:`Runtime` per process. The API process and every worker process build their
own from the same configuration; the queue (huey: SQLite file by default, Redis at scale)
and the database (SQLite file by default, PostgreSQL at scale) are what they share.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from essc.core.masking import get_logger
from essc.core.registry import Registry
from essc.core.settings import Settings

from .callbacks import CALLBACK_ATTEMPTS, RESTING, Callbacks, backoff, due_marker
from .channels import Channels
from .config import ServiceConfig
from .flow import ActivationService, worker_id
from .pool import UNKNOWN, FlowPool
from .settlement_store import SettlementStore
from .settlements import Settlements
from .store import Store

log = get_logger("essc.service.runtime")

TASK_NAME = "essc.run_activation"
CALLBACK_TASK = "essc.deliver_callback"
SETTLEMENT_TASK = "essc.run_settlement"
EARLY_S = 1.0  #: huey scheduler_interval: scheduled tasks are delivered up to this late
STOP_WAIT_S = 5.0  #: how long :meth:`Runtime.stop_workers` waits for running tasks by default


def process_owner_prefix() -> str:
    """The lease owner prefix of every thread of this process (``host:pid:``, see ``worker_id``)."""
    return worker_id().rsplit(":", 1)[0] + ":"


def make_huey(config: ServiceConfig):
    url = config.resolved_queue_url()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from huey import RedisHuey

        return RedisHuey(config.queue_name, url=url, utc=True)
    from huey import SqliteHuey

    path = url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else url
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(config.queue_name, filename=path, utc=True, timeout=30)


def _channels(config: ServiceConfig) -> Channels | None:
    """The channels (their HMAC secrets sign callbacks); None if the file cannot be read."""
    try:
        return Channels.load(config.channels_file)
    except Exception:  # the API refuses to start on a broken file; a worker only loses callbacks
        log.exception("channels file %s: callbacks cannot be signed", config.channels_file)
        return None


class Runtime:
    def __init__(self, config: ServiceConfig | None = None, settings: Settings | None = None,
                 registry: Registry | None = None) -> None:
        self.config = config or ServiceConfig.from_env()
        self.registry = registry or Registry(settings or Settings.from_env()).setup()
        self.store = Store(self.config.resolved_database_url(), pool_size=self.config.database_pool_size)
        self.huey = make_huey(self.config)
        self._task = self.huey.task(name=TASK_NAME, retries=0)(self._run_task)
        self.pool = FlowPool(self.config.flow_threads, self.config.max_in_flight) \
            if self.config.answer_budget_s > 0 else None
        self.service = ActivationService(self.registry, self.store, self.config, enqueue=self.enqueue,
                                         pool=self.pool)
        self.settlements = Settlements(self.registry, SettlementStore(self.store.engine), self.config,
                                       self.service.sealer, retry_delay=self.service.retry_delay,
                                       enqueue=self.enqueue_settlement, pool=self.pool)
        self._settlement_task = self.huey.task(name=SETTLEMENT_TASK, retries=0)(self._run_settlement_task)
        self.callbacks = Callbacks(self.store, _channels(self.config))
        self._callback_task = self.huey.task(name=CALLBACK_TASK, retries=0)(self._deliver_callback)
        self.store.changes.subscribe(self.announce)
        self._consumer = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def _run_task(self, act_id: str) -> None:
        """A queue task: run the activation - in the flow pool when there is one, so that a
        worker thread never waits on a city (it only hands work over)."""
        if self.pool is not None:
            self.pool.run_when_free(self._run_due, act_id)
        else:
            self._run_due(act_id)

    def _run_due(self, act_id: str) -> None:
        act = self.store.get(act_id)
        if act is None:
            return
        early = (act["next_attempt_at"] or 0) - time.time()
        if 0 < early <= EARLY_S + 0.5:  # delivered ahead of time on purpose (see enqueue)
            time.sleep(early)
        self.service.run(act_id)

    def _run_settlement_task(self, sid: str) -> None:
        """A queue task: a settlement's leg (essc.service.settlements), in the flow pool as above."""
        if self.pool is not None:
            self.pool.run_when_free(self._run_settlement_due, sid)
        else:
            self._run_settlement_due(sid)

    def _run_settlement_due(self, sid: str) -> None:
        row = self.settlements.store.get(sid)
        if row is None:
            return
        early = (row["next_attempt_at"] or 0) - time.time()
        if 0 < early <= EARLY_S + 0.5:
            time.sleep(early)
        self.settlements.run(sid)

    # -- callbacks ------------------------------------------------------------------------------
    def announce(self, act_id: str, status: str | None = None, act: dict | None = None,
                 callback: Any = UNKNOWN) -> None:
        """After a transition: queue the signed callback if the activation has one and came to rest.
        What the transition knew spares the look-ups: ``status`` (most transitions do not rest),
        and ``act`` + ``callback`` (whether it has a callback, and what was last announced; see
        :meth:`essc.service.pool.Changes.subscribe`)."""
        if status is not None and status not in RESTING:
            return
        if callback is None:  # the activation has no callback
            return
        if act is not None and callback is not UNKNOWN:
            marker = due_marker(act, callback)
        else:
            marker = self.callbacks.due(act_id)
        if marker is not None:
            self._callback_task(act_id, marker, 1)

    def _deliver_callback(self, act_id: str, marker: str, attempt: int) -> None:
        act = self.store.get(act_id)
        if act is None:
            return
        view = self.service.view(act)  # without the credential: the channel reads it with GET
        view["audit"] = []
        if self.callbacks.deliver(act_id, marker, view):
            return
        if attempt >= CALLBACK_ATTEMPTS:
            self.callbacks._audit(act_id, "callback_failed", f"not delivered in {attempt} attempts")
            return
        self._callback_task.schedule(args=(act_id, marker, attempt + 1), delay=backoff(attempt))

    def enqueue(self, act_id: str, delay: float) -> None:
        """Hand an activation to the queue, now or after ``delay`` seconds.

        huey's scheduler looks at scheduled tasks once a second, so a delayed task is
        scheduled ``EARLY_S`` ahead and the worker waits out the rest: a record that
        becomes visible is picked up within a fraction of a second, not up to one."""
        if delay > EARLY_S:
            self._task.schedule(args=(act_id,), delay=delay - EARLY_S)
        else:
            self._task(act_id)

    def enqueue_settlement(self, sid: str, delay: float) -> None:
        """Hand a settlement's leg to the queue, now or after ``delay`` seconds (as :meth:`enqueue`)."""
        if delay > EARLY_S:
            self._settlement_task.schedule(args=(sid,), delay=delay - EARLY_S)
        else:
            self._settlement_task(sid)

    def queue_depth(self) -> int:
        return int(self.huey.pending_count()) + int(self.huey.scheduled_count())

    # -- workers -------------------------------------------------------------------------
    def start_workers(self, workers: int | None = None) -> None:
        """Start huey worker threads and the sweeper in this process (non-blocking)."""
        if self._consumer is not None:
            return
        consumer = self._consumer = self.huey.create_consumer(
            workers=workers or self.config.workers, worker_type="thread", periodic=False,
            initial_delay=0.05, backoff=1.15, max_delay=0.25, scheduler_interval=1, check_worker_health=True,
            shutdown_timeout=STOP_WAIT_S)
        # huey's start() installs its own SIGINT/SIGTERM/SIGHUP handlers, which only its own
        # run() loop reads (we never call it): SIGTERM was ignored and SIGINT needed twice. The
        # command running these workers owns the signals (essc.service.lifecycle): keep those.
        if threading.current_thread() is threading.main_thread():
            kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
            try:
                consumer.start()
            finally:
                for signum, handler in kept.items():
                    signal.signal(signum, handler)
        else:  # signal.signal() works in the main thread only: keep huey from trying
            consumer._set_signal_handlers = lambda: None
            consumer.start()
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="essc-sweeper", daemon=True)
        self._sweeper.start()

    def stop_taking_work(self) -> None:
        """Workers and sweeper take nothing new from now on (returns at once); the running
        tasks go on. :meth:`stop_workers` then waits for them."""
        self._stop.set()
        if self._consumer is not None:
            self._consumer.stop_flag.set()

    def stop_workers(self, timeout: float = STOP_WAIT_S) -> bool:
        """Stop the workers and the sweeper, letting running tasks finish for up to ``timeout``
        seconds. Returns False when some task was still running then: its thread (a daemon) is
        abandoned and the lease it holds stays until :meth:`release_held` or its expiry."""
        self.stop_taking_work()
        deadline = time.monotonic() + timeout
        stopped = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.shutdown_timeout = max(timeout, 0.01)
            consumer.stop(graceful=True)  # joins workers and scheduler until shutdown_timeout
            threads = [t for _, t in consumer.worker_threads] + [consumer.scheduler]
            stopped = not any(t.is_alive() for t in threads)
        if self._sweeper is not None:
            self._sweeper.join(timeout=max(deadline - time.monotonic(), 0.01))
            stopped = stopped and not self._sweeper.is_alive()
            self._sweeper = None
        if self.pool is not None:  # city steps in flight get the rest of the time, then are abandoned
            stopped = self.pool.wait_idle(deadline - time.monotonic()) and stopped
        return stopped

    def close(self) -> None:
        """Stop the flow pool for good (steps not started are dropped: their leases are released
        by :meth:`release_held` or expire, and the sweeper finds them again)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False)

    def release_held(self) -> list[str]:
        """Release every lease held by a thread of this process (shutdown: after the workers
        and requests were given their time) and queue those activations again, so another
        worker or process takes them at once; the status is left as it is. Returns their ids."""
        ids = self.store.release_owned_by(process_owner_prefix())
        for act_id in ids:
            try:
                self.enqueue(act_id, 0)
            except Exception:  # the queue may be gone: the sweeper finds them in the database
                log.exception("activation %s: could not queue it again", act_id)
        for sid in self.settlements.store.release_owned_by(process_owner_prefix()):
            try:
                self.enqueue_settlement(sid, 0)
            except Exception:
                log.exception("settlement %s: could not queue it again", sid)
        if ids:
            log.warning("released %d activation(s) still held at shutdown", len(ids))
        return ids

    def sweep(self) -> int:
        """Re-queue runnable activations that are overdue and held by no live worker:
        their queue task was lost (a crash, a restart). Returns how many were queued."""
        grace = 2.0  # leave the scheduler time to deliver the normal task first
        ids = self.store.due(grace_s=grace)
        for act_id in ids:
            self.enqueue(act_id, 0)
        if ids:
            log.info("sweeper re-queued %d overdue activation(s)", len(ids))
        legs = self.settlements.due(grace_s=grace)
        for sid in legs:
            self.enqueue_settlement(sid, 0)
        if legs:
            log.info("sweeper re-queued %d settlement leg(s)", len(legs))
        return len(ids) + len(legs)

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:  # the database may be briefly unavailable; try again
                log.exception("sweep failed")
            self._stop.wait(self.config.sweep_interval_s)
