"""``essc new-plugin``: what it refuses, what it generates for each kind of dialect (an installed
spec, ``--dialect new``, ``--dialect code``, a reference plugin's Python) and - end to end - that a
scaffolded plugin, pip-installed into a FRESH virtual environment, is found by the registry through
its entry point, brings its dialect to the framework and the mock (``essc dialects``, ``essc mock``),
passes its own tests and the contract suite, and gets a tier.

The end-to-end tests are marked ``slow``; they share one virtual environment (module-scoped) and
run for soap-1.1, new and code by default (about 30 s each); ``ESSC_SCAFFOLD_DIALECTS=new,code``
(comma-separated) runs fewer, or others (``rest-json``, ``gm-json``...).
"""
from __future__ import annotations

import ast
import configparser
import contextlib
import json
import os
import re
import shutil
import site
import socket
import subprocess
import sys
import time
import venv
from importlib.util import find_spec
from pathlib import Path

import pytest
from click.testing import CliRunner

from essc.cli import main
from essc.cli.scaffold import (
    PluginSpec,
    Reference,
    available_dialects,
    builtin_references,
    default_plugin_name,
    render_plugin,
    spec_capabilities,
)
from essc.core import CONTRACT_VERSION
from essc.core.dialects import dialects, load_spec
from essc.core.divisions import province_of
from essc.core.registry import Registry
from essc.core.schemas import validator
from essc.core.settings import Settings
from essc.mockserver.client import MockAdmin

CITY, NAME, PROVINCE, PLUGIN, PACKAGE = "320500", "苏州", "江苏", "suzhou", "essc_suzhou"
ESSC = "import sys; from essc.cli import main; sys.exit(main())"  # `essc ...` with a given interpreter
SPEC_DIALECTS = sorted(n for n, e in dialects().items() if e.spec is not None)
#: one dialect of each kind the scaffold makes
KIND_OF = {"soap-1.1": "spec", "new": "new", "code": "code", "gm-json": "reference"}
COMMON_FILES = [".gitignore", "README.md", f"{PACKAGE}/__init__.py", f"{PACKAGE}/manifest.json", "pyproject.toml",
                "setup.cfg", "tests/conftest.py", "tests/test_against_mock.py", "tests/test_contract.py", "tox.ini"]
EXTRA_FILES = {"spec": [], "new": [f"{PACKAGE}/dialect.yaml"],
               "code": [f"{PACKAGE}/adapter.py", f"{PACKAGE}/city.py", f"{PACKAGE}/protocol.py"],
               "reference": [f"{PACKAGE}/adapter.py", f"{PACKAGE}/const.py", "tests/test_adapter.py"]}


def new_plugin(directory: Path, *extra: str, city: str = CITY, name: str = NAME, dialect: str = "rest-json",
               province: str | None = PROVINCE):
    args = ["new-plugin", "--city", city, "--name", name, "--dialect", dialect,
            *(["--province", province] if province is not None else []), *extra, str(directory)]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def scaffold(directory: Path, dialect: str = "rest-json", *extra: str, **kwargs) -> Path:
    result = new_plugin(directory, *extra, dialect=dialect, **kwargs)
    assert result.exit_code == 0, result.output
    return directory


def read_manifest(root: Path, package: str = PACKAGE) -> dict:
    return json.loads((root / package / "manifest.json").read_text(encoding="utf-8"))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: no ESSC_* setting of this run leaks into it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSC_") and k != "PYTHONHOME"}
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def run(cmd: list[str], *, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None, check: bool = True):
    proc = subprocess.run(cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@contextlib.contextmanager
def running_mock(folder: Path, python: str = sys.executable):
    """``essc mock`` in its own process (a RUNNING mock, as a QA engineer would start it): its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with open(folder / "mock.log", "wb") as log:
        proc = subprocess.Popen([python, "-P", "-c", ESSC, "mock", "--port", str(port), "--clock", "frozen"],
                                cwd=folder, env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                MockAdmin(url).cities()
                break
            except (RuntimeError, OSError):
                assert proc.poll() is None and time.monotonic() < deadline, (folder / "mock.log").read_text()
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(10)


@pytest.fixture
def quiet_registry(monkeypatch):
    """The scaffold asks the registry which cities and names are taken: keep this run's settings out."""
    for key in [k for k in os.environ if k.startswith("ESSC_")]:
        monkeypatch.delenv(key)


# -- refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["32050", "3205000", "32050a", "苏州"])
def test_refuses_a_city_code_that_is_not_6_digits(tmp_path, quiet_registry, code):
    result = new_plugin(tmp_path / "out", city=code)
    assert result.exit_code == 2
    assert "Invalid value for '--city'" in result.output and "6 digits" in result.output
    assert not (tmp_path / "out").exists()


def test_refuses_a_city_an_installed_plugin_serves(tmp_path, quiet_registry):
    result = new_plugin(tmp_path / "out", "--plugin-name", "hangzhou2", city="330100", name="杭州")
    assert result.exit_code == 2
    assert "city 330100 is already served by the installed plugin 'zhejiang'" in result.output
    assert not (tmp_path / "out").exists()


def test_refuses_a_non_empty_directory(tmp_path, quiet_registry):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = new_plugin(tmp_path)
    assert result.exit_code == 2
    assert "Invalid value for 'DIR'" in result.output and "is not empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_refuses_a_file_as_directory(tmp_path, quiet_registry):
    (tmp_path / "file").write_text("", encoding="utf-8")
    result = new_plugin(tmp_path / "file")
    assert result.exit_code == 2 and "is not a folder" in result.output


@pytest.mark.parametrize("dialect", ["soap", "other", "SOAP-1.1", ""])
def test_refuses_an_unknown_dialect_listing_the_installed_ones(tmp_path, quiet_registry, dialect):
    result = new_plugin(tmp_path / "out", dialect=dialect)
    assert result.exit_code == 2
    assert "Invalid value for '--dialect'" in result.output and "is not an installed dialect" in result.output
    output = " ".join(result.output.split())  # click wraps long messages
    for name in SPEC_DIALECTS:
        assert name in output
    assert "gm-json (from the reference plugin sichuan)" in output
    assert "--dialect new" in output and "--dialect code" in output
    assert not (tmp_path / "out").exists()


def test_refuses_an_installed_dialect_without_a_spec(tmp_path, quiet_registry, monkeypatch):
    """A dialect an installed package brings as code (its adapter classes are that package's own):
    nothing to derive a plugin from."""
    from essc.core import dialects as catalog
    from essc.core.dialects import DialectEntry

    installed = dict(catalog.dialects(), wuxi=DialectEntry("wuxi", "entry-point:essc-wuxi", city_side="m:f"))
    monkeypatch.setattr(catalog, "dialects", lambda: installed)
    monkeypatch.setattr(catalog, "dialect", installed.get)
    result = new_plugin(tmp_path / "out", dialect="wuxi")
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "dialect 'wuxi' (entry-point:essc-wuxi) has no spec" in output and "soap-1.1" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["Suzhou", "su-zhou", "1suzhou", "s", "suzhou!", "suzhou\n", "x" * 41])
def test_refuses_a_plugin_name_the_manifest_does_not_allow(tmp_path, quiet_registry, name):
    result = new_plugin(tmp_path / "out", "--plugin-name", name)
    assert result.exit_code == 2
    assert "Invalid value for '--plugin-name'" in result.output and "^[a-z][a-z0-9_]{1,39}$" in result.output
    assert not (tmp_path / "out").exists()


def test_refuses_a_plugin_name_already_installed(tmp_path, quiet_registry):
    result = new_plugin(tmp_path / "out", "--plugin-name", "fujian")
    assert result.exit_code == 2 and "a plugin named 'fujian' is already installed" in result.output


@pytest.mark.parametrize("dialect, name, message", [
    ("new", "Su_Zhou", "cannot name a dialect"),
    ("code", "code", "cannot name a dialect"),
    ("new", "soap-1.1", "a dialect named 'soap-1.1' is installed already"),
    ("code", "gm-json", "a dialect named 'gm-json' is installed already"),  # the mock's hand-written one
    ("rest-json", "suzhou", "names the dialect a new plugin brings"),
])
def test_refuses_a_dialect_name_that_cannot_be(tmp_path, quiet_registry, dialect, name, message):
    result = new_plugin(tmp_path / "out", "--dialect-name", name, dialect=dialect)
    assert result.exit_code == 2
    assert "Invalid value for '--dialect-name'" in result.output and message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value, hint", [
    ("--city", "012345", "'--city'"),  # 6 digits, but no division code starts with 0
    ("--name", "Suzhou", "'--name'"),
    ("--province", "Jiangsu", "'--province'"),
    ("--maintainer-email", "not-an-address", "'--maintainer-email'"),
])
def test_refuses_what_would_make_the_manifest_invalid(tmp_path, quiet_registry, option, value, hint):
    args = ["new-plugin", "--city", CITY, "--name", NAME, "--province", PROVINCE, "--dialect", "rest-json",
            "--plugin-name", PLUGIN, option, value, str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"Invalid value for {hint}" in result.output and "the manifest would be invalid" in result.output
    assert not (tmp_path / "out").exists()


def test_refuses_to_guess_the_province_of_a_code_that_has_none(tmp_path, quiet_registry):
    result = new_plugin(tmp_path / "out", city="700001", province=None)
    assert result.exit_code == 2
    assert "Invalid value for '--province'" in result.output and "cannot infer the province" in result.output


# -- names ---------------------------------------------------------------------------------------------
def test_the_plugin_name_defaults_to_the_pinyin_of_the_city():
    assert default_plugin_name("苏州") == "suzhou"
    assert default_plugin_name("乌鲁木齐") == "wulumuqi"


@pytest.mark.parametrize("code, province", [("320500", "江苏"), ("110000", "北京"), ("650100", "新疆"),
                                            ("150100", "内蒙古"), ("820000", "澳门"), ("700001", None),
                                            ("012345", None), ("32050", None), ("３２０５００", None)])
def test_the_province_of_a_city_code(code, province):
    assert province_of(code) == province


def test_the_province_is_inferred_from_the_city_code(tmp_path, quiet_registry):
    result = new_plugin(tmp_path / "plugin", city="230100", name="哈尔滨", province=None, dialect="soap-1.1")
    assert result.exit_code == 0, result.output
    assert "province 黑龙江 (from the city code)" in result.output
    assert read_manifest(tmp_path / "plugin", "essc_haerbin")["cities"][0]["province"] == "黑龙江"


# -- what is generated ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", list(KIND_OF))
def test_generated_package(tmp_path, quiet_registry, dialect):
    kind = KIND_OF[dialect]
    root = scaffold(tmp_path / "plugin", dialect)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == sorted(COMMON_FILES + EXTRA_FILES[kind])
    manifest = read_manifest(root)
    assert validator("manifest").problems(manifest) == []
    wire = "suzhou" if kind in ("new", "code") else dialect
    assert manifest["name"] == PLUGIN and manifest["dialect"] == wire
    assert manifest["contract_version"] == CONTRACT_VERSION and manifest["description"]
    assert manifest["cities"] == [{"code": CITY, "name": NAME, "province": PROVINCE, "opened": True}]
    assert manifest.get("adapter") == {"spec": {"spec": dialect}, "new": {"spec": "dialect.yaml"},
                                       "code": {"class": f"{PACKAGE}.adapter:SuzhouAdapter"}, "reference": None}[kind]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg", encoding="utf-8")
    entry_points = cfg["options.entry_points"]
    assert entry_points["essc.plugins"].strip() == f"{PLUGIN} = {PACKAGE}"
    if kind in ("new", "code"):
        assert entry_points["essc.dialects"].strip() == f"suzhou = {PACKAGE}:essc_dialects"
    else:
        assert "essc.dialects" not in entry_points
    assert cfg["options"]["packages"].strip() == PACKAGE
    assert cfg["options.package_data"][PACKAGE].strip() == (
        "manifest.json, dialect.yaml, cassettes/*.json" if kind == "new" else "manifest.json, cassettes/*.json")
    assert "build-backend" in (root / "pyproject.toml").read_text(encoding="utf-8")
    for path in root.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert f"essc contract --plugin {PLUGIN}" in readme and "{{" not in readme
    if kind == "reference":
        assert "essc.plugins.sichuan" in readme and "Why not a template" in readme


@pytest.mark.parametrize("dialect", SPEC_DIALECTS)
def test_a_plugin_of_an_installed_spec_has_no_code_of_its_own(tmp_path, quiet_registry, dialect):
    root = scaffold(tmp_path / "plugin", dialect)
    manifest = read_manifest(root)
    assert manifest["adapter"] == {"spec": dialect} and manifest["dialect"] == dialect
    assert manifest["capabilities"] == spec_capabilities(dialects()[dialect].spec)
    assert set(manifest["capabilities"]["operations"]) >= {"read_card", "verify_identity", "activate", "health"}
    init = ast.parse((root / PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    assert len(init.body) == 1 and isinstance(init.body[0].value, ast.Constant)  # a docstring, nothing else
    assert sorted(p.name for p in (root / PACKAGE).iterdir()) == ["__init__.py", "manifest.json"]


def test_the_capabilities_of_a_spec_plugin_follow_the_spec(tmp_path, quiet_registry):
    """What a spec cannot carry is not declared: a spec without list_services and settle_medical, with
    one factor (so no enable_payment, which takes a password ticket); the other operations of
    contract 1.2 the spec carries are declared."""
    spec = dialects()["rest-json"].spec
    data = json.loads(json.dumps(spec.data))
    del data["operations"]["list_services"]
    del data["operations"]["settle_medical"]
    data["tables"]["factor"] = {"sms": "SMS"}
    from essc.core.dialects import parse_spec

    assert spec_capabilities(parse_spec(data, "test")) == {
        "operations": ["read_card", "verify_identity", "activate", "health", "card_status", "reset_password",
                       "query_contributions"], "identity_checks": ["sms"], "services": []}


def test_the_new_dialect_is_a_valid_spec_skeleton(tmp_path, quiet_registry):
    root = scaffold(tmp_path / "plugin", "new", "--dialect-name", "suzhou-json")
    text = (root / PACKAGE / "dialect.yaml").read_text(encoding="utf-8")
    spec = load_spec(root / PACKAGE / "dialect.yaml")  # validated against the schema and the contract
    assert spec.name == "suzhou-json" == read_manifest(root)["dialect"]
    assert set(spec.operations) == {"read_card", "verify_identity", "activate", "list_services", "health"}
    assert {op.path for op in spec.operations.values()} == {f"/suzhou-json/{p}" for p in (
        "card/query", "identity/verify", "card/activate", "services", "health")}  # no route of another dialect
    assert text.count("TODO") >= 8 and "{{" not in text
    init = (root / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert 'Path(__file__).with_name("dialect.yaml")' in init
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg", encoding="utf-8")
    assert cfg["options.entry_points"]["essc.dialects"].strip() == f"suzhou-json = {PACKAGE}:essc_dialects"


def test_the_code_dialect_has_both_sides(tmp_path, quiet_registry):
    root = scaffold(tmp_path / "plugin", "code")
    manifest = read_manifest(root)
    assert manifest["adapter"] == {"class": f"{PACKAGE}.adapter:SuzhouAdapter"}
    city = (root / PACKAGE / "city.py").read_text(encoding="utf-8")
    assert "def register(app: Flask) -> None:" in city and "DIALECT.exchange(" in city and "guard_body(" in city
    init = (root / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert f'DialectEntry(name=DIALECT, city_side="{PACKAGE}.city:register"' in init
    assert "class SuzhouAdapter(CityAdapter):" in (root / PACKAGE / "adapter.py").read_text(encoding="utf-8")
    assert 'DIALECT = "suzhou"' in (root / PACKAGE / "protocol.py").read_text(encoding="utf-8")


def _code_without_docstrings(source: str, renames: dict[str, str]) -> str:
    tree = ast.parse(source)
    for node in [tree, *[n for n in tree.body if isinstance(n, ast.ClassDef)]]:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            node.body = body[1:]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in renames:
            node.name = renames[node.name]
    return ast.unparse(tree)


def test_a_dialect_without_a_spec_is_derived_from_its_reference_plugin(tmp_path, quiet_registry):
    root = scaffold(tmp_path / "plugin", "gm-json")
    reference = Path(builtin_references()["gm-json"].directory)
    assert reference.name == "sichuan"
    assert set(builtin_references()) == {"gm-json"}  # the manifest-only reference plugins are no references
    assert available_dialects()["gm-json"].kind == "reference"
    for module in ("adapter.py", "const.py"):
        generated = (root / PACKAGE / module).read_text(encoding="utf-8")
        original = (reference / module).read_text(encoding="utf-8")
        code = _code_without_docstrings(generated, {})  # comments are dropped too
        assert code == _code_without_docstrings(original, {"SichuanAdapter": "SuzhouAdapter"})
        assert "SichuanAdapter" not in code
    const = (root / PACKAGE / "const.py").read_text(encoding="utf-8")
    assert f"[credentials.{PLUGIN}]" in const and "[credentials.sichuan]" not in const


def test_the_reference_adapter_is_derived_at_generation_time(tmp_path, quiet_registry):
    """No adapter template: a change of the reference plugin shows up in the next scaffolded plugin."""
    original = builtin_references()["gm-json"]
    copy = tmp_path / "sichuan"
    shutil.copytree(original.directory, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "const.py", "a", encoding="utf-8") as fh:
        fh.write('\n#: added to the reference after this test was written\nNEW_WIRE_FIELD = "x"\n')
    spec = PluginSpec(city=CITY, city_name=NAME, province=PROVINCE, dialect="gm-json", plugin=PLUGIN,
                      maintainer_email="t@example.org", maintainer_name="t")
    files = render_plugin(spec, {"gm-json": Reference(original.name, copy, original.manifest)})
    assert 'NEW_WIRE_FIELD = "x"' in files[f"{PACKAGE}/const.py"]


@pytest.mark.parametrize("dialect", list(KIND_OF))
def test_the_generated_plugin_loads_in_the_registry(tmp_path, quiet_registry, dialect):
    """Through a plugin folder, in this process: loaded, city 320500, the adapter implements every
    operation of the manifest (a new dialect's spec is read from the plugin folder)."""
    name = f"suzhou_{dialect.replace('-', '_').replace('.', '_')}"
    root = scaffold(tmp_path / "plugin", dialect, "--plugin-name", name)
    package = f"essc_{name}"
    try:
        registry = Registry(Settings(builtin_plugins=True, entry_points=False, plugin_dirs=(root,)))
        record = next(r for r in registry.load_all() if r.source.module == package)
        assert (record.status, record.reason, record.cities) == ("loaded", None, (CITY,))
        assert registry.city(CITY).plugin == record.name
        adapter = registry.adapter(CITY)
        expected = {"spec": "SpecAdapter", "new": "SpecAdapter", "code": name.title().replace("_", "") + "Adapter",
                    "reference": "SuzhouGmJsonAdapter"}[KIND_OF[dialect]]
        assert type(adapter).__name__ == expected
    finally:
        sys.path[:] = [p for p in sys.path if p != str(root)]
        for module in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[module]


def _ruff() -> str | None:
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed in this environment")
@pytest.mark.parametrize("dialect", list(KIND_OF))
def test_the_generated_code_passes_ruff(tmp_path, quiet_registry, dialect):
    root = scaffold(tmp_path / "plugin", dialect)
    proc = subprocess.run([_ruff(), "check", "--no-cache", "."], cwd=root, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the contract suite's mock learns the cities of installed plugins -----------------------------------------
@pytest.mark.slow
def test_a_city_not_opened_is_added_to_a_running_mock_as_not_opened(tmp_path, quiet_registry):
    root = scaffold(tmp_path / "plugin", "xml-envelope", "--not-opened", city="320600", name="南通")
    with running_mock(tmp_path) as url:
        assert "320600" not in {c["code"] for c in MockAdmin(url).cities()}
        proc = run([sys.executable, "-c", ESSC, "contract", "--plugin", "nantong", "--mock-url", url, "-rA"],
                   cwd=tmp_path, env=clean_env(ESSC_PLUGIN_DIRS=str(root)))
        cities = {c["code"]: c for c in MockAdmin(url).cities()}
    assert "PASSED ::test_city_not_opened[320600-nantong]" in proc.stdout
    assert "city 320600 has not opened the e-SSC service" in proc.stdout and " failed" not in proc.stdout
    assert {k: cities["320600"][k] for k in ("name", "province", "dialect", "mode")} == {
        "name": "南通", "province": PROVINCE, "dialect": "xml-envelope", "mode": "not_opened"}


# -- end to end: a fresh virtual environment -------------------------------------------------------------
#: dialect -> (city, name, plugin): each case installs its own plugin into the SHARED environment
E2E_CASES = {"soap-1.1": ("320500", "苏州", "suzhou"), "new": ("320600", "南通", "nantong"),
             "code": ("320700", "连云港", "lianyungang"), "rest-json": ("320800", "淮安", "huaian"),
             "pinyin-form": ("320900", "盐城", "yancheng"), "xml-envelope": ("321000", "扬州", "yangzhou"),
             "gm-json": ("321100", "镇江", "zhenjiang")}
E2E_DIALECTS = [d.strip() for d in os.environ.get("ESSC_SCAFFOLD_DIALECTS", "soap-1.1,new,code").split(",")
                if d.strip()]


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this run's packages (essc-adapters, pytest, pip,
    setuptools) but installs into its own site-packages. ``--system-site-packages`` alone would show
    the BASE interpreter's packages, not those of the virtual environment (tox's, or a developer's
    venv) this test runs in: a ``.pth`` file adds them."""
    venv.EnvBuilder(system_site_packages=True, with_pip=find_spec("pip") is None, symlinks=os.name != "nt",
                    clear=True).create(path)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=path).stdout
    parents = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
    lines = [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(parents)]
    Path(purelib.strip(), "_essc_parent_environment.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return python


@pytest.fixture(scope="module")
def e2e_python(tmp_path_factory) -> str:
    """One fresh virtual environment for every end-to-end case (each installs a plugin of its own)."""
    return str(fresh_venv(tmp_path_factory.mktemp("e2e") / "venv"))


@pytest.mark.slow
@pytest.mark.skipif(find_spec("setuptools") is None, reason="setuptools is needed to build the plugin offline")
@pytest.mark.parametrize("dialect", E2E_DIALECTS)
def test_scaffold_install_discover_and_pass_the_contract_suite(tmp_path, quiet_registry, e2e_python, dialect):
    city, name, plugin = E2E_CASES[dialect]
    kind = KIND_OF.get(dialect, "spec")
    package, dist = f"essc_{plugin}", f"essc-{plugin}"
    wire = plugin if kind in ("new", "code") else dialect
    root = scaffold(tmp_path / dist, dialect, city=city, name=name, province=None)  # province from the city code
    python = e2e_python
    assert run([python, "-P", "-c", f"import {package}"], cwd=tmp_path, check=False).returncode != 0

    # a normal (non-editable) install: the wheel must carry manifest.json (and dialect.yaml), the entry points
    run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(root)],
        cwd=tmp_path, timeout=180)
    installed = run([python, "-P", "-c", f"import {package}; print({package}.__file__)"], cwd=tmp_path).stdout
    assert Path(installed.strip()).parent.parent.name == "site-packages"

    # the framework's registry in that environment finds it through the entry point
    rows = json.loads(run([python, "-P", "-c", ESSC, "plugins", "--json"], cwd=tmp_path).stdout)
    row = next(r for r in rows if r["name"] == plugin)
    assert (row["status"], row["cities"], row["module"], row["dialect"]) == ("loaded", [city], package, wire)
    assert row["origin"] == f"entry-point:{dist}"
    assert {r["name"] for r in rows} >= {"zhejiang", "fujian", "sichuan", "mohrss", "changzhou"}
    if kind in ("new", "code"):  # ... and the framework its dialect
        rows = json.loads(run([python, "-P", "-c", ESSC, "dialects", "--json"], cwd=tmp_path).stdout)
        row = next(r for r in rows if r["name"] == wire)
        assert (row["origin"], row["platform_side"], row["city_side"]) == (f"entry-point:{dist}", kind_sides(kind),
                                                                             kind_sides(kind))

    # the generated repository's own tests: against the in-process mock + the contract suite for its city
    proc = run([python, "-P", "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider"], cwd=root, timeout=180)
    assert "tests/test_against_mock.py::test_adapter_against_the_mock[activate-sealed] PASSED" in proc.stdout
    assert "tests/test_against_mock.py::test_the_mock_plays_the_dialect PASSED" in proc.stdout
    assert f"tests/test_contract.py::test_happy_path[{city}-{plugin}] PASSED" in proc.stdout
    assert "330100" not in proc.stdout and " failed" not in proc.stdout
    assert only_skipped_for_want_of_cassettes(proc.stdout)

    # the documented command, from the plugin's environment: every check passes, and a tier
    proc = run([python, "-P", "-c", ESSC, "contract", "--plugin", plugin, "--report", str(tmp_path / "report"),
                "-rs"], cwd=tmp_path, timeout=180)
    # 15-19 checks, and the 5 of contract 1.2 for a spec plugin (it declares what its spec carries)
    assert re.search(r"\b(1[5-9]|2[0-4]) passed\b", proc.stdout) and " failed" not in proc.stdout, proc.stdout
    assert only_skipped_for_want_of_cassettes(proc.stdout)
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["plugins"][plugin]["tier"] == "gold"  # platinum needs cassettes recorded against the city

    if kind not in ("new", "code"):
        return
    # `essc mock` of that environment plays the plugin's own dialect: the suite in the plugin's
    # repository against a RUNNING mock that has never heard of the city
    with running_mock(tmp_path, python) as url:
        assert city not in {c["code"] for c in MockAdmin(url).cities()}
        proc = run([python, "-P", "-m", "pytest", "tests/test_contract.py", "-v", "-p", "no:cacheprovider",
                    "--essc-city", city, "--essc-mock-url", url], cwd=root, timeout=180)
        assert f"test_upstream_fault[{city}-{plugin}-hang] PASSED" in proc.stdout and " failed" not in proc.stdout
        assert {c["code"]: c["dialect"] for c in MockAdmin(url).cities()}[city] == wire


def only_skipped_for_want_of_cassettes(output: str) -> bool:
    """Every check skipped (``-rs`` lines) is the recorded conformance, skipped without cassettes, or a
    check of an operation of contract 1.2 the scaffolded manifest does not declare."""
    return all("no cassettes" in line or "not declared: " in line
               for line in output.splitlines() if line.startswith("SKIPPED ["))


def kind_sides(kind: str) -> str:
    """What ``essc dialects`` says of both sides of a plugin's own dialect: spec or code."""
    return "spec" if kind == "new" else "code"
