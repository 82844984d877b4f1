"""Client CPU of one city call through :class:`essc.core.http.CityHttpClient`. Prints ONE JSON object.

    python bench/http_cost.py [--n 3000] [--rounds 6] [--url http://127.0.0.1:18765] [--profile FILE]

Without ``--url`` the mock city systems are started in their own process (``essc mock``), so
their CPU is not counted. Three kinds of call, as the plugins make them, each ``--n`` times
against the rest-json city 杭州 (330100): ``json`` (POST ``json=`` with a bearer header, as a
code plugin), ``data`` (POST of an encoded body with Content-Type, as the spec dialects), ``get``
(GET with ``params=``). Each kind is measured two ways, in alternating rounds (the best
round counts: the least disturbed on a shared machine): ``session`` - the client given a
plain ``requests.Session`` (``trust_env`` off, an ``HTTPAdapter``), so every call is
``Session.request`` through urllib3 as before the lean path; ``lean`` - the client's own session,
the lean path and its keep-alive transport (``essc.core.transport``). ``cpu_us`` is
``time.process_time`` of this process per call (the client's CPU only), ``wall_us`` the wall
time per call; ``ratio`` lean / session CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from essc.core.http import CityHttpClient
from essc.core.timeouts import Timeouts

sys.path.insert(0, str(Path(__file__).resolve().parent))

CITY = "330100"
HEADERS = {"Authorization": "Bearer mock-rest-token"}
BODY = {"cityCode": CITY, "idNumber": "330102199001011234", "name": "测试甲"}


def calls() -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        "json": ("POST", "/rest/v1/cards/query", {"json": BODY, "headers": HEADERS}),
        "data": ("POST", "/rest/v1/cards/query",
                 {"data": json.dumps(BODY, ensure_ascii=False).encode(), "params": None,
                  "headers": {**HEADERS, "Content-Type": "application/json; charset=utf-8"}}),
        "get": ("GET", "/rest/v1/health", {"params": {"cityCode": CITY}, "headers": HEADERS}),
    }


def plain_session() -> requests.Session:
    """The session CityHttpClient built before the lean path (every call: Session.request)."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def measure(url: str, n: int, rounds: int = 6) -> dict[str, dict[str, Any]]:
    timeouts = Timeouts(2.0, 5.0, 10.0, 0)
    clients = {"session": CityHttpClient(url, timeouts=timeouts, plugin="bench", session=plain_session()),
               "lean": CityHttpClient(url, timeouts=timeouts, plugin="bench")}
    out: dict[str, dict[str, Any]] = {}
    per_round = max(1, n // rounds)
    for kind, (method, path, kwargs) in calls().items():
        best: dict[str, tuple[float, float]] = {}
        for client in clients.values():
            for _ in range(50):  # warm: connections open, caches filled
                client.request(method, path, **kwargs)
        for _ in range(rounds):
            for way, client in clients.items():
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(per_round):
                    client.request(method, path, **kwargs)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if way not in best or cpu < best[way][0]:
                    best[way] = (cpu, wall)
        out[kind] = {way: {"cpu_us": round(cpu / per_round * 1e6, 1), "wall_us": round(wall / per_round * 1e6, 1)}
                     for way, (cpu, wall) in best.items()}
        out[kind]["ratio"] = round(best["lean"][0] / best["session"][0], 3)  # type: ignore[assignment]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="calls of each kind, each way")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (n/rounds calls each)")
    parser.add_argument("--url", help="a running `essc mock` (default: start one)")
    parser.add_argument("--profile", help="write a cProfile of the timed calls here")
    args = parser.parse_args()
    mock = None
    if args.url is None:
        from activation_bench import MockProcess

        mock = MockProcess(per_city=4, threads=16)
        args.url = mock.url
    try:
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)
            result = profiler.runcall(measure, args.url, args.n, args.rounds)
            profiler.dump_stats(args.profile)
        else:
            result = measure(args.url, args.n, args.rounds)
    finally:
        if mock is not None:
            mock.stop()
    print(json.dumps({"n": args.n, "calls": result}))


if __name__ == "__main__":
    main()
