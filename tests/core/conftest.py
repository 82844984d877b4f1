import json
import sys
import uuid

import pytest

from essc.core.registry import Registry
from essc.core.settings import Settings

GOOD_INIT = '''from essc.core import hookimpl
from essc.tooling.bench import SyntheticAdapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = SyntheticAdapter()
    for city in context.cities:
        register(city, adapter)
'''


def manifest(name, cities=("700001",), **overrides):
    data = {
        "name": name, "version": "1.2.0", "contract_version": "1.0", "dialect": "other",
        "cities": [{"code": c, "name": "合成市", "province": "合成省", "opened": True} for c in cities],
        "capabilities": {"operations": ["read_card", "verify_identity", "activate", "health"],
                         "identity_checks": ["sms"], "services": []},
        "timeouts": {"connect_s": 1, "read_s": 1, "total_s": 2},
        "maintainers": [{"name": "t", "email": "t@example.org"}],
    }
    data.update(overrides)
    return data


class PluginFolder:
    """Writes throw-away plugin packages with unique import names into one folder."""

    def __init__(self, root):
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self.modules = []

    def add(self, short, init=GOOD_INIT, manifest_data=None, raw_manifest=None, **mf):
        name = f"p_{short}_{self.tag}"
        pkg = self.root / name
        pkg.mkdir()
        if raw_manifest is not None:
            (pkg / "manifest.json").write_text(raw_manifest, encoding="utf-8")
        else:
            (pkg / "manifest.json").write_text(json.dumps(manifest_data or manifest(name, **mf), ensure_ascii=False),
                                               encoding="utf-8")
        (pkg / "__init__.py").write_text(init, encoding="utf-8")
        self.modules.append(name)
        return name

    def registry(self, **settings):
        return Registry(Settings(builtin_plugins=False, entry_points=False, plugin_dirs=(self.root,), **settings))


@pytest.fixture
def plugin_folder(tmp_path):
    folder = PluginFolder(tmp_path)
    yield folder
    sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    for name in folder.modules:
        sys.modules.pop(name, None)
