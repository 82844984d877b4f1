"""The hang checks of a contract run wait on the plugins' budgets together (conformance/hangs.py),
and still prove each plugin keeps its own budget."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from essc.conformance.hangs import HangProbes, hang_fault
from essc.core.errors import UpstreamUnavailable


class FakeCity:
    """Stands in for the mock and the registry: records what the probes did."""

    def __init__(self, refuse: tuple[str, ...] = (), raise_for: tuple[str, ...] = ()) -> None:
        self.refuse, self.raise_for = refuse, raise_for
        self.prepared: list[str] = []
        self.called: list[str] = []
        self.releases = 0
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.all_in = threading.Barrier(1)

    def prepare(self, city: str) -> dict:
        if city in self.refuse:
            raise RuntimeError(f"mock admin POST faults -> HTTP 400: unknown city {city}")
        self.prepared.append(city)
        return {"aab301": city}

    def call(self, city: str, request: dict):
        with self.lock:
            self.called.append(city)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            self.all_in.wait(timeout=10)  # every call of the batch is in flight at once
        finally:
            with self.lock:
                self.in_flight -= 1
        if city in self.raise_for:
            raise UpstreamUnavailable(reason="timeout", city=city)
        return {"aab301": city}

    def release(self) -> None:
        self.releases += 1


def probes(fake: FakeCity, upcoming: list[str], batch: int) -> HangProbes:
    return HangProbes(upcoming=lambda: upcoming, prepare=fake.prepare, call=fake.call, release=fake.release,
                      batch=batch)


def test_the_first_probe_takes_the_upcoming_cities_together_and_each_is_handed_out_once():
    fake = FakeCity(raise_for=("700001", "700003"))
    fake.all_in = threading.Barrier(3)  # the three calls of the batch wait for each other
    upcoming = ["700002", "700003", "700004"]
    hp = probes(fake, upcoming, batch=3)
    first = hp.probe("700001")
    assert (hp.batches, fake.peak, fake.releases) == ([3], 3, 1)
    assert sorted(fake.called) == ["700001", "700002", "700003"]
    assert isinstance(first.error, UpstreamUnavailable) and first.answer is None
    second = hp.probe("700002")  # taken by the first batch: no call now
    assert (second.error, second.answer, len(fake.called)) == (None, {"aab301": "700002"}, 3)
    assert isinstance(hp.probe("700003").error, UpstreamUnavailable)
    fake.all_in = threading.Barrier(1)
    upcoming.clear()  # the last hang check of the run
    hp.probe("700002")  # handed out already: probed again, on its own
    assert fake.called[3:] == ["700002"] and hp.batches == [3, 1]


def test_a_city_the_mock_refuses_gets_its_reason_and_the_others_are_probed():
    fake = FakeCity(refuse=("700002",))
    fake.all_in = threading.Barrier(2)
    hp = probes(fake, ["700002", "700003"], batch=8)
    assert hp.probe("700001").setup_problem is None
    refused = hp.probe("700002")
    assert "unknown city 700002" in refused.setup_problem and refused.error is None
    assert sorted(fake.called) == ["700001", "700003"] and fake.releases == 1


def test_the_hung_requests_are_released_even_when_a_call_breaks():
    fake = FakeCity()

    def broken(city, request):
        raise KeyboardInterrupt

    hp = HangProbes(upcoming=list, prepare=fake.prepare, call=broken, release=fake.release, batch=4)
    assert isinstance(hp.probe("700001").error, KeyboardInterrupt)
    assert fake.releases == 1


def test_the_hang_fault_outlasts_the_budget_on_read_card_only():
    assert hang_fault("700001", 5) == {"city": "700001", "operation": "read_card", "kind": "hang", "retry_after": 7,
                                       "hang_s": 8}


# -- a run: plugins that keep their budget pass, one that does not fails, in one batch --------------
LATE_ADAPTER = '''import time

from essc.core.dialects import SpecAdapter, dialect
from essc.core.errors import UpstreamUnavailable


class LateAdapter(SpecAdapter):
    """rest-json, but it gives up on a hanging city well after its budget (it sleeps on a timeout)."""

    def __init__(self, context):
        super().__init__(context, dialect("rest-json").spec)
        read_card = self.read_card  # the spec's operations are set on the object

        def late_read_card(request):
            try:
                return read_card(request)
            except UpstreamUnavailable:
                time.sleep(4)
                raise

        self.read_card = late_read_card
'''


def _manifest(name: str, codes: list[str], adapter: dict) -> dict:
    return {
        "name": name, "version": "1.0.0", "contract_version": "1.1", "dialect": "rest-json",
        "description": "hang checks in a batch", "adapter": adapter,
        "cities": [{"code": c, "name": "合成市", "province": "合成省", "opened": True} for c in codes],
        "capabilities": {"operations": ["read_card", "verify_identity", "activate", "health"],
                         "identity_checks": ["sms"], "services": []},
        "timeouts": {"connect_s": 1, "read_s": 1, "total_s": 2},
        "maintainers": [{"name": "t", "email": "t@example.org"}],
    }


@pytest.mark.slow
def test_a_batch_of_hang_checks_passes_the_plugins_in_budget_and_fails_the_late_one(tmp_path):
    good, late = tmp_path / "budget_good", tmp_path / "budget_late"
    good.mkdir()
    late.mkdir()
    (good / "manifest.json").write_text(json.dumps(_manifest("budget_good", ["700101", "700102", "700103"],
                                                             {"spec": "rest-json"})), encoding="utf-8")
    (late / "manifest.json").write_text(json.dumps(_manifest("budget_late", ["700104"],
                                                             {"class": "budget_late.adapter:LateAdapter"})),
                                        encoding="utf-8")
    (late / "__init__.py").write_text("", encoding="utf-8")
    (late / "adapter.py").write_text(LATE_ADAPTER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESSC_", "PYTEST_"))}
    env.update(ESSC_PLUGIN_DIRS=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", "import sys; from essc.cli import main; sys.exit(main())",
                           "contract", "--plugin", "budget_good", "--plugin", "budget_late",
                           "-k", "test_upstream_fault and hang"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "1 failed, 3 passed" in text, text
    assert "[city 700104, hook read_card] $: took" in text and "budget 2s" in text, text
    assert "(rule: time-budget)" in text, text
