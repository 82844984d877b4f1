"""What one activation costs the service: SQL statements, row reads and CPU. Prints ONE JSON object.

    python bench/activation_cost.py [--n 300] [--profile FILE] [--database-url URL]

The mock city systems run in their own process (`essc mock`, no latency), so their CPU is not
counted. The service runs in this process as ``essc serve`` builds it (``Runtime`` with its
flow pool + the Flask API), driven through the API's WSGI interface by one channel, both steps
of the flow: ``POST /v1/activations`` (201) then ``POST /v1/activations/{id}/verification``
(201 with the credential). Per activation:

- ``statements`` (by verb) - SQL statements the service sent to its database; ``commits`` its
  write transactions. Counted from SQLAlchemy's events (``before_cursor_execute``, ``commit``) and,
  for the hot-path statements the store runs on the DBAPI connection (service/sql.py), which
  bypass those events, from the store's hook (``Store.sql.observe``);
- ``store_gets`` - activations read back whole (``Store.get``);
- ``cpu_us`` - CPU time of this process (every thread: the API and the flow pool) over the
  timed activations, divided by their number; ``wall_us`` the same for wall time.

``--profile FILE`` writes a cProfile of the timed activations timed by CPU time (sorted by
cumulative, then own time). No HTTP server is in the loop: ``essc serve``'s waitress
adds its own cost per request (the ``fast`` phase of bench/activation_bench.py measures it all).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import event

from essc.core.registry import Registry
from essc.core.settings import Settings
from essc.mockserver.client import MockAdmin
from essc.service.api import create_app
from essc.service.config import ServiceConfig
from essc.service.runtime import Runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from activation_bench import AUTH, SCENARIOS_BEFORE_NORMAL, VERIFY, MockProcess  # noqa: E402

CITIES = ("330100", "350100", "510100")  # rest-json, pinyin-form, gm-json


class Counter:
    """SQL statements (by verb) and commits - through SQLAlchemy and on the store's DBAPI
    connections - and Store.get calls, from every thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.lock = threading.Lock()
        self.verbs: collections.Counter[str] = collections.Counter()
        self.gets = 0
        event.listen(runtime.store.engine, "before_cursor_execute", self._statement)
        event.listen(runtime.store.engine, "commit", self._commit)
        runtime.store.sql.observe(self._raw)
        get = runtime.store.get

        def counted_get(act_id):
            with self.lock:
                self.gets += 1
            return get(act_id)

        runtime.store.get = counted_get  # type: ignore[method-assign]

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        with self.lock:
            self.verbs[verb] += 1

    def _commit(self, conn) -> None:
        with self.lock:
            self.verbs["(commits)"] += 1

    def _raw(self, kind: str, statement: str) -> None:
        if kind == "commit":
            self._commit(None)
        else:
            self._statement(None, None, statement, None, None, False)

    def snapshot(self) -> tuple[dict[str, int], int]:
        with self.lock:
            return dict(self.verbs), self.gets


def run(args: argparse.Namespace) -> dict:
    per_city = args.n // len(CITIES) + args.warm + SCENARIOS_BEFORE_NORMAL + 2
    mock = MockProcess(per_city)
    try:
        admin = MockAdmin(mock.url)
        people = {c: admin.citizens(c, "normal") for c in CITIES}
        with tempfile.TemporaryDirectory(prefix="essc-cost-") as tmp:
            extra = {} if args.answer_budget_s is None else {"answer_budget_s": args.answer_budget_s}
            config = ServiceConfig.from_env({}, data_dir=Path(tmp), database_url=args.database_url,
                                            queue_url=args.queue_url, **extra)
            runtime = Runtime(config, registry=Registry(Settings(base_url=mock.url)).setup())
            app = create_app(runtime)
            client = app.test_client()
            counter = Counter(runtime)

            def activate(city: str, person: dict) -> None:
                resp = client.post("/v1/activations", headers=AUTH, json={
                    "city": city, "id_number": person["id_number"], "name": person["name"], "consent": True})
                assert resp.status_code == 201, (resp.status_code, resp.get_json())
                resp = client.post(f"/v1/activations/{resp.get_json()['id']}/verification", headers=AUTH, json=VERIFY)
                assert resp.status_code == 201, (resp.status_code, resp.get_json())

            jobs = [(c, people[c][i]) for i in range(args.warm + args.n // len(CITIES)) for c in CITIES]
            warm, timed = jobs[:args.warm * len(CITIES)], jobs[args.warm * len(CITIES):]
            for job in warm:
                activate(*job)
            verbs0, gets0 = counter.snapshot()
            profiler = _profiler(args.profile)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for job in timed:
                activate(*job)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            _stop(profiler, args.profile)
            verbs1, gets1 = counter.snapshot()
            if runtime.pool is not None:
                runtime.pool.shutdown(wait=True)
            runtime.store.engine.dispose()
    finally:
        mock.stop()
    n = len(timed)
    verbs = {v: round((verbs1.get(v, 0) - verbs0.get(v, 0)) / n, 2) for v in sorted(verbs1)}
    commits = verbs.pop("(commits)", 0.0)
    return {"activations": n, "cities": list(CITIES), "database": "sqlite" if not args.database_url else
            args.database_url.split(":", 1)[0], "statements": round(sum(verbs.values()), 2), "by_verb": verbs,
            "commits": commits,
            "store_gets": round((gets1 - gets0) / n, 2), "cpu_us": round(cpu / n * 1e6),
            "wall_us": round(wall / n * 1e6), "answer_budget_s": config.answer_budget_s,
            "load": [round(x, 2) for x in os.getloadavg()]}


def _profiler(path: str | None):
    """cProfile timed by CPU time (waiting on the city's socket costs nothing)."""
    if not path:
        return None
    import cProfile

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    return profiler


def _stop(profiler, path: str | None) -> None:
    if profiler is None or path is None:
        return
    import pstats

    profiler.disable()
    profiler.dump_stats(path + ".prof")  # for pstats / snakeviz
    with open(path, "w", encoding="utf-8") as fh:
        stats = pstats.Stats(profiler, stream=fh)
        stats.sort_stats("cumulative").print_stats(120)
        stats.sort_stats("tottime").print_stats(60)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="timed activations (spread over the cities)")
    ap.add_argument("--warm", type=int, default=2, help="untimed activations per city first")
    ap.add_argument("--profile", metavar="FILE", help="write a CPU profile of the timed activations (this thread "
                    "only: use it with --answer-budget-s 0, which runs the city steps in the API's thread)")
    ap.add_argument("--answer-budget-s", type=float, default=None,
                    help="ServiceConfig.answer_budget_s (0: no flow pool; default: the configured one)")
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    ap.add_argument("--queue-url", default=None, help="default: SQLite in a temporary folder")
    print(json.dumps(run(ap.parse_args(argv)), ensure_ascii=False))


if __name__ == "__main__":
    main()
