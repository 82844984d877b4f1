"""The framework benchmark behind ``essc bench``: registry start-up with hundreds of
plugins and the per-call overhead of dispatch + request/response validation.

Synthetic plugins are generated into a temporary folder (one package per city, served
through ``plugin_dirs``) with an in-memory adapter, so the figures measure the framework,
not a network.
"""
from __future__ import annotations

import datetime
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from essc.core.adapter import CityAdapter
from essc.core.idnumber import make_id_number

RECORD = {"aaz500": "K13822465", "aaz501": "0123456789abcdef0123456789abcdef", "aaz502": "normal",
          "aaz508": "3", "aae008": "中国银行", "aac067": "13812345678"}


class SyntheticAdapter(CityAdapter):
    """An in-memory adapter: the 'raw call' the framework wraps."""

    def read_card(self, request: dict) -> dict:
        return {"aac002": request["aac002"], "aac003": request["aac003"], "aab301": request["aab301"], **RECORD}

    def verify_identity(self, request: dict) -> dict:
        return {"verified": True, "verify_id": "bench-ticket", "factor": request["factor"]}

    def activate(self, request: dict) -> dict:
        return {"aab301": request["aab301"], "sign_no": "BENCH0001", "sign_seq": "1", "sign_level": 1,
                "valid_until": "20361125", "sign_date": "20261125"}

    def health(self, request: dict) -> dict:
        return {"status": "up", "latency_ms": 0}


_INIT = '''from essc.core import hookimpl
from essc.tooling.bench import SyntheticAdapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = SyntheticAdapter()
    for city in context.cities:
        register(city, adapter)
'''


def city_code(i: int) -> str:
    return f"{700001 + i}"


def make_plugins(folder: Path, count: int, prefix: str = "essc_bench_") -> list[str]:
    """Write ``count`` one-city plugin packages into ``folder``; return their city codes."""
    codes = []
    for i in range(count):
        pkg = folder / f"{prefix}{i:04d}"
        pkg.mkdir(parents=True, exist_ok=True)
        code = city_code(i)
        manifest = {
            "name": f"{prefix}{i:04d}", "version": "1.0.0", "contract_version": "1.0", "dialect": "other",
            "cities": [{"code": code, "name": "合成市", "province": "合成省", "opened": True}],
            "capabilities": {"operations": ["read_card", "verify_identity", "activate", "health"],
                             "identity_checks": ["sms"], "services": []},
            "timeouts": {"connect_s": 1, "read_s": 2, "total_s": 3},
            "maintainers": [{"name": "bench", "email": "bench@example.org"}],
        }
        (pkg / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        (pkg / "__init__.py").write_text(_INIT, encoding="utf-8")
        codes.append(code)
    return codes


def _registry(folder: Path):
    from essc.core.registry import Registry
    from essc.core.settings import Settings

    return Registry(Settings(builtin_plugins=False, entry_points=False, plugin_dirs=(folder,)))


def _ready_ms(folder: Path, repeats: int = 7) -> tuple[float, float]:
    """(first, median of warm) milliseconds for Registry(...).setup()."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _registry(folder).setup()
        times.append((time.perf_counter() - t0) * 1000)
    return times[0], statistics.median(times[1:])


def _workload(folder: Path, calls: int, seed: int = 7):
    reg = _registry(folder)
    reg.load_all()
    codes = [c.code for c in reg.cities()]
    rng = random.Random(seed)
    people = [make_id_number("110101", datetime.date(1990, 3, 7), rng.randrange(1, 999)) for _ in range(64)]
    work = []
    for _ in range(calls):
        code = rng.choice(codes)
        work.append((code, {"aac002": rng.choice(people), "aac003": "张三", "aab301": code}, reg.adapter(code)))
    return reg, work


def _time_framework(reg, work) -> float:
    t0 = time.perf_counter()
    for code, req, _ in work:
        reg.call(code, "read_card", req)
    return time.perf_counter() - t0


def _time_raw(work) -> float:
    t0 = time.perf_counter()
    for _, req, adapter in work:
        adapter.read_card(req)
    return time.perf_counter() - t0


def _overheads(folders: dict[int, Path], calls: int, rounds: int = 7) -> dict[int, dict]:
    """Framework vs raw per-call time for each registry size. Rounds alternate between
    the sizes so that warm-up and machine noise hit all of them alike; best round wins."""
    loads = {n: _workload(folder, calls) for n, folder in folders.items()}
    best = {n: [float("inf"), float("inf")] for n in folders}
    for _ in range(rounds):
        for n, (reg, work) in loads.items():
            best[n][0] = min(best[n][0], _time_framework(reg, work))
            best[n][1] = min(best[n][1], _time_raw(work))
    out = {}
    for n, (fw, raw) in best.items():
        t0 = time.perf_counter()
        _registry(folders[n]).load_all()
        out[n] = {"call_us": fw / calls * 1e6, "raw_us": raw / calls * 1e6,
                  "overhead_us": (fw - raw) / calls * 1e6, "load_all_ms": (time.perf_counter() - t0) * 1000}
    return out


def _canned_rest_json() -> dict[str, Any]:
    """rest-json answers by path, as the mock sends them (docs/dialects.md)."""
    return {
        "/rest/v1/cards/query": (200, {"card": {"idNumber": "11010119900307803X", "name": "张三", "cityCode": "330100",
                                                "cardNo": "K13822465", "cardId": "A" * 32, "status": "ACTIVE",
                                                "generation": 3, "bank": "工商银行", "mobile": "13812345678"}}),
        "/rest/v1/identity/verify": (200, {"verified": True, "ticket": "tkt-7f3c9a1e5b2d"}),
        "/rest/v1/credentials": (201, {"credential": {"signNo": "ES1234567890", "signSeq": "00000001", "level": 1,
                                                      "validUntil": "2036-11-27", "signedAt": "2026-11-27T10:00:00"}}),
    }


class _CannedSession:
    """A requests.Session stand-in answering from memory (no network, no sockets). It encodes a
    ``json=`` body as requests would, so that an adapter passing ``json=`` (the hand-written one)
    and one passing an encoded ``data=`` (the spec's) pay for the same work."""

    def __init__(self, answers: dict[str, Any]) -> None:
        import requests

        self._responses = {}
        for path, (status, body) in answers.items():
            resp = requests.Response()
            resp.status_code = status
            resp._content = json.dumps(body, ensure_ascii=False).encode()
            resp.headers["Content-Type"] = "application/json"
            self._responses[path] = resp

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if kwargs.get("json") is not None:  # what requests does with json=: the body is encoded
            json.dumps(kwargs["json"], allow_nan=False).encode("utf-8")
        return self._responses["/" + url.split("/", 3)[3].split("?")[0]]


def spec_vs_handwritten(calls: int = 5000, rounds: int = 5) -> dict[str, float]:
    """Translation cost of one contract call (read_card + verify_identity + activate, averaged):
    the adapter derived from the rest-json spec vs the hand-written adapter it replaced."""
    from essc.core.dialects import SpecAdapter, dialect
    from essc.core.masking import get_logger
    from essc.core.settings import PluginContext, Timeouts

    from .handwritten_rest_json import ZhejiangAdapter

    ctx = PluginContext(name="zhejiang", version="1", cities=("330100",), base_url="http://canned.invalid",
                        credentials={}, timeouts=Timeouts(1, 1, 2, 0), logger=get_logger("bench"))
    adapters = {"spec": SpecAdapter(ctx, dialect("rest-json").spec), "handwritten": ZhejiangAdapter(ctx)}
    for adapter in adapters.values():
        adapter.http.session = _CannedSession(_canned_rest_json())  # type: ignore[attr-defined]
    requests_ = [("read_card", {"aac002": "11010119900307803X", "aac003": "张三", "aab301": "330100"}),
                 ("verify_identity", {"aac002": "11010119900307803X", "aab301": "330100", "face_token": "live-1",
                                      "factor": "sms", "code": "123456"}),
                 ("activate", {"aac002": "11010119900307803X", "aab301": "330100", "verify_id": "tkt-7f3c9a1e5b2d",
                               "channel": "bench"})]
    best = {name: float("inf") for name in adapters}
    for _ in range(rounds):  # alternate, best of rounds: the least disturbed measurement
        for name, adapter in adapters.items():
            bound = [(getattr(adapter, op), req) for op, req in requests_]
            t0 = time.perf_counter()
            for _ in range(calls // len(bound)):
                for method, req in bound:
                    method(req)
            best[name] = min(best[name], (time.perf_counter() - t0) / (calls // len(bound) * len(bound)) * 1e6)
    return {"spec_overhead_us": round(best["spec"], 2), "handwritten_overhead_us": round(best["handwritten"], 2),
            "spec_vs_handwritten_ratio": round(best["spec"] / best["handwritten"], 3)}


def suite_seconds_per_city(city: str = "320400") -> float:
    """Wall time of the whole contract suite over one city (a fresh process, as QA runs it)."""
    import subprocess

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from essc.cli import main; main()", "contract", "--city", city],
                   check=True, capture_output=True)
    return round(time.perf_counter() - t0, 2)


def run(calls: int = 20000, suite: bool = True) -> dict:
    """Run every measurement in this process; return the figures."""
    with tempfile.TemporaryDirectory(prefix="essc-bench-") as tmp:
        root = Path(tmp)
        folders = {n: root / f"p{n}" for n in (10, 400, 1000)}
        for n, folder in folders.items():
            make_plugins(folder, n, prefix=f"essc_bench{n}_")
        cold, warm = _ready_ms(folders[400])
        measured = _overheads({10: folders[10], 1000: folders[1000]}, calls)
        o10, o1000 = measured[10], measured[1000]
        for folder in folders.values():  # forget the synthetic modules
            sys.path[:] = [p for p in sys.path if p != str(folder)]
        return {
            "registry_ready_ms_400": round(warm, 2),
            "registry_ready_ms_400_first": round(cold, 2),
            "registry_load_all_ms_1000": round(o1000["load_all_ms"], 1),
            "overhead_us_10": round(o10["overhead_us"], 2),
            "overhead_us_1000": round(o1000["overhead_us"], 2),
            "overhead_ratio_1000_vs_10": round(o1000["overhead_us"] / o10["overhead_us"], 3),
            "call_us_10": round(o10["call_us"], 2),
            "call_us_1000": round(o1000["call_us"], 2),
            "raw_call_us": round(o10["raw_us"], 3),
            "calls_per_measure": calls,
            **spec_vs_handwritten(),
            **({"suite_s_per_city": suite_seconds_per_city()} if suite else {}),
            "python": sys.version.split()[0],
        }
