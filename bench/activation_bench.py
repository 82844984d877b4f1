"""Figures of the activation service. Prints ONE JSON object on stdout, progress on stderr.

    python bench/activation_bench.py [--n 400] [--chaos 2000] [--inprocess-mock]
    python bench/activation_bench.py --latency-ms 300 --concurrency 500 [--hang-city 330500] [--no-suite]
    python bench/activation_bench.py --latency-ms 300 --concurrency 500 --no-suite \
        --database-url postgresql://postgres@127.0.0.1:5432/test --queue-url redis://127.0.0.1:6379/0 \
        --api-processes 2 [--workers 2] [--arrival-rate R]

The mock city systems run in their own process (`essc mock`), as remote cities would.

Without ``--latency-ms`` (the service in this process, through ``rt.service``):

1. throughput: end-to-end activations/s through the service (SQLite, 4 client threads)
   vs direct mock calls/s (the plugin's read_card straight to the mock) in the same run;
2. delayed sync: seconds from the record becoming visible to the activation completing,
   and the read_card calls the city received meanwhile, for several delays;
3. chaos: activations over every mock city under random faults: lost, duplicates, states.

With ``--latency-ms MS`` (issue 10, "slow cities"): ``essc serve`` runs as a subprocess against
the mock process (a fresh data folder and a mock reset for each phase) and C synthetic
channels drive it over HTTP, both steps of the flow, as a channel does:
``POST /v1/activations`` -> (201, or 202 then ``GET /v1/activations/{id}``: long-poll with
``?wait=S`` when the server's OpenAPI document offers it, else polling) ->
``POST /v1/activations/{id}/verification`` -> (201 with the credential, or 202 then GET until
``activated``). 429/503 are retried after ``Retry-After`` and counted (``rejected``).

- ``fast``: latency 0: activations/s through the API over direct mock calls/s (the plugin's
  read_card straight to the mock, from this process), same concurrency; the API rate is also
  the CPU-bound rate of ``slow.limit_per_s``; ``ratio_without_service``: the ratio a service
  costing no CPU would reach here (the mock's and the client's CPU per activation alone, each
  of them one process: one core at most);
- ``slow``: latency MS on every city operation, C channels: activations/s, p50/p99 seconds
  from submission to activated, peak VmRSS of the ``essc serve`` process tree (from /proc),
  the floor ``limit_per_s`` = min(C / (3 city calls x MS), fast rate);
  ``without_service_per_s``: the rate the machine's cores allow the mock and the client alone
  (their CPU per activation, measured in the phase: they share the cores with the service; each
  is one process, so one core at most) and
  ``closed_loop_wait_floor_s`` = C / min(that, C / (3 x MS)): the mean wait of the closed loop
  (Little's law) below which no service can go on this machine;
- ``to_meet`` (slow: ``--target-p99-s``, default 2.0; fast: ``--target-ratio``, default 0.30):
  the activations/s the target needs (slow: the rate x p99 / target, since the closed loop's wait
  is C / rate; fast: target x direct calls/s) and ``service_cpu_ms_at_most``, the service's CPU
  per activation above which the machine's cores cannot carry that rate beside the mock and the
  client (null: no service could) - to read against ``cpu_ms_per_activation.serve``;
- every phase: ``cpu_s`` and ``cpu_ms_per_activation`` of the client, the service and the mock;
- ``isolation``: the slow phase again with ``--hang-city`` hanging on every operation: p99 of
  the other cities over their p99 in the slow phase (channels of the hanging city submit and
  leave: they do not hold client slots);
- ``open`` (``--arrival-rate R`` or ``--phases ...,open``): the slow phase open loop: citizens
  arrive at R per second (default 0.8 x the slow phase's rate), each served by a free channel,
  seconds counted from the arrival - what a citizen waits at that load, where the closed loop's
  p50 is about C / throughput whatever the service does (Little's law);
- ``suite_400_s``: wall time of ``essc contract`` over 400 synthetic cities (one manifest-only
  rest-json plugin in a temporary ``ESSC_PLUGIN_DIRS``; ``--no-suite`` skips it). The suite
  teaches the mock its cities once and waits on the hang checks' budgets in batches
  (conformance/hangs.py); with pytest-xdist installed it also runs ``-n auto --dist loadgroup``;
- ``load``: the load average before and after, and ``python_loop_ms``: the CPU time of a fixed
  Python loop before and after, how fast the machine ran (it drifts: compare runs against it).

Scale-out (``--database-url postgresql://... --queue-url redis://... --api-processes N --workers M``):
each phase gets a fresh PostgreSQL database (dropped after it) and its own Redis queue name; N
``essc serve`` processes (channels take turns) and M ``essc worker`` processes share them; CPU
and peak RSS are summed over all of them.

The client is a pool of C threads, each one keep-alive ``http.client`` connection (a channel):
the standard library only (no new dependency), and cheaper per request than requests, since the
client shares the machine's cores with the server and the mock (its CPU time is in the JSON).
"""
from __future__ import annotations

import argparse
import http.client
import importlib.util
import itertools
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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

    def __init__(self, per_city: int, threads: int | None = None) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        extra = ["--threads", str(threads)] if threads else []
        self.proc = subprocess.Popen([sys.executable, "-c", "from essc.cli import main; main()", "mock",
                                      "--port", str(port), "--citizens-per-city", str(per_city), *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
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
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


# -- issue 10: slow cities, through the HTTP API of `essc serve` ---------------------------------
AUTH = {"X-Channel": "demo", "X-Api-Key": "demo-key"}
CALLS_PER_ACTIVATION = 3  # read_card, verify_identity, activate
SCENARIOS_BEFORE_NORMAL = 5  # the mock's fixed scenarios after the first normal citizen (docs/mock.md)


def say(*parts) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


def quantile(values: list[float], q: float) -> float | None:
    """Linear-interpolated quantile (q in 0..1); None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


# -- the service process and what it costs ------------------------------------------------------
def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(name))
    return out


def process_tree(root: int) -> list[int]:
    children, out, stack = _children(), [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack += children.get(pid, [])
    return out


def _proc_kb(pid: int, name: str, field: str) -> int:
    """The ``field`` (in kB) of ``/proc/<pid>/<name>``; 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    return _proc_kb(pid, "status", "VmRSS:")


def pss_kb(pid: int) -> int:
    """Proportional set size: pages shared by the processes of a tree (``essc serve --processes``
    forks its API processes from a parent that imported the code) are counted once in all."""
    return _proc_kb(pid, "smaps_rollup", "Pss:")


def cpu_s(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (children already waited for included)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / tick


class RssSampler(threading.Thread):
    """Peak VmRSS (sum over the process tree of ``root``: shared pages counted in every process),
    sampled every ``interval_s``, and peak PSS (shared pages divided among the processes sharing
    them), sampled every ``pss_every_s`` (and at the start and the stop).

    PSS less often because reading it perturbs what is measured: ``/proc/<pid>/smaps_rollup`` walks
    every page table of the process, holding its memory-map lock; for the 3 processes of
    ``essc serve`` in the slow phase one reading cost 7.4 ms of CPU (26 ms wall), i.e. ~4% of a
    core at 5 readings a second, where ``VmRSS`` (``/proc/<pid>/status``) costs 0.05 ms."""

    def __init__(self, root: int | list[int], interval_s: float = 0.2, pss_every_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.roots, self.interval_s = root if isinstance(root, list) else [root], interval_s
        self.pss_every_s, self.clock = pss_every_s, clock
        self.peak_kb, self.peak_pss_kb, self.samples, self.processes = 0, 0, 0, 0
        self._next_pss = 0.0
        self._halt = threading.Event()

    def sample(self, *, pss: bool | None = None) -> None:
        """One reading of the tree's RSS; of its PSS too when ``pss`` (None: when it is due)."""
        pids = [pid for root in self.roots for pid in process_tree(root)]
        self.peak_kb = max(self.peak_kb, sum(rss_kb(pid) for pid in pids))
        now = self.clock()
        if pss or (pss is None and now >= self._next_pss):
            self._next_pss = now + self.pss_every_s
            self.peak_pss_kb = max(self.peak_pss_kb, sum(pss_kb(pid) for pid in pids))
        self.processes = max(self.processes, len(pids))
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval_s)

    def stop(self) -> float:
        self._halt.set()
        self.join(timeout=5)
        self.sample(pss=True)
        return self.peak_kb / 1024


class ServeProcess:
    """`essc serve` as a subprocess with its own data folder, against the mock process."""

    def __init__(self, mock_url: str, data_dir: Path, env_overrides: dict[str, str], *, log_name: str = "serve.log",
                 worker_threads: int | None = None) -> None:
        """``worker_threads``: run ``essc worker --workers N`` instead (queue workers, no API)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("ESSC_PLUGIN_DIRS", "ESSC_DATABASE_URL",
                                                              "ESSC_QUEUE_URL")}
        env.update(ESSC_DATA_DIR=str(data_dir), ESSC_CITY_BASE_URL=mock_url, **env_overrides)
        self.log_path = data_dir / log_name
        self._log = open(self.log_path, "wb")
        command = (["worker", "--workers", str(worker_threads)] if worker_threads
                   else ["serve", "--port", str(self.port)])
        self.proc = subprocess.Popen([sys.executable, "-c", "from essc.cli import main; main()", *command],
                                     env=env, stdout=self._log, stderr=self._log)
        self.long_poll_max_s: float | None = None
        if worker_threads:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"essc serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _, _ = HttpChannel(self.url, timeout=2).request("GET", "/healthz", auth=False)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"essc serve did not answer /healthz within 60 s:\n{self.log_tail()}")
        self.long_poll_max_s = self._long_poll_cap()

    def _long_poll_cap(self) -> float | None:
        """The ``wait`` query parameter of GET /v1/activations/{id} in the server's OpenAPI
        document: its maximum (seconds), or None when the server has no long-poll."""
        try:
            status, _, doc = HttpChannel(self.url, timeout=10).request("GET", "/v1/openapi.json", auth=False)
            params = doc["paths"]["/v1/activations/{id}"]["get"].get("parameters", []) if status == 200 else []
        except (OSError, KeyError, TypeError, ValueError):
            return None
        for param in params:
            if param.get("name") == "wait" and param.get("in") == "query":
                return float(param.get("schema", {}).get("maximum", 30))
        return None

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


# -- the client: synthetic channels ---------------------------------------------------------
class HttpChannel:
    """One channel: a keep-alive HTTP/1.1 connection to the API (standard library)."""

    def __init__(self, url: str, timeout: float) -> None:
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None, *, auth: bool = True):
        """``(status, Retry-After header or None, JSON body or None)``. A keep-alive connection
        the server closed meanwhile is reopened once (every call of the flow may be repeated:
        a resubmission finds the activation, a repeated verification gets 409)."""
        payload = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Accept": "application/json", **(AUTH if auth else {})}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, payload, headers)
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2 or not reused:
                    raise
                continue
            if resp.will_close:
                self.close()
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            return resp.status, resp.getheader("Retry-After"), parsed
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Tally:
    """Counters shared by the channels of one phase."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    polls: int = 0
    rejected: dict = field(default_factory=dict)  # HTTP status (429/503) -> count
    conn_errors: int = 0
    first_answer: dict = field(default_factory=dict)  # HTTP status of the submission -> count
    verify_answer: dict = field(default_factory=dict)

    def add(self, name: str, key=None) -> None:
        with self.lock:
            if key is None:
                setattr(self, name, getattr(self, name) + 1)
            else:
                counts = getattr(self, name)
                counts[str(key)] = counts.get(str(key), 0) + 1


@dataclass
class Job:
    city: str
    id_number: str
    name: str
    submit_only: bool = False  # a channel of the hanging city: submit, note the answer, leave


@dataclass
class Outcome:
    city: str
    started: float
    ended: float | None = None
    status: str | None = None
    submit_s: float | None = None  # time to the submission's answer
    detail: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


class Client:
    """What every channel does: the two steps of the flow, waiting the way the server allows."""

    def __init__(self, url: str | list[str], tally: Tally, *, long_poll_s: float | None, poll_s: float,
                 job_timeout_s: float, alive=lambda: True) -> None:
        """``url``: the API, or several API processes (each channel keeps to one, in turn)."""
        self.urls = [url] if isinstance(url, str) else list(url)
        self.tally, self.alive = tally, alive
        self.long_poll_s, self.poll_s, self.job_timeout_s = long_poll_s, poll_s, job_timeout_s
        self.local = threading.local()
        self._turn = itertools.count()

    def channel(self) -> HttpChannel:
        ch = getattr(self.local, "channel", None)
        if ch is None:
            url = self.urls[next(self._turn) % len(self.urls)]
            ch = self.local.channel = HttpChannel(url, timeout=max(60.0, (self.long_poll_s or 0) + 30))
        return ch

    def call(self, method: str, path: str, body: dict | None, deadline: float):
        """One API call; 429/503 retried after Retry-After (counted), connection errors retried."""
        while True:
            try:
                self.tally.add("requests")
                status, retry_after, data = self.channel().request(method, path, body)
            except (OSError, http.client.HTTPException):
                self.tally.add("conn_errors")
                if time.monotonic() > deadline or not self.alive():
                    raise
                time.sleep(0.2)
                continue
            if status in (429, 503) and time.monotonic() < deadline:
                self.tally.add("rejected", status)
                try:
                    wait = float(retry_after) if retry_after else 1.0
                except ValueError:
                    wait = 1.0
                time.sleep(min(max(wait, 0.05), max(deadline - time.monotonic(), 0.05)))
                continue
            return status, retry_after, data

    def follow(self, act_id: str, stay: tuple[str, ...], deadline: float) -> dict:
        """GET the activation until its status leaves ``stay``: long-poll when the server offers
        it, else poll with a short interval (never two GETs closer than ``poll_s``)."""
        interval = self.poll_s
        path = f"/v1/activations/{act_id}"
        if self.long_poll_s:
            path += f"?wait={self.long_poll_s:g}"
        view: dict = {"status": stay[0], "id": act_id}
        while True:
            t0 = time.monotonic()
            if t0 > deadline:
                return {**view, "timed_out": True}
            self.tally.add("polls")
            code, _, got = self.call("GET", path, None, deadline)
            if code != 200 or not isinstance(got, dict):
                return {"status": f"get_http_{code}", "id": act_id, "error": (got or {}).get("error")}
            view = got
            if view["status"] not in stay:
                return view
            rest = interval - (time.monotonic() - t0)  # no long-poll, or it came back at once: no spinning
            if rest > 0:
                time.sleep(rest)
            if not self.long_poll_s:
                interval = min(interval * 1.25, 0.5)

    def activate(self, job: Job, started: float | None = None) -> Outcome:
        """Both steps for ``job``; seconds count from ``started`` (default: now; an open-loop
        arrival passes the time the citizen arrived, so time spent waiting for a channel counts)."""
        started = time.perf_counter() if started is None else started
        deadline = time.monotonic() + self.job_timeout_s
        out = Outcome(job.city, started)
        code, _, view = self.call("POST", "/v1/activations", {"city": job.city, "id_number": job.id_number,
                                                               "name": job.name, "consent": True}, deadline)
        out.submit_s = time.perf_counter() - started
        self.tally.add("first_answer", code)
        if code not in (200, 201, 202) or not isinstance(view, dict):
            out.status, out.detail = f"submit_http_{code}", _error_code(view)
            return out
        act_id, status = view["id"], view["status"]
        if job.submit_only:
            out.status = status
            return out
        in_check = False  # a verification of this activation is in motion (202, or 409 busy)
        while True:
            if status == ACTIVATED:
                out.ended, out.status = time.perf_counter(), status
                return out
            if status in WAITING or in_check:
                stay = (*WAITING, AWAITING) if in_check else WAITING
                # a check in motion that leaves the card record waiting (it failed): verify again
                view = self.follow(act_id, stay, min(deadline, time.monotonic() + 30) if in_check else deadline)
                status, in_check = view["status"], False
                if view.get("timed_out") and time.monotonic() > deadline:
                    out.status, out.detail = status, "channel gave up (--job-timeout-s)"
                    return out
                continue
            if status != AWAITING:  # a final state other than activated
                out.status, out.detail = status, _error_code(view)
                return out
            if time.monotonic() > deadline:
                out.status, out.detail = status, "channel gave up (--job-timeout-s)"
                return out
            code, retry_after, view = self.call("POST", f"/v1/activations/{act_id}/verification", VERIFY, deadline)
            self.tally.add("verify_answer", code)
            if code in (200, 201, 202) and isinstance(view, dict):
                status = view["status"]
                in_check = code == 202 and status == AWAITING
                continue
            if code == 409 and isinstance(view, dict):  # busy, or not waiting for a check (any more)
                details = (view.get("error") or {}).get("details") or {}
                if retry_after:
                    time.sleep(min(float(retry_after), 5.0))
                status = details.get("activation_status") or AWAITING
                in_check = status == AWAITING
                continue
            out.status, out.detail = f"verify_http_{code}", _error_code(view)
            return out


def _error_code(view) -> str | None:
    if isinstance(view, dict) and isinstance(view.get("error"), dict):
        return view["error"].get("code")
    return None


ACTIVATED = states.ACTIVATED
AWAITING = states.AWAITING_VERIFICATION
#: states a channel waits through (the activation changes by itself)
WAITING = tuple(states.RUNNABLE)


def drive(client: Client, jobs: list[Job], concurrency: int, label: str,
          rate: float | None = None) -> tuple[list[Outcome], float]:
    """Run ``jobs`` over ``concurrency`` channels; ``(outcomes, wall seconds)``. Closed loop by
    default (a channel starts its next activation when one ends); with ``rate`` open loop: citizen
    ``i`` arrives at ``i / rate`` s and is served by the next free channel (at most ``concurrency``
    in flight), its seconds counted from its arrival."""
    todo: queue.Queue = queue.Queue()
    for index, job in enumerate(jobs):
        todo.put((index, job))
    start = threading.Event()  # the arrivals count from when every channel exists
    t_start = 0.0
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def channel() -> None:
        try:
            while True:
                try:
                    index, job = todo.get_nowait()
                except queue.Empty:
                    return
                arrival = None
                if rate:
                    start.wait()
                    arrival = t_start + index / rate
                    time.sleep(max(arrival - time.perf_counter(), 0.0))
                try:
                    outcome = client.activate(job, arrival)
                except Exception as err:  # noqa: BLE001 - counted, never a silent loss
                    outcome = Outcome(job.city, time.perf_counter(), status="client_error",
                                      detail=f"{type(err).__name__}: {err}")
                with lock:
                    outcomes.append(outcome)
        finally:
            ch = getattr(client.local, "channel", None)
            if ch is not None:
                ch.close()

    threads = [threading.Thread(target=channel, name=f"channel-{i}", daemon=True)
               for i in range(min(concurrency, len(jobs)))]
    for t in threads:
        t.start()
    t0 = t_start = time.perf_counter()
    start.set()
    next_note = time.monotonic() + 5
    while True:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            break
        alive[0].join(timeout=0.5)
        if time.monotonic() >= next_note:
            with lock:
                done = sum(1 for o in outcomes if o.status == ACTIVATED)
            say(f"{label}: {len(outcomes)}/{len(jobs)} answered, {done} activated, "
                f"{sum(client.tally.rejected.values())} rejected, {time.perf_counter() - t0:.0f}s")
            next_note = time.monotonic() + 5
    return outcomes, time.perf_counter() - t0


def summarize(outcomes: list[Outcome], wall_s: float, tally: Tally) -> dict:
    done = [o for o in outcomes if o.status == ACTIVATED]
    seconds = [o.seconds for o in done]
    span = (max(o.ended for o in done) - min(o.started for o in outcomes)) if done else wall_s
    others: dict[str, int] = {}
    for o in outcomes:
        if o.status != ACTIVATED:
            key = o.status + (f" ({o.detail})" if o.detail else "")
            others[key] = others.get(key, 0) + 1
    return {"submitted": len(outcomes), "activated": len(done), "not_activated": others,
            "activations_per_s": round(len(done) / span, 1) if span > 0 else None,
            "p50_s": rounded(quantile(seconds, 0.5)), "p99_s": rounded(quantile(seconds, 0.99)),
            "max_s": rounded(max(seconds) if seconds else None),
            "submit_p50_s": rounded(quantile([o.submit_s for o in outcomes if o.submit_s is not None], 0.5)),
            "submit_p99_s": rounded(quantile([o.submit_s for o in outcomes if o.submit_s is not None], 0.99)),
            "wall_s": round(wall_s, 2), "rejected": sum(tally.rejected.values()),
            "rejected_by_status": tally.rejected, "requests": tally.requests, "polls": tally.polls,
            "connection_errors": tally.conn_errors, "submission_answers": tally.first_answer,
            "verification_answers": tally.verify_answer}


# -- the phases ---------------------------------------------------------------------------
@dataclass
class Plan:
    args: argparse.Namespace
    mock: MockProcess
    admin: MockAdmin
    cities: list[str]
    people: dict  # city -> normal citizens (index 0 warms up)
    tmp: Path
    env: dict

    def jobs(self, n: int, skip_city: str | None = None, submit_only_city: str | None = None) -> list[Job]:
        out = []
        for i in range(n):
            city = self.cities[i % len(self.cities)]
            if city == skip_city:
                continue
            p = self.people[city][1 + i // len(self.cities)]
            out.append(Job(city, p["id_number"], p["name"], submit_only=city == submit_only_city))
        return out


def plan_cities(admin: MockAdmin, url: str) -> list[str]:
    """Cities the mock plays as supported and the registry serves."""
    served = {c.code for c in Registry(Settings(base_url=url)).setup().cities()}
    return [c["code"] for c in admin.cities() if c.get("mode") == "supported" and c["code"] in served]


class Deployment:
    """The service of one phase: ``--api-processes`` x ``essc serve`` and ``--workers`` x ``essc worker``
    sharing one data folder (SQLite) or, with ``--database-url`` / ``--queue-url``, a fresh
    PostgreSQL database and a fresh Redis queue name (dropped after the phase)."""

    def __init__(self, plan: Plan, name: str) -> None:
        a = plan.args
        self.name, self.cleanups = name, []
        env = {**plan.env, "ESSC_SECRET_KEY": plan.env.get("ESSC_SECRET_KEY") or os.urandom(24).hex()}
        if a.database_url:
            env["ESSC_DATABASE_URL"], db = self._fresh_database(a.database_url, name)
            self.cleanups.append(lambda: self._drop_database(a.database_url, db))
        if a.queue_url:
            env.update(ESSC_QUEUE_URL=a.queue_url, ESSC_QUEUE_NAME=f"essc-bench-{name}-{os.getpid()}")
            self.cleanups.append(lambda: _drop_queue(a.queue_url, env["ESSC_QUEUE_NAME"]))
        folder = plan.tmp / name
        self.apis: list[ServeProcess] = []
        self.workers: list[ServeProcess] = []
        try:
            for i in range(max(1, a.api_processes)):
                self.apis.append(ServeProcess(plan.mock.url, folder, env, log_name=f"serve{i}.log"))
            for i in range(a.workers):
                self.workers.append(ServeProcess(plan.mock.url, folder, env, log_name=f"worker{i}.log",
                                                 worker_threads=a.worker_threads))
        except BaseException:
            self.stop()
            raise
        self.url, self.urls = self.apis[0].url, [p.url for p in self.apis]
        self.long_poll_max_s = self.apis[0].long_poll_max_s
        self.proc = self.apis[0].proc

    @staticmethod
    def _fresh_database(server_url: str, name: str) -> tuple[str, str]:
        """A new database on the server of ``server_url``: (its SQLAlchemy URL, its name)."""
        import psycopg

        db = f"essc_bench_{name}_{os.getpid()}"
        admin_url = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
        return admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{db}", db

    @staticmethod
    def _drop_database(server_url: str, db: str) -> None:
        import psycopg

        with psycopg.connect(server_url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def processes(self) -> list[ServeProcess]:
        return [*self.apis, *self.workers]

    def roots(self) -> list[int]:
        return [p.proc.pid for p in self.processes()]

    def pids(self) -> list[int]:
        return [pid for p in self.processes() for pid in p.pids()]

    def alive(self) -> bool:
        return all(p.proc.poll() is None for p in self.processes())

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log_tail()}" for p in self.processes())

    def stop(self) -> int | None:
        codes = [p.stop() for p in self.processes()]
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception as err:  # noqa: BLE001 - a leftover is reported, the figures stand
                say(f"{self.name}: cleanup failed: {type(err).__name__}: {err}")
        bad = [c for c in codes if c not in (0, None)]
        return bad[0] if bad else (codes[0] if codes else None)


def _drop_queue(url: str, name: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


def start_serve(plan: Plan, name: str) -> Deployment:
    serve = Deployment(plan, name)
    offered = f"up to {serve.long_poll_max_s:g}s" if serve.long_poll_max_s else "not offered: polling"
    say(f"{name}: essc serve x{len(serve.apis)} on {', '.join(serve.urls)}"
        + (f" + essc worker x{len(serve.workers)}" if serve.workers else "") + f"; long-poll {offered}")
    return serve


def make_client(plan: Plan, serve: Deployment, tally: Tally) -> Client:
    mode = plan.args.long_poll
    cap = serve.long_poll_max_s
    wait = None
    if mode == "on" or (mode == "auto" and cap):
        wait = min(plan.args.wait_s, cap or plan.args.wait_s)
    return Client(serve.urls, tally, long_poll_s=wait, poll_s=plan.args.poll_s, job_timeout_s=plan.args.job_timeout_s,
                  alive=serve.alive)


def warm_up(plan: Plan, serve: Deployment, cities: list[str]) -> None:
    """One activation per city (citizen 0), not timed: plugins loaded, sessions open."""
    client = make_client(plan, serve, Tally())
    jobs = [Job(c, plan.people[c][0]["id_number"], plan.people[c][0]["name"]) for c in cities]
    outcomes, _ = drive(client, jobs, len(jobs), "warm-up")
    bad = [(o.city, o.status, o.detail) for o in outcomes if o.status != ACTIVATED]
    if bad:
        say(f"warm-up: not activated: {bad}")


def direct_calls(plan: Plan, n: int, threads: int, rounds: int = 1) -> float:
    """read_card calls/s from this process straight to the mock (the plugin's adapter): ``n``
    citizens' cards, read ``rounds`` times each."""
    reg = Registry(Settings(base_url=plan.mock.url)).setup()
    for city in plan.cities:
        reg.call(city, "health", {"aab301": city})
    calls = []
    for job in plan.jobs(n):
        calls.append((reg.adapter(job.city), {"aac002": job.id_number, "aac003": job.name, "aab301": job.city}))
    calls *= rounds

    def one(item):
        adapter, req = item
        adapter.read_card(req)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, calls))
    return len(calls) / (time.perf_counter() - t0)


def timed_phase(plan: Plan, name: str, jobs: list[Job], concurrency: int, *, warm: list[str],
                before_stop=None, rate: float | None = None) -> dict:
    serve = start_serve(plan, name)
    try:
        warm_up(plan, serve, warm)
        tally = Tally()
        client = make_client(plan, serve, tally)
        sampler = RssSampler(serve.roots())
        sampler.start()
        cpu0 = (time.process_time(), cpu_s(serve.pids()), cpu_s([plan.mock.proc.pid]))
        say(f"{name}: {len(jobs)} activations over {concurrency} channels")
        outcomes, wall = drive(client, jobs, concurrency, name, rate)
        cpu1 = (time.process_time(), cpu_s(serve.pids()), cpu_s([plan.mock.proc.pid]))
        peak_mb = sampler.stop()
        result = summarize([o for o in outcomes], wall, tally)
        result["rss_mb"] = round(peak_mb, 1)
        result["pss_mb"] = round(sampler.peak_pss_kb / 1024, 1)
        result["tree_processes"] = sampler.processes  # the supervisor + API processes (+ workers)
        cpu = {"client": cpu1[0] - cpu0[0], "serve": cpu1[1] - cpu0[1], "mock": cpu1[2] - cpu0[2]}
        result["cpu_s"] = {k: round(v, 1) for k, v in cpu.items()}
        done = result["activated"] or 0  # per activation from the unrounded seconds (a short run: < 0.05 s)
        result["cpu_ms_per_activation"] = {k: round(v * 1000 / done, 2) for k, v in cpu.items()} if done else None
        result["long_poll_s"] = client.long_poll_s
        result["_outcomes"] = outcomes
        say(f"{name}: {result['activated']}/{result['submitted']} activated, {result['activations_per_s']}/s, "
            f"p50 {result['p50_s']}s p99 {result['p99_s']}s, rejected {result['rejected']}, rss {result['rss_mb']} MB")
        return result
    finally:
        if before_stop:
            before_stop()
        code = serve.stop()
        if code not in (0, None):
            say(f"{name}: essc serve exited {code}; log tail:\n{serve.log_tail()}")


def fast_phase(plan: Plan) -> dict:
    a = plan.args
    plan.admin.reset()
    # as many direct calls as the activations make city calls: both measured over a similar time
    # (400 calls took ~1 s and their rate swung 434-602/s between runs)
    say(f"fast: {CALLS_PER_ACTIVATION * a.fast_activations} direct read_card calls over {a.fast_concurrency} threads")
    calls_per_s = direct_calls(plan, a.fast_activations, a.fast_concurrency, rounds=CALLS_PER_ACTIVATION)
    plan.admin.reset()
    r = timed_phase(plan, "fast", plan.jobs(a.fast_activations), a.fast_concurrency, warm=plan.cities)
    r.pop("_outcomes")
    acts = r["activations_per_s"] or 0.0
    bound = without_service_per_s(r)
    return {"ratio": round(acts / calls_per_s, 3), "activations_per_s": acts,
            "direct_mock_calls_per_s": round(calls_per_s, 1), "concurrency": a.fast_concurrency,
            # the ratio a service costing no CPU would reach on this machine (the mock's and the
            # client's CPU per activation alone, each on one core at most)
            "ratio_without_service": round(bound / calls_per_s, 3) if bound else None,
            "to_meet": to_meet("ratio", a.target_ratio, a.target_ratio * calls_per_s, r),
            **{k: r[k] for k in ("submitted", "activated", "not_activated", "p50_s", "p99_s", "rejected",
                                 "requests", "cpu_s", "cpu_ms_per_activation", "rss_mb", "pss_mb",
                                 "tree_processes")}}


def latency_faults(plan: Plan, hang_city: str | None = None) -> None:
    plan.admin.reset()
    if hang_city:  # the first matching fault applies: the hang before the latency
        plan.admin.fault(city=hang_city, operation="*", kind="hang", hang_s=plan.args.hang_s)
    if plan.args.latency_ms:
        plan.admin.fault(city="*", operation="*", kind="latency", latency_ms=plan.args.latency_ms)


def slow_phase(plan: Plan, cpu_rate: float | None) -> dict:
    a = plan.args
    latency_faults(plan)
    r = timed_phase(plan, "slow", plan.jobs(a.activations), a.concurrency, warm=plan.cities,
                    before_stop=plan.admin.reset)
    floor = a.concurrency / (CALLS_PER_ACTIVATION * a.latency_ms / 1000) if a.latency_ms else math.inf
    limit = min(floor, cpu_rate if cpu_rate else math.inf)
    r["limit_per_s"] = round(limit, 1) if math.isfinite(limit) else None
    r["limit_latency_per_s"] = round(floor, 1) if math.isfinite(floor) else None
    r["of_limit"] = round(r["activations_per_s"] / limit, 3) if r["activations_per_s"] and math.isfinite(limit) \
        else None
    # what the machine allows whatever the service does: the mock's and the channels' CPU alone
    bound = without_service_per_s(r)
    r["without_service_per_s"] = bound
    r["closed_loop_wait_floor_s"] = round(a.concurrency / min(bound or math.inf, floor), 3) \
        if bound or math.isfinite(floor) else None
    # the closed loop's wait is C / rate (Little's law): p99 at the target needs the rate scaled by
    # p99 / target, the shape of the waits (p99 over their mean) kept
    needed = r["activations_per_s"] * r["p99_s"] / a.target_p99_s if r["activations_per_s"] and r["p99_s"] else None
    r["to_meet"] = to_meet("p99_s", a.target_p99_s, needed, r, floor)
    return r


def to_meet(figure: str, target: float, needed_per_s: float | None, r: dict,
            latency_floor_per_s: float = math.inf) -> dict:
    """What ``figure`` at ``target`` asks of the service on this machine: the activations/s it needs
    and ``service_cpu_ms_at_most``, the service's CPU per activation above which that rate cannot
    be reached here - every core busy, the mock and the client costing what they cost in this
    phase (:func:`service_cpu_budget_ms`). Compare it with ``cpu_ms_per_activation.serve``."""
    if not needed_per_s:
        return {figure: target, "activations_per_s": None, "service_cpu_ms_at_most": None}
    budget = service_cpu_budget_ms(needed_per_s, r.get("cpu_ms_per_activation"))
    if needed_per_s > latency_floor_per_s:
        budget = None  # the cities' latency alone forbids it
    return {figure: target, "activations_per_s": round(needed_per_s, 1), "service_cpu_ms_at_most": budget}


def service_cpu_budget_ms(rate_per_s: float, per: dict | None) -> float | None:
    """The service's CPU per activation (ms) at which the machine's cores could just carry
    ``rate_per_s`` activations/s, given the mock's and the client's CPU per activation ``per``:
    cores x 1000 / rate - mock - client. None when no service could: the mock or the client alone
    past one core at that rate (each is one Python process), or nothing left for the service."""
    if not per or rate_per_s <= 0:
        return None
    if any(per[who] * rate_per_s > 1000 for who in ("mock", "client")):
        return None
    budget = (os.cpu_count() or 1) * 1000 / rate_per_s - per["mock"] - per["client"]
    return round(budget, 2) if budget > 0 else None


def without_service_per_s(r: dict) -> float | None:
    """Activations/s the machine would allow if the service cost no CPU: the mock's and the
    client's CPU per activation, measured in the phase, over every core (they share them) - and
    neither of them past one core: each is one Python process, held to one core by its GIL (the
    fast phase's direct calls show it: the mock answers ~1 / its CPU per call, whatever the
    cores)."""
    per = r.get("cpu_ms_per_activation")
    if not per or not (per["mock"] + per["client"]):
        return None
    bounds = [(os.cpu_count() or 1) * 1000 / (per["mock"] + per["client"])]
    bounds += [1000 / per[who] for who in ("mock", "client") if per[who] > 0]
    return round(min(bounds), 1)


def open_phase(plan: Plan, rate: float) -> dict:
    """The slow phase's cities and latency, open loop: citizens arrive at ``rate`` per second
    (each served by a free channel, at most C in flight), seconds counted from the arrival."""
    a = plan.args
    latency_faults(plan)
    r = timed_phase(plan, "open", plan.jobs(a.activations), a.concurrency, warm=plan.cities,
                    before_stop=plan.admin.reset, rate=rate)
    r.pop("_outcomes")
    return {"arrival_rate_per_s": round(rate, 1), **r}


def isolation_phase(plan: Plan, slow: dict) -> dict:
    a = plan.args
    hang = a.hang_city
    healthy = [c for c in plan.cities if c != hang]
    base = [o.seconds for o in slow["_outcomes"] if o.city != hang and o.status == ACTIVATED]
    latency_faults(plan, hang)
    r = timed_phase(plan, "isolation", plan.jobs(a.activations, submit_only_city=hang), a.concurrency,
                    warm=healthy, before_stop=plan.admin.reset)  # the reset releases the hung requests
    outcomes = r.pop("_outcomes")
    mine = [o for o in outcomes if o.city != hang]
    hung = [o for o in outcomes if o.city == hang]
    done = [o for o in mine if o.status == ACTIVATED]
    seconds = [o.seconds for o in done]
    p99, base_p99 = quantile(seconds, 0.99), quantile(base, 0.99)
    span = max(o.ended for o in done) - min(o.started for o in mine) if done else 0.0
    answers: dict[str, int] = {}
    for o in hung:
        answers[o.status or "?"] = answers.get(o.status or "?", 0) + 1
    healthy_not = {}
    for o in mine:
        if o.status != ACTIVATED:
            key = f"{o.status} ({o.detail})" if o.detail else str(o.status)
            healthy_not[key] = healthy_not.get(key, 0) + 1
    return {"p99_ratio": rounded(p99 / base_p99 if p99 and base_p99 else None),
            "hang_city": hang, "healthy_p99_s": rounded(p99), "baseline_p99_s": rounded(base_p99),
            "healthy_p50_s": rounded(quantile(seconds, 0.5)), "baseline_p50_s": rounded(quantile(base, 0.5)),
            "healthy_submitted": len(mine), "healthy_activated": len(seconds),
            "healthy_activations_per_s": rounded(len(seconds) / span, 1) if span else None,
            "healthy_not_activated": healthy_not,
            "hang_submitted": len(hung), "hang_submit_p50_s": rounded(quantile([o.submit_s for o in hung], 0.5)),
            "hang_submit_p99_s": rounded(quantile([o.submit_s for o in hung], 0.99)),
            "hang_submission_states": answers,
            **{k: r[k] for k in ("rejected", "rejected_by_status", "requests", "polls", "submission_answers",
                                 "verification_answers", "rss_mb", "pss_mb", "cpu_s", "cpu_ms_per_activation")}}


# -- the contract suite over many synthetic cities ----------------------------------------
SUITE_PLUGIN = "essc_bench_suite"


def suite_plugin(folder: Path, cities: int) -> Path:
    """One manifest-only plugin (the rest-json dialect spec) with ``cities`` synthetic cities."""
    pkg = folder / SUITE_PLUGIN
    pkg.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": SUITE_PLUGIN, "version": "1.0.0", "contract_version": "1.1", "dialect": "rest-json",
        "description": "bench: synthetic cities served by the rest-json dialect spec",
        "adapter": {"spec": "rest-json"},
        "cities": [{"code": f"{700001 + i}", "name": "合成市", "province": "合成省", "opened": True}
                   for i in range(cities)],
        "capabilities": {"operations": ["read_card", "verify_identity", "activate", "list_services", "health"],
                         "identity_checks": ["sms", "password"],
                         "services": ["identity_login", "social_security", "employment", "payment", "medical_bill"]},
        "timeouts": {"connect_s": 1, "read_s": 3, "total_s": 5, "retries": 1},  # as the reference plugins
        "maintainers": [{"name": "bench", "email": "bench@example.org"}],
    }
    (pkg / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return pkg


def suite_phase(args: argparse.Namespace, tmp: Path) -> dict:
    folder = tmp / "suite-plugins"
    suite_plugin(folder, args.suite_cities)
    cmd = [sys.executable, "-c", "from essc.cli import main; main()", "contract", "--plugin", SUITE_PLUGIN]
    parallel = None
    if importlib.util.find_spec("xdist") is not None and args.suite_workers != 1:
        parallel = str(args.suite_workers or "auto")
        cmd += ["-n", parallel, "--dist", "loadgroup"]  # the hang checks stay together in one worker
    env = {**os.environ, "ESSC_PLUGIN_DIRS": str(folder)}
    log = tmp / "suite.log"
    say(f"suite: essc contract over {args.suite_cities} synthetic cities"
        f"{' (-n ' + parallel + ')' if parallel else ' (no pytest-xdist: one process)'}")
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            code = proc.wait(timeout=args.suite_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            code = None
    wall = time.perf_counter() - t0
    lines = log.read_text(errors="replace").splitlines()
    summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error)", ln)), None)
    say(f"suite: {'timed out' if code is None else 'exit ' + str(code)} after {wall:.1f}s: {summary}")
    return {"cities": args.suite_cities, "wall_s": round(wall, 1), "returncode": code,
            "timed_out": code is None, "summary": summary, "parallel": parallel}


def python_loop_ms(rounds: int = 3, n: int = 300_000) -> float:
    """CPU milliseconds of a fixed pure-Python loop (the least of ``rounds``): how fast this
    machine runs Python right now. On one 2-core machine the same loop's time moved by up to ~1.8x
    over one day; figures of runs far apart compare only relative to it (or to the mock's CPU per
    activation, the same code in every run)."""
    best = float("inf")
    for _ in range(rounds):
        start, total = time.process_time(), 0
        for i in range(n):
            total += i * i
        best = min(best, time.process_time() - start)
    return round(1000 * best, 1)


def slow_cities(args: argparse.Namespace) -> dict:
    started, load_before, loop_before = time.perf_counter(), os.getloadavg(), python_loop_ms()
    phases = args.phases
    result: dict = {}
    n_max = max(args.activations, args.fast_activations)
    with tempfile.TemporaryDirectory(prefix="essc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if phases & {"fast", "slow", "isolation", "open"}:
            mock_threads = args.mock_threads or max(48, 2 * args.concurrency + 64)
            mock = MockProcess(1, threads=mock_threads)  # its cities first, to size the citizens
            try:
                cities = plan_cities(MockAdmin(mock.url), mock.url)
            finally:
                mock.stop()
            # per city: one warm-up citizen + its share of the jobs, after the fixed scenarios
            per_city = math.ceil(n_max / len(cities)) + 2 + SCENARIOS_BEFORE_NORMAL
            say(f"mock: {len(cities)} cities {cities}, {per_city} citizens each, {mock_threads} threads")
            mock = MockProcess(per_city, threads=mock_threads)
            try:
                admin = MockAdmin(mock.url)
                people = {c: admin.citizens(c, "normal") for c in cities}
                env = dict(kv.split("=", 1) for kv in args.serve_env)
                if args.serve_processes:
                    env["ESSC_API_PROCESSES"] = str(args.serve_processes)
                plan = Plan(args, mock, admin, cities, people, tmp, env)
                if "isolation" in phases and args.hang_city not in cities:
                    raise SystemExit(f"--hang-city {args.hang_city} is not one of the supported cities {cities}")
                result["params"] = {"latency_ms": args.latency_ms, "concurrency": args.concurrency,
                                    "activations": args.activations, "hang_city": args.hang_city,
                                    "cities": cities, "fast_concurrency": args.fast_concurrency,
                                    "fast_activations": args.fast_activations, "mock_threads": mock_threads,
                                    "serve_env": env, "phases": sorted(phases),
                                    "database": (args.database_url or "sqlite").split(":", 1)[0],
                                    "queue": (args.queue_url or "sqlite").split(":", 1)[0],
                                    "api_processes": args.api_processes, "worker_processes": args.workers,
                                    "serve_processes": args.serve_processes or "essc serve's default",
                                    "client": "one thread + one keep-alive HTTP/1.1 connection per channel"}
                cpu_rate = None
                if "fast" in phases:
                    result["fast"] = fast_phase(plan)
                    cpu_rate = result["fast"]["activations_per_s"]
                if phases & {"slow", "isolation"}:
                    slow = slow_phase(plan, cpu_rate)
                    if "isolation" in phases:
                        result["isolation"] = isolation_phase(plan, slow)
                    slow.pop("_outcomes")
                    result["slow"] = slow
                if "open" in phases:
                    rate = args.arrival_rate or 0.8 * ((result.get("slow") or {}).get("activations_per_s") or 0)
                    if rate > 0:
                        result["open"] = open_phase(plan, rate)
            finally:
                mock.stop()
        if "suite" in phases:
            suite = suite_phase(args, tmp)
            measured = suite["cities"] == 400 and suite["returncode"] is not None
            result["suite_400_s"] = suite["wall_s"] if measured else None
            result["suite"] = suite
        else:
            result["suite_400_s"] = None
    result["load"] = {"before": [round(x, 2) for x in load_before],
                      "after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
                      "python_loop_ms": [loop_before, python_loop_ms()]}
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    order = ["params", "slow", "fast", "isolation", "open", "suite_400_s", "suite", "load", "elapsed_s"]
    return {k: result[k] for k in order if k in result}


def legacy(args: argparse.Namespace) -> dict:
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
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="activations in the throughput run (without --latency-ms)")
    ap.add_argument("--chaos", type=int, default=2000, help="activations in the chaos run (without --latency-ms)")
    ap.add_argument("--inprocess-mock", action="store_true",
                    help="run the mock in this process (it then competes for the GIL with the service)")
    slow = ap.add_argument_group("slow cities (issue 10): essc serve over HTTP, the mock in its own process")
    slow.add_argument("--latency-ms", type=float, default=None,
                      help="latency fault on every city operation; selects the slow-cities figures")
    slow.add_argument("--concurrency", type=int, default=200, help="concurrent channels (client threads)")
    slow.add_argument("--activations", type=int, default=None,
                      help="activations in the slow and isolation phases (default: 3 x concurrency, at least 100)")
    slow.add_argument("--hang-city", default="330500",
                      help="city hanging on every operation in the isolation phase ('' skips the phase)")
    slow.add_argument("--hang-s", type=float, default=30.0, help="how long a hung city request hangs")
    slow.add_argument("--fast-concurrency", type=int, default=16,
                      help="channels (and direct-call threads) at latency 0")
    slow.add_argument("--fast-activations", type=int, default=400,
                      help="activations at latency 0 (and 3 direct calls per activation)")
    slow.add_argument("--long-poll", choices=("auto", "on", "off"), default="auto",
                      help="GET ?wait=S: auto = when the server's OpenAPI document offers it")
    slow.add_argument("--wait-s", type=float, default=20.0, help="S of ?wait=S (capped by the server's maximum)")
    slow.add_argument("--poll-s", type=float, default=0.1,
                      help="polling interval without long-poll (grows to 0.5 s); minimum between two GETs")
    slow.add_argument("--job-timeout-s", type=float, default=300.0, help="a channel gives up on an activation")
    slow.add_argument("--mock-threads", type=int, default=None, help="essc mock --threads (default 2 x C + 64)")
    slow.add_argument("--database-url", default=None, metavar="URL",
                      help="PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/test): each phase gets a "
                           "fresh database on it, dropped afterwards (default: SQLite in the phase's folder)")
    slow.add_argument("--queue-url", default=None, metavar="URL",
                      help="Redis (e.g. redis://127.0.0.1:6379/0): each phase gets its own queue name")
    slow.add_argument("--api-processes", type=int, default=1, help="essc serve processes (channels take turns)")
    slow.add_argument("--workers", type=int, default=0, help="essc worker processes beside them")
    slow.add_argument("--worker-threads", type=int, default=2, help="essc worker --workers")
    slow.add_argument("--serve-processes", type=int, default=None,
                      help="API processes of each essc serve (ESSC_API_PROCESSES; default: essc serve's own, "
                           "one per core up to 4)")
    slow.add_argument("--serve-env", action="append", default=[], metavar="ESSC_X=V",
                      help="environment of essc serve (repeatable), e.g. ESSC_ANSWER_BUDGET_S=1.5")
    slow.add_argument("--target-p99-s", type=float, default=2.0,
                      help="slow.to_meet: the p99 (s) whose service CPU budget to work out (issue 10: 2.0)")
    slow.add_argument("--target-ratio", type=float, default=0.30,
                      help="fast.to_meet: the ratio whose service CPU budget to work out (issue 10: 0.30)")
    slow.add_argument("--suite", action=argparse.BooleanOptionalAction, default=True,
                      help="time the contract suite over synthetic cities (long)")
    slow.add_argument("--phases", default="fast,slow,isolation,suite",
                      help="comma-separated subset of fast,slow,isolation,open,suite (isolation runs slow too, as "
                           "its baseline; without fast, limit_per_s is the latency floor alone)")
    slow.add_argument("--arrival-rate", type=float, default=None, metavar="R",
                      help="the open phase (added to --phases when given): citizens arrive at R per second "
                           "instead of C channels starting the next activation at once (default with "
                           "--phases ...,open: 0.8 x the slow phase's rate)")
    slow.add_argument("--suite-cities", type=int, default=400, help="synthetic cities of the suite run")
    slow.add_argument("--suite-workers", type=int, default=0,
                      help="pytest-xdist -n (0 = auto when pytest-xdist is installed, 1 = one process)")
    slow.add_argument("--suite-timeout-s", type=float, default=1800.0, help="give up on the suite after this")
    args = ap.parse_args(argv)
    if args.latency_ms is None:
        result = legacy(args)
    else:
        args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
        if args.arrival_rate:
            args.phases.add("open")
        unknown = args.phases - {"fast", "slow", "isolation", "open", "suite"}
        if unknown:
            ap.error(f"unknown phases {sorted(unknown)}")
        if not args.suite:
            args.phases.discard("suite")
        if not args.hang_city:
            args.phases.discard("isolation")
        if args.activations is None:
            args.activations = max(100, 3 * args.concurrency)
        result = slow_cities(args)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
