"""Figures of the activation service (issue: activation service). Prints one JSON object.

    python bench/activation_bench.py [--n 400] [--chaos 2000] [--inprocess-mock]

The mock city systems run in their own process (`essc mock`), as remote cities would.

1. throughput: end-to-end activations/s through the service (SQLite, 4 client threads)
   vs direct mock calls/s (the plugin's read_card straight to the mock) in the same run;
2. delayed sync: seconds from the record becoming visible to the activation completing,
   and the read_card calls the city received meanwhile, for several delays;
3. chaos: activations over every mock city under random faults: lost, duplicates, states.
"""
from __future__ import annotations

import argparse
import json
import math
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from essc.core.registry import Registry
from essc.core.settings import Settings
from essc.mockserver import create_app
from essc.mockserver.client import MockAdmin
from essc.mockserver.serve import start_in_thread
from essc.service import chaos, states
from essc.service.config import ServiceConfig
from essc.service.runtime import Runtime

SUPPORTED = ("330100", "330500", "350100", "510100", "370200", "440300", "659012")
VERIFY = {"face_token": "live-bench", "sms_code": "123456"}


class MockProcess:
    """`essc mock` in its own process, as remote city systems would be."""

    def __init__(self, per_city: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-c", "from essc.cli import main; main()", "mock",
                                      "--port", str(port), "--citizens-per-city", str(per_city)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                MockAdmin(self.url).cities()
                return
            except Exception:  # not up yet
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the mock did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def runtime_for(url: str, tmp: Path, name: str, **cfg) -> Runtime:
    config = ServiceConfig(data_dir=tmp / name, **cfg)
    return Runtime(config, registry=Registry(Settings(base_url=url)).setup())


def throughput(url: str, admin: MockAdmin, tmp: Path, n: int, threads: int = 4) -> dict:
    people = [(c, p) for c in SUPPORTED for p in admin.citizens(c, "normal")]
    people = people[:n]
    rt = runtime_for(url, tmp, "throughput")
    for city, _ in people[:threads]:  # warm up: load plugins, open sessions
        rt.registry.call(city, "health", {"aab301": city})
    adapter_calls = [(city, {"aac002": p["id_number"], "aac003": p["name"], "aab301": city}) for city, p in people]

    def direct(item):
        city, req = item
        rt.registry.adapter(city).read_card(req)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(direct, adapter_calls))
    direct_s = time.perf_counter() - t0

    def activate(item):  # both steps, as a channel does: submit (card read), then verify
        city, p = item
        act = rt.service.submit(city=city, id_number=p["id_number"], name=p["name"], consent=True, channel="bench")
        if act["status"] == states.AWAITING_VERIFICATION:
            act, _ = rt.service.verify(act["id"], channel="bench", **VERIFY)
        return act["status"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        outcomes = list(ex.map(activate, people))
    e2e_s = time.perf_counter() - t0
    rt.store.engine.dispose()
    calls_per_s = len(adapter_calls) / direct_s
    acts_per_s = len(people) / e2e_s
    return {"activations": len(people), "activated": outcomes.count(states.ACTIVATED),
            "activations_per_s": round(acts_per_s, 1), "direct_mock_calls_per_s": round(calls_per_s, 1),
            "ratio": round(acts_per_s / calls_per_s, 3), "client_threads": threads}


def delayed_sync(url: str, admin: MockAdmin, tmp: Path, delays=(4, 8, 16)) -> list[dict]:
    rt = runtime_for(url, tmp, "delayed", retry_cap_s=600)
    rt.start_workers(2)
    out = []
    try:
        for delay in delays:
            admin.reset()  # realtime virtual clock: the delay passes in real time
            admin.set_city("110000", mode="delayed", sync_delay_s=delay)
            p = admin.citizens("110000", "normal")[delays.index(delay) + 1]
            t0 = time.time()
            act = rt.service.submit(city="110000", id_number=p["id_number"], name=p["name"], consent=True,
                                    channel="bench")
            visible_at = t0 + delay
            while act["status"] in states.RUNNABLE and time.time() < visible_at + 30:
                time.sleep(0.02)
                act = rt.store.get(act["id"])
            if act["status"] == states.AWAITING_VERIFICATION:  # the card read at last: the channel verifies
                act, _ = rt.service.verify(act["id"], channel="bench", **VERIFY)
            read_at = next((e["at"] for e in rt.store.audit(act["id"]) if e["event"] == "card_read"), float("nan"))
            reads = [e for e in admin.journal(city="110000", operation="read_card")]
            out.append({"delay_s": delay, "status": act["status"],
                        "visible_to_card_read_s": round(read_at - visible_at, 3),
                        "read_card_calls": len(reads), "goal_calls": round(math.log2(delay) + 2, 2)})
    finally:
        rt.stop_workers()
        rt.store.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="activations in the throughput run")
    ap.add_argument("--chaos", type=int, default=2000, help="activations in the chaos run")
    ap.add_argument("--inprocess-mock", action="store_true",
                    help="run the mock in this process (it then competes for the GIL with the service)")
    args = ap.parse_args()
    per_city = max(12, args.n // len(SUPPORTED) + 8)
    server = MockProcess(per_city) if not args.inprocess_mock else start_in_thread(
        create_app({"CITIZENS_PER_CITY": per_city, "CLOCK_MODE": "realtime"}))
    admin = MockAdmin(server.url)
    result = {}
    try:
        with tempfile.TemporaryDirectory(prefix="essc-bench-") as tmp:
            tmp = Path(tmp)
            admin.reset()
            result["throughput"] = throughput(server.url, admin, tmp, args.n)
            result["delayed_sync"] = delayed_sync(server.url, admin, tmp)
            admin.reset()
            admin.freeze()
            rt = runtime_for(server.url, tmp, "chaos", retry_base_s=0.2, retry_cap_s=2.0)
            rt.start_workers(4)
            try:
                result["chaos"] = chaos.drill(rt, admin, args.chaos, seed=2026, timeout_s=600)
            finally:
                rt.stop_workers()
                rt.store.engine.dispose()
    finally:
        server.stop()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
