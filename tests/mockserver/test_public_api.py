"""The mock's building blocks a dialect's city side uses are public: docs/mock.md lists them,
and every name it lists exists and is exported (``__all__``)."""
import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "mock.md"


def documented():
    text = DOC.read_text(encoding="utf-8").split("## Building a dialect's city side (public API)", 1)[1]
    names = []
    for cell in re.findall(r"^\| (`essc\.[^|]+) \|", text, re.M):
        first, *rest = re.findall(r"`([^`]+)`", cell)
        module, _, name = first.rpartition(".")
        names += [(module, name)] + [(module, n) for n in rest]
    return names


def test_every_documented_building_block_exists_and_is_exported():
    names = documented()
    assert len(names) >= 20
    for module_name, name in names:
        module = importlib.import_module(module_name)
        assert hasattr(module, name), f"{module_name}.{name} is documented in docs/mock.md but does not exist"
        exported = getattr(module, "__all__", None)
        assert exported is None or name in exported, f"{module_name}.{name}: add it to __all__"
