"""The registry: lazy discovery, quarantine with reasons, allow/block lists, dispatch."""
import sys

import pytest

from essc.core import CONTRACT_VERSION
from essc.core.errors import CityNotOpened, ContractViolation, InvalidInput, PluginUnavailable

from .conftest import GOOD_INIT

ID = "11010119900307803X"


def query(city="700001"):
    return {"aac002": ID, "aac003": "张三", "aab301": city}


def test_reading_manifests_imports_no_plugin_code(plugin_folder):
    name = plugin_folder.add("lazy", cities=("700001", "700002"))
    reg = plugin_folder.registry().setup()
    assert [c.code for c in reg.cities()] == ["700001", "700002"]
    assert name not in sys.modules
    assert reg.plugin(name).status == "discovered"
    reg.call("700001", "read_card", query())
    assert name in sys.modules and reg.plugin(name).status == "loaded"


def test_setup_is_idempotent(plugin_folder):
    plugin_folder.add("idem")
    reg = plugin_folder.registry()
    assert reg.setup() is reg.setup()
    assert len(reg.plugins) == 1


BROKEN = {
    "import_error": (dict(init="import not_a_module_anywhere\n"), "import of"),
    "syntax_error": (dict(init="def (:\n"), "SyntaxError"),
    "bad_json": (dict(raw_manifest="{not json"), "not valid JSON"),
    "bad_manifest": (dict(raw_manifest='{"name": "x"}'), "invalid manifest.json"),
    "bad_city_code": (dict(cities=("70001",)), "$.cities[0].code"),
    "major_contract": (dict(contract_version="2.0"), "incompatible contract: plugin targets 2.0, framework"),
    "newer_minor": (dict(contract_version="1.9"), f"newer than the framework's {CONTRACT_VERSION}"),
    "no_register_hook": (dict(init="X = 1\n"), "implements no essc_register_adapters"),
    "unknown_hook": (dict(init=GOOD_INIT + "\n@hookimpl\ndef essc_register_adaptors(register):\n    pass\n"),
                     "unknown hook(s) essc_register_adaptors"),
    "bad_hook_args": (dict(init="from essc.core import hookimpl\n\n@hookimpl\ndef essc_register_adapters(reg):\n"
                                "    pass\n"), "hook validation failed"),
    "missing_capability": (dict(init=GOOD_INIT, capabilities={"operations": ["read_card", "verify_identity",
                                "activate", "health", "list_services"], "identity_checks": ["sms"], "services": []}),
                           "declares list_services but adapter SyntheticAdapter does not implement it"),
    "foreign_city": (dict(init=GOOD_INIT.replace("for city in context.cities:", "for city in ['799999']:")),
                     "registers city '799999' that its manifest does not list"),
    "raises_in_hook": (dict(init="from essc.core import hookimpl\n\n@hookimpl\ndef essc_register_adapters(register):"
                                 "\n    raise RuntimeError('boom')\n"), "essc_register_adapters raised RuntimeError"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_plugin_is_quarantined_and_others_load(plugin_folder, case):
    kwargs, reason = BROKEN[case]
    good = plugin_folder.add("good", cities=("700100",))
    bad = plugin_folder.add("bad", **kwargs)
    reg = plugin_folder.registry()
    reg.load_all()
    records = {r.source.module: r for r in reg.plugins}
    assert records[good].status == "loaded"
    assert records[bad].status == "quarantined"
    assert reason in records[bad].reason
    assert reg.call("700100", "read_card", query("700100"))["aab301"] == "700100"


def test_city_claimed_twice_quarantines_the_second(plugin_folder):
    first = plugin_folder.add("a_first", cities=("700001",))
    second = plugin_folder.add("b_second", cities=("700002", "700001"))
    reg = plugin_folder.registry().setup()
    assert reg.plugin(first).status == "discovered"
    assert reg.plugin(second).status == "quarantined"
    assert f"claims city 700001 already claimed by plugin '{first}'" == reg.plugin(second).reason
    with pytest.raises(PluginUnavailable, match="quarantined"):
        reg.call("700002", "read_card", query("700002"))


def test_allow_and_block_lists(plugin_folder, monkeypatch):
    a = plugin_folder.add("a", cities=("700001",))
    b = plugin_folder.add("b", cities=("700002",))
    reg = plugin_folder.registry(block=frozenset({b}))
    reg.load_all()
    assert reg.plugin(a).status == "loaded" and reg.plugin(b).status == "disabled"
    assert "blocked" in reg.plugin(b).reason
    with pytest.raises(PluginUnavailable, match="is disabled: blocked by settings"):
        reg.call("700002", "read_card", query("700002"))
    with pytest.raises(InvalidInput, match="no plugin serves city 700003"):
        reg.call("700003", "read_card", query("700003"))
    reg = plugin_folder.registry(allow=frozenset({b}))
    reg.load_all()
    assert reg.plugin(a).status == "disabled" and "allow list" in reg.plugin(a).reason


def test_offers_names_what_a_citys_plugin_declares(plugin_folder):
    plugin_folder.add("offers")
    blocked = plugin_folder.add("blocked", cities=("700002",))
    reg = plugin_folder.registry(block=frozenset({blocked}))
    assert reg.offers("700001", "read_card") and reg.offers("700001", "health")
    assert not reg.offers("700001", "settle_medical")  # not in its manifest's capabilities
    assert not reg.offers("700002", "read_card")  # its plugin is not available
    assert not reg.offers("999999", "read_card") and not reg.offers("12", "read_card")


def test_unknown_and_abolished_city(plugin_folder):
    plugin_folder.add("x")
    reg = plugin_folder.registry()
    with pytest.raises(InvalidInput, match="6 digits"):
        reg.call("12", "read_card", query())
    with pytest.raises(InvalidInput, match="abolished in 2019 and merged into 370100"):
        reg.call("371200", "read_card", query("371200"))


def test_a_city_of_the_country_without_a_plugin_is_not_opened(plugin_folder):
    plugin_folder.add("y")
    reg = plugin_folder.registry()
    for attempt in (lambda: reg.call("320100", "read_card", query("320100")), lambda: reg.city("320100")):
        with pytest.raises(CityNotOpened) as err:
            attempt()
        assert err.value.details == {"city": "320100"} and "no plugin serves city 320100 (南京市)" in str(err.value)
        assert err.value.to_dict()["message_zh"] == "该城市暂未开通电子社保卡业务"
    assert reg.served("320100") is None and reg.served("700001").plugin == reg.plugins[0].name


@pytest.mark.parametrize("code, rule", [("110100", "not-a-city"), ("330106", "not-a-city"), ("330000", "not-a-city"),
                                        ("999999", "unknown-city"), ("371200", "abolished-division")])
def test_a_code_that_is_no_city_is_invalid_input_naming_the_field(plugin_folder, code, rule):
    plugin_folder.add("z")
    with pytest.raises(InvalidInput) as err:
        plugin_folder.registry().city(code)
    assert err.value.details["field"] == "city" and err.value.details["rule"] == rule


def test_request_is_validated_before_the_adapter(plugin_folder):
    plugin_folder.add("v")
    reg = plugin_folder.registry()
    with pytest.raises(InvalidInput) as err:
        reg.call("700001", "read_card", {"aac002": ID, "aab301": "700001"})
    assert "'aac003' is required" in str(err.value)
    with pytest.raises(InvalidInput, match="checksum"):
        reg.call("700001", "read_card", query() | {"aac002": "110101199003078031"})
    with pytest.raises(InvalidInput, match="differs"):
        reg.call("700001", "read_card", query("700002"))
    with pytest.raises(InvalidInput, match="unknown operation"):
        reg.call("700001", "delete_everything", query())


def test_schema_breaking_response_becomes_contract_violation(plugin_folder):
    init = GOOD_INIT.replace("adapter = SyntheticAdapter()", "adapter = Bad()") + '''

class Bad(SyntheticAdapter):
    def read_card(self, request):
        return dict(super().read_card(request), aaz502="lost")

    def activate(self, request):
        raise KeyError("signNo")
'''
    name = plugin_folder.add("bad_answers", init=init)
    reg = plugin_folder.registry()
    with pytest.raises(ContractViolation) as err:
        reg.call("700001", "read_card", query())
    d = err.value.to_dict()["details"]
    got = (d["city"], d["hook"], d["path"], d["rule"], d["plugin"])
    assert got == ("700001", "read_card", "$.aaz502", "enum", name)
    with pytest.raises(ContractViolation) as err:
        reg.call("700001", "activate", {"aac002": ID, "aab301": "700001", "verify_id": "abcd", "channel": "test"})
    assert err.value.details["rule"] == "typed-errors" and "KeyError" in str(err.value)


def test_city_not_opened_from_manifest(plugin_folder):
    plugin_folder.add("closed", manifest_data=None,
                      cities=("700001",))
    reg = plugin_folder.registry()
    reg.setup()
    rec = reg.plugins[0]
    rec.manifest["cities"][0]["opened"] = False
    reg.load_all()
    with pytest.raises(CityNotOpened) as err:
        reg.call("700001", "read_card", query())
    assert err.value.to_dict()["message_zh"].startswith("该城市暂未开通电子社保卡业务")
    assert reg.call("700001", "health", {"aab301": "700001"})["status"] == "up"


def test_manifest_city_without_adapter_is_quarantined(plugin_folder):
    init = GOOD_INIT.replace("for city in context.cities:", "for city in context.cities[:1]:")
    name = plugin_folder.add("half", init=init, cities=("700001", "700002"))
    reg = plugin_folder.registry()
    reg.load_all()
    assert "manifest lists city 700002 but the plugin registered no adapter" in reg.plugin(name).reason
    with pytest.raises(PluginUnavailable):
        reg.call("700001", "read_card", query())
