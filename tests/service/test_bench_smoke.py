"""Smoke runs of bench/activation_bench.py (issue 10's figures) with tiny numbers: the JSON has
every figure and every activation a channel submitted was activated. Never a speed assertion:
the figures belong to the benchmark, not to the tests."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "activation_bench.py"


def run_bench(*args: str, timeout: float = 240) -> dict:
    proc = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"the bench failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_slow_cities_figures_small_run():
    out = run_bench("--latency-ms", "20", "--concurrency", "4", "--activations", "12",
                    "--fast-activations", "16", "--fast-concurrency", "4", "--no-suite")

    for key in ("activations_per_s", "p50_s", "p99_s", "rss_mb", "limit_per_s", "rejected"):
        assert key in out["slow"], key
    assert out["fast"]["ratio"] is not None and out["fast"]["ratio"] > 0
    assert "p99_ratio" in out["isolation"] and out["isolation"]["p99_ratio"] is not None
    assert "suite_400_s" in out and out["suite_400_s"] is None  # --no-suite
    assert len(out["load"]["before"]) == 3 and len(out["load"]["after"]) == 3
    assert len(out["load"]["python_loop_ms"]) == 2 and min(out["load"]["python_loop_ms"]) > 0
    assert out["params"]["latency_ms"] == 20 and out["params"]["concurrency"] == 4

    slow = out["slow"]
    assert slow["submitted"] == 12 and slow["activated"] == 12, slow["not_activated"]
    assert slow["p50_s"] <= slow["p99_s"]
    assert slow["rss_mb"] > 0
    assert out["fast"]["submitted"] == 16 and out["fast"]["activated"] == 16, out["fast"]["not_activated"]
    # the machine's own bound: what the mock and the client cost, whatever the service does
    for phase in (slow, out["fast"]):
        per = phase["cpu_ms_per_activation"]
        assert set(per) == {"client", "serve", "mock"} and min(per.values()) >= 0
        assert per["client"] > 0  # this process drove every request (the others count in clock ticks)
    assert slow["without_service_per_s"] > 0
    assert slow["closed_loop_wait_floor_s"] == pytest.approx(
        4 / min(slow["without_service_per_s"], slow["limit_latency_per_s"]), rel=0.01)
    assert out["fast"]["ratio_without_service"] > 0
    # what each target asks of the service: the rate it needs, and the CPU budget at that rate
    slow_need = slow["to_meet"]
    assert slow_need["p99_s"] == 2.0
    assert slow_need["activations_per_s"] == pytest.approx(slow["activations_per_s"] * slow["p99_s"] / 2.0, abs=0.051)
    fast_need = out["fast"]["to_meet"]
    assert fast_need["ratio"] == 0.3
    assert fast_need["activations_per_s"] == pytest.approx(0.3 * out["fast"]["direct_mock_calls_per_s"], abs=0.051)
    for need in (slow_need, fast_need):
        assert need["service_cpu_ms_at_most"] is None or need["service_cpu_ms_at_most"] > 0
    iso = out["isolation"]
    assert iso["requests"] >= 2 * iso["healthy_activated"] and iso["polls"] >= 0
    assert iso["hang_submitted"] > 0  # the hanging city had channels too (they submit and leave)
    assert iso["healthy_submitted"] + iso["hang_submitted"] == 12
    assert iso["healthy_activated"] == iso["healthy_submitted"], iso["healthy_not_activated"]


@pytest.mark.slow
def test_open_loop_figures_small_run():
    """--arrival-rate: citizens arrive at a rate (open loop) instead of C channels back to back."""
    out = run_bench("--latency-ms", "20", "--concurrency", "4", "--activations", "8", "--phases", "open",
                    "--arrival-rate", "10", "--no-suite")

    assert "open" in out["params"]["phases"] and "slow" not in out
    opened = out["open"]
    assert opened["arrival_rate_per_s"] == 10
    assert opened["submitted"] == 8 and opened["activated"] == 8, opened["not_activated"]
    assert opened["p50_s"] <= opened["p99_s"]


@pytest.mark.slow
def test_activation_cost_prints_statements_and_cpu_per_activation():
    proc = subprocess.run([sys.executable, str(BENCH.with_name("activation_cost.py")), "--n", "6", "--warm", "1"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert out["activations"] == 6
    for key in ("statements", "by_verb", "commits", "store_gets", "cpu_us", "wall_us", "load"):
        assert key in out, key
    assert out["statements"] > 0 and out["commits"] > 0


@pytest.mark.slow
def test_suite_over_synthetic_cities_runs():
    """The synthetic manifest-only plugin is valid and the suite runs over its cities (the figure
    is suite_400_s only for 400 cities)."""
    out = run_bench("--latency-ms", "0", "--phases", "suite", "--suite-cities", "2", "--suite-timeout-s", "180")

    assert out["suite_400_s"] is None
    suite = out["suite"]
    assert suite["cities"] == 2 and not suite["timed_out"]
    assert suite["summary"] and "passed" in suite["summary"], suite
    assert suite["wall_s"] > 0


def test_city_search_bench_prints_its_figures():
    """bench/city_search_bench.py over the whole country, one round (the figures are the bench's)."""
    proc = subprocess.run([sys.executable, str(BENCH.with_name("city_search_bench.py")), "--rounds", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert out["cities"] >= 340 and out["queries"] >= 5 * 340 and out["rounds"] == 1
    for figure in ("search", "rows"):
        assert set(out[figure]) == {"p50_us", "p99_us", "max_us", "mean_us"}
        assert 0 < out[figure]["p50_us"] <= out[figure]["p99_us"] <= out[figure]["max_us"]
    assert out["grouped_ms"] > 0 and out["build_s"] > 0


@pytest.mark.slow
def test_scale_out_figures_small_run_on_postgres_and_redis():
    """--database-url / --queue-url / --api-processes / --workers: each phase on a fresh PostgreSQL
    database and Redis queue name, two API processes and a worker process; nothing left behind."""
    psycopg = pytest.importorskip("psycopg")
    redis = pytest.importorskip("redis")
    from .conftest import PG_ADMIN, REDIS

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except (psycopg.OperationalError, redis.exceptions.ConnectionError) as err:
        pytest.skip(f"PostgreSQL or Redis not reachable: {err}")
    out = run_bench("--latency-ms", "20", "--concurrency", "4", "--activations", "12", "--phases", "slow",
                    "--database-url", PG_ADMIN, "--queue-url", REDIS, "--api-processes", "2", "--workers", "1",
                    "--no-suite")

    params = out["params"]
    assert (params["database"], params["queue"], params["api_processes"], params["worker_processes"]) == (
        "postgresql", "redis", 2, 1)
    assert out["slow"]["submitted"] == 12 and out["slow"]["activated"] == 12, out["slow"]["not_activated"]
    with admin:
        left = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'essc_bench_%'").fetchall()
    assert left == []


def _load_bench(monkeypatch):
    """bench/activation_bench.py as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("activation_bench_module", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    return bench


def test_what_the_machine_allows_holds_each_process_to_one_core(monkeypatch):
    """``without_service_per_s``: the cores shared by the mock and the client, and neither past one
    core (each is one Python process): a mock costing 3 ms per activation allows 333/s however many
    cores there are, not 2 cores / 4 ms = 500/s."""
    bench = _load_bench(monkeypatch)
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    assert bench.without_service_per_s({"cpu_ms_per_activation": {"mock": 3.0, "client": 1.0, "serve": 6.0}}) == 333.3
    assert bench.without_service_per_s({"cpu_ms_per_activation": {"mock": 1.0, "client": 1.0, "serve": 6.0}}) == 1000.0
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 1)
    assert bench.without_service_per_s({"cpu_ms_per_activation": {"mock": 3.0, "client": 1.0, "serve": 6.0}}) == 250.0
    assert bench.without_service_per_s({"cpu_ms_per_activation": {"mock": 0.0, "client": 0.0, "serve": 6.0}}) is None


def test_service_cpu_budget_is_what_the_cores_leave_at_the_needed_rate(monkeypatch):
    """``to_meet.service_cpu_ms_at_most``: at 250 activations/s two cores give 8 ms per activation;
    a mock at 3 ms and a client at 1 ms leave the service 4 ms. None when no service could: the
    mock alone past one core, nothing left, or the cities' latency forbids the rate."""
    bench = _load_bench(monkeypatch)
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    per = {"mock": 3.0, "client": 1.0, "serve": 6.0}
    assert bench.service_cpu_budget_ms(250, per) == 4.0
    assert bench.service_cpu_budget_ms(400, {"mock": 2.0, "client": 1.0, "serve": 6.0}) == 2.0
    assert bench.service_cpu_budget_ms(334, per) is None  # the mock would need 1.002 cores
    assert bench.service_cpu_budget_ms(250, {"mock": 3.0, "client": 5.0, "serve": 6.0}) is None  # 8 - 8 = 0
    assert bench.to_meet("p99_s", 2.0, 250, {"cpu_ms_per_activation": per}) == {
        "p99_s": 2.0, "activations_per_s": 250, "service_cpu_ms_at_most": 4.0}
    assert bench.to_meet("p99_s", 2.0, 250, {"cpu_ms_per_activation": per}, 200.0)["service_cpu_ms_at_most"] is None
    assert bench.to_meet("ratio", 0.3, None, {})["service_cpu_ms_at_most"] is None


def test_memory_sampler_reads_pss_only_when_due(monkeypatch):
    """RSS at every sample, PSS (a walk of every page table of the service, under its memory-map
    lock) only every ``pss_every_s`` and at the stop: the bench must not load what it measures."""
    bench = _load_bench(monkeypatch)
    reads = {"rss": 0, "pss": 0}
    clock = [100.0]

    def rss(pid):
        reads["rss"] += 1
        return 1000

    def pss(pid):
        reads["pss"] += 1
        return 500 + reads["pss"]  # grows: the peak is the last reading

    monkeypatch.setattr(bench, "process_tree", lambda root: [root, root + 1])
    monkeypatch.setattr(bench, "rss_kb", rss)
    monkeypatch.setattr(bench, "pss_kb", pss)
    sampler = bench.RssSampler(7, interval_s=0.25, pss_every_s=1.0, clock=lambda: clock[0])
    for _ in range(4):  # 0.75 s of samples: PSS at the first only
        sampler.sample()
        clock[0] += 0.25
    assert reads == {"rss": 8, "pss": 2}
    sampler.sample()  # 1.0 s after the first: due
    assert reads == {"rss": 10, "pss": 4}
    sampler.sample(pss=True)  # the stop's reading
    assert reads["pss"] == 6 and sampler.peak_pss_kb == 2 * 506 - 1 and sampler.peak_kb == 2000
    assert sampler.samples == 6 and sampler.processes == 2
