"""The command line: `essc plugins`, `essc bench`, quarantine seen from outside, packaging."""
import configparser
import json
import logging
from pathlib import Path

from click.testing import CliRunner

from essc.cli import main
from essc.core.registry import Registry
from essc.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def plugins_json(env=None):
    result = CliRunner().invoke(main, ["plugins", "--json"], env=env or {})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plugins_json_lists_the_reference_plugins_loaded():
    rows = {r["name"]: r for r in plugins_json()}
    for name in ("zhejiang", "fujian", "sichuan", "mohrss"):
        row = rows[name]
        assert row["status"] == "loaded" and row["reason"] is None
        assert {"name", "version", "cities", "status", "reason", "registration"} <= set(row)
    assert "essc_register_adapters" in rows["sichuan"]["hooks"] and rows["sichuan"]["registration"] == "hook"
    for name, dialect in (("zhejiang", "rest-json"), ("fujian", "pinyin-form"), ("mohrss", "xml-envelope"),
                          ("changzhou", "soap-1.1")):  # no code of their own: registered from the spec
        assert rows[name]["status"] == "loaded" and rows[name]["registration"] == f"spec:{dialect}"
        assert rows[name]["hooks"] == []
    cities = [c for r in rows.values() for c in r["cities"]]
    assert len(cities) >= 8 and len(cities) == len(set(cities))
    assert {"330100", "330500"} <= set(rows["zhejiang"]["cities"])


def test_a_broken_plugin_is_quarantined_while_the_others_load(tmp_path):
    bad = tmp_path / "essc_broken_city"
    bad.mkdir()
    manifest = json.loads((ROOT / "plugins" / "fujian" / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(name="essc_broken_city", cities=[{"code": "320500", "name": "苏州", "province": "江苏",
                                                      "opened": True}])
    del manifest["adapter"]  # registered by its (broken) code
    (bad / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    (bad / "__init__.py").write_text("import this_dependency_is_missing\n", encoding="utf-8")
    rows = {r["name"]: r for r in plugins_json({"ESSC_PLUGIN_DIRS": str(tmp_path)})}
    assert rows["essc_broken_city"]["status"] == "quarantined"
    assert "ModuleNotFoundError" in rows["essc_broken_city"]["reason"]
    assert all(rows[n]["status"] == "loaded" for n in ("zhejiang", "fujian", "sichuan", "mohrss"))


def test_block_list_from_the_environment():
    rows = {r["name"]: r for r in plugins_json({"ESSC_DISABLED_PLUGINS": "sichuan"})}
    assert rows["sichuan"]["status"] == "disabled" and rows["zhejiang"]["status"] == "loaded"


def test_plugins_table_names_cities():
    result = CliRunner().invoke(main, ["plugins"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "杭州" in result.output and "loaded" in result.output


def test_bench_prints_its_figures():
    result = CliRunner().invoke(main, ["bench", "--json", "--calls", "300"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    for key in ("registry_ready_ms_400", "overhead_us_10", "overhead_us_1000", "raw_call_us"):
        assert isinstance(figures[key], float) and figures[key] > 0


def test_trace_switch_logs_hook_calls(caplog):
    reg = Registry(Settings(trace=True, entry_points=False))
    with caplog.at_level(logging.INFO, logger="essc"):
        reg.adapter("510100")  # sichuan: a hook
        reg.adapter("330100")  # zhejiang: registered from its spec
    assert "hook trace" in caplog.text and "sichuan.essc_register_adapters" in caplog.text
    assert "zhejiang registered by default ({'spec': 'rest-json'})" in caplog.text


def test_setup_cfg_ships_every_plugin_and_the_schemas():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    packages = cfg["options"]["packages"].split()
    data = cfg["options.package_data"]
    shipped = data.get("essc.plugins", "")
    for folder in (ROOT / "plugins").iterdir():
        if (folder / "manifest.json").exists():
            if (folder / "__init__.py").exists():  # a plugin with code is a package
                assert f"essc.plugins.{folder.name}" in packages, f"add essc.plugins.{folder.name} to setup.cfg"
            assert "manifest.json" in data.get(f"essc.plugins.{folder.name}", "") or "*/manifest.json" in shipped, \
                folder.name
    assert "*.json" in data["essc.schemas"]
    assert "pytest11" in cfg["options.entry_points"] and "essc.conformance.pytest_plugin" in \
        cfg["options.entry_points"]["pytest11"]


def test_contract_without_pytest_says_what_to_install(monkeypatch):
    """`essc contract` where pytest is not installed: a clear message, not a ModuleNotFoundError."""
    import sys

    monkeypatch.setitem(sys.modules, "pytest", None)  # `import pytest` now raises ModuleNotFoundError
    result = CliRunner().invoke(main, ["contract", "--city", "330100"])
    assert result.exit_code == 1 and not isinstance(result.exception, ModuleNotFoundError)
    assert "pytest, which is not installed" in result.output and '".[test]"' in result.output
