"""Chaos: bills settled, confirmed, reversed and left unconfirmed under faults injected in every
leg (the mock's fault rules: errors, broken connections, and answers lost after the city carried
the call out); afterwards every
settlement is final and agrees with the city's own ledger - never half-done, never charged twice."""
import os

import pytest

from essc.service.settle_chaos import drill


@pytest.mark.slow
def test_settlement_chaos_drill(runtime, mock):
    runtime.config.settlement_hold_s = 1.0  # unconfirmed bills are reversed within the drill
    runtime.config.settlement_leg_deadline_s = 3.0  # some legs give up: their bills are reversed
    runtime.start_workers(2)
    n = int(os.environ.get("ESSC_SETTLE_CHAOS_N", "100"))
    result = drill(runtime, mock, "330100", n, seed=5, timeout_s=90)
    assert result["disagreements"] == 0, result
    assert result["unknown_at_platform"] == 0 and result["duplicate_keys"] == 0, result
    assert result["answers"]["created"] <= result["settlements"] <= n, result
    final = result["final_states"]
    assert set(final) <= {"settled", "reversed", "failed"}, result
    assert final.get("settled", 0) > 0 and final.get("reversed", 0) > 0, result
    assert sum(result["faults_injected"].values()) > 10 and len(result["faults_injected"]) >= 4, result
