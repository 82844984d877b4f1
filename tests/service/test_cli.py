"""`essc demo` and `essc activate` as a person runs them (embedded defaults, in-process mock)."""
import pytest
from click.testing import CliRunner

from essc.cli import main


@pytest.fixture
def env(tmp_path):
    return {"ESSC_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "160", "ESSC_CITY_BASE_URL": ""}


def run(args, env):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_demo_runs_its_tour_to_the_summary(env):
    result = run(["demo"], env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "summary" in out
    for status in ("activated", "city_not_opened", "pending_sync", "card_status_abnormal"):
        assert status in out, f"{status} missing from the demo output"
    # the e-SSC in use: a pharmacy verifies the code once; a portal logs the citizen in (OIDC)
    assert "verified at a pharmacy" in out and "QRCODE_USED" in out
    assert "OpenID Connect" in out and "ID token checked with the JWKS" in out
    assert "a lost card blocks the code" in out and "CARD_STATUS_ABNORMAL (reported_lost)" in out
    assert "✗" not in out


@pytest.mark.parametrize("city", ["杭州", "hangzhou", "330100"])
def test_activate_by_name_pinyin_or_code(env, city):
    result = run(["activate", "--city", city], env)
    assert result.exit_code == 0, result.output
    assert "e-SSC activated: credential issued" in result.output and "sign_no" in result.output


def test_activate_names_the_failure(env):
    result = run(["activate", "--city", "深圳", "--scenario", "sealed"], env)
    assert result.exit_code == 1 and "卡状态异常" in result.output and "sealed" in result.output


def test_activate_refuses_an_ambiguous_or_unknown_city(env):
    result = CliRunner().invoke(main, ["activate", "--city", "hz"], env=env)
    assert result.exit_code == 2 and "杭州 330100" in result.output and "湖州 330500" in result.output
    result = CliRunner().invoke(main, ["activate", "--city", "atlantis"], env=env)
    assert result.exit_code == 2 and "no city matches" in result.output


def test_activate_in_a_city_without_a_plugin_says_not_opened(env):
    result = run(["activate", "--city", "南京"], env)
    assert result.exit_code == 1, result.output
    assert "南京市 320100" in result.output and "city_not_opened" in result.output and "暂未开通" in result.output
    result = CliRunner().invoke(main, ["activate", "--city", "371200"], env=env)
    assert result.exit_code == 2 and "abolished in 2019" in result.output


@pytest.mark.parametrize(("command", "variable", "value", "expected"), [
    (["serve", "--port", "0"], "ESSC_API_PIN_CPUS", "maybe", "expected auto, on (1, true, yes) or off (0, false, no)"),
    (["serve", "--port", "0"], "ESSC_API_THREADS", "many", "expected a whole number"),
    (["worker"], "ESSC_DATABASE_POOL_SIZE", "1.5", "expected a whole number"),
    (["activate", "--city", "330100"], "ESSC_ANSWER_BUDGET_S", "soon", "expected a number"),
])
def test_a_setting_it_cannot_take_ends_the_command_naming_the_variable(env, command, variable, value, expected):
    """Nothing starts: the message names the variable and what it takes (exit 1, no traceback)."""
    result = CliRunner().invoke(main, command, env={**env, variable: value})
    assert result.exit_code == 1, result.output
    assert f"configuration: {variable}={value!r}: {expected}" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)
