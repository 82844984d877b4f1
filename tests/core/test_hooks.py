"""Every hook is documented, referenced in docs/hooks.md and tested here (test_hook_<name>)."""
import inspect
import re
from pathlib import Path

import pytest

from essc.core import hookimpl
from essc.tooling.docs import hook_reference, hooks, signature

from .conftest import GOOD_INIT

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
ID = "11010119900307803X"


@pytest.mark.parametrize("hook", hooks(), ids=lambda h: h.__name__)
def test_hook_is_documented_with_every_parameter(hook):
    doc = inspect.getdoc(hook) or ""
    assert doc.strip(), f"{hook.__name__} has no docstring"
    for param in inspect.signature(hook).parameters:
        assert re.search(rf":param {param}:", doc), f"{hook.__name__}: ':param {param}:' missing"
    assert ":return:" in doc
    assert f"## {signature(hook)}" in DOCS.read_text(encoding="utf-8")


def test_docs_hooks_md_is_generated_from_hookspecs():
    assert DOCS.read_text(encoding="utf-8") == hook_reference(), \
        "docs/hooks.md is stale: run `python -m essc.tooling.docs > docs/hooks.md`"


def test_every_hook_has_a_test():
    names = set(globals())
    missing = [h.__name__ for h in hooks() if f"test_hook_{h.__name__}" not in names]
    assert not missing, f"write test_hook_<name> for: {missing}"


def test_hook_essc_register_adapters(plugin_folder):
    init = GOOD_INIT.replace("def essc_register_adapters(register, context):",
                             "def essc_register_adapters(context, register):\n    assert context.timeouts.total_s == 2")
    name = plugin_folder.add("reg", init=init, cities=("700001", "700002"))
    reg = plugin_folder.registry()
    a1, a2 = reg.adapter("700001"), reg.adapter("700002")
    assert a1 is a2, "one adapter object serves both cities of the plugin"
    assert reg.plugin(name).status == "loaded"


def test_hook_essc_adapter_called(plugin_folder):
    calls = []

    class Metrics:
        @hookimpl
        def essc_adapter_called(self, city, operation, plugin, elapsed_s, error):
            calls.append((city, operation, plugin, error.code if error else None, elapsed_s >= 0))

    name = plugin_folder.add("obs")
    reg = plugin_folder.registry()
    reg.pm.register(Metrics())
    reg.call("700001", "read_card", {"aac002": ID, "aac003": "张三", "aab301": "700001"})
    assert calls == [("700001", "read_card", name, None, True)]


def test_hook_essc_plugin_quarantined(plugin_folder):
    seen = []

    class Observer:
        @hookimpl
        def essc_plugin_quarantined(self, name, reason):
            seen.append((name, reason))

    bad = plugin_folder.add("bad", init="raise ImportError('nope')\n")
    reg = plugin_folder.registry()
    reg.pm.register(Observer())
    reg.load_all()
    assert seen == [(bad, f"import of {bad} failed: ImportError: nope")]
