"""Chaos: activations over every mock city under random faults (sized for CI; the
2000-activation run is bench/activation_bench.py). Nothing lost, never two credentials,
and every citizen ends in the state their card and city call for."""
import os

import pytest

from essc.service.chaos import drill


@pytest.mark.slow
def test_chaos_drill(runtime, mock):
    runtime.start_workers(4)
    n = int(os.environ.get("ESSC_CHAOS_N", "150"))
    result = drill(runtime, mock, n, seed=11, timeout_s=120)
    assert result["lost"] == 0, result
    assert result["duplicate_credentials"] == 0, result
    assert result["unexpected_outcomes"] == 0, result
    assert result["submit_errors"] == {}, result
    assert result["final_states"].get("activated", 0) > 0
    injected = result["faults_injected"]
    assert sum(injected.values()) > 10 and len(injected) >= 4, f"too few faults to mean anything: {injected}"
