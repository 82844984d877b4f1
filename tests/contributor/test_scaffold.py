"""``essc new-plugin``: what it refuses, what it generates and - end to end - that a scaffolded plugin,
pip-installed into a FRESH virtual environment, is found by the registry through its entry point and
passes its own unit tests and the contract suite against the mock for its city.

The end-to-end tests are marked ``slow`` (about 10-20 s per dialect). All four dialects run by
default; ``ESSC_SCAFFOLD_DIALECTS=rest-json`` (comma-separated) runs fewer.
"""
from __future__ import annotations

import ast
import configparser
import contextlib
import json
import os
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
from essc.cli.scaffold import DIALECTS, Reference, builtin_references, default_plugin_name, render_plugin
from essc.core import CONTRACT_VERSION
from essc.core.registry import Registry
from essc.core.schemas import validator
from essc.core.settings import Settings
from essc.mockserver.client import MockAdmin

CITY, NAME, PROVINCE, PLUGIN, PACKAGE = "320500", "苏州", "江苏", "suzhou", "essc_suzhou"
REFERENCES = {"rest-json": "zhejiang", "pinyin-form": "fujian", "xml-envelope": "mohrss", "gm-json": "sichuan"}
ESSC = "import sys; from essc.cli import main; sys.exit(main())"  # `essc ...` with a given interpreter
E2E_DIALECTS = [d.strip() for d in os.environ.get("ESSC_SCAFFOLD_DIALECTS", ",".join(DIALECTS)).split(",")
                if d.strip()]


def new_plugin(directory: Path, *extra: str, city: str = CITY, name: str = NAME, dialect: str = "rest-json"):
    args = ["new-plugin", "--city", city, "--name", name, "--province", PROVINCE, "--dialect", dialect,
            *extra, str(directory)]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def scaffold(directory: Path, dialect: str = "rest-json", *extra: str, **kwargs) -> Path:
    result = new_plugin(directory, *extra, dialect=dialect, **kwargs)
    assert result.exit_code == 0, result.output
    return directory


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
def running_mock(folder: Path):
    """``essc mock`` in its own process (a RUNNING mock, as a QA engineer would start it): its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with open(folder / "mock.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", ESSC, "mock", "--port", str(port), "--clock", "frozen"],
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


def test_refuses_an_unknown_dialect(tmp_path, quiet_registry):
    result = new_plugin(tmp_path / "out", dialect="soap")
    assert result.exit_code == 2
    assert "Invalid value for '--dialect'" in result.output and "rest-json" in result.output
    result = new_plugin(tmp_path / "out", dialect="other")  # valid in a manifest, but no reference to start from
    assert result.exit_code == 2
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


# -- what is generated ---------------------------------------------------------------------------------
def test_the_plugin_name_defaults_to_the_pinyin_of_the_city():
    assert default_plugin_name("苏州") == "suzhou"
    assert default_plugin_name("乌鲁木齐") == "wulumuqi"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_generated_package(tmp_path, quiet_registry, dialect):
    root = scaffold(tmp_path / "plugin", dialect)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", f"{PACKAGE}/__init__.py", f"{PACKAGE}/adapter.py",
                     f"{PACKAGE}/const.py", f"{PACKAGE}/manifest.json", "pyproject.toml", "setup.cfg",
                     "tests/conftest.py", "tests/test_adapter.py", "tests/test_contract.py", "tox.ini"]
    manifest = json.loads((root / PACKAGE / "manifest.json").read_text(encoding="utf-8"))
    assert validator("manifest").problems(manifest) == []
    assert manifest["name"] == PLUGIN and manifest["dialect"] == dialect
    assert manifest["contract_version"] == CONTRACT_VERSION
    assert manifest["cities"] == [{"code": CITY, "name": NAME, "province": PROVINCE, "opened": True}]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg", encoding="utf-8")
    assert cfg["options.entry_points"]["essc.plugins"].strip() == f"{PLUGIN} = {PACKAGE}"
    assert cfg["options"]["packages"].strip() == PACKAGE
    assert cfg["options.package_data"][PACKAGE].strip() == "manifest.json"
    assert "build-backend" in (root / "pyproject.toml").read_text(encoding="utf-8")
    for path in root.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert f"essc.plugins.{REFERENCES[dialect]}" in readme and "Why not a template" in readme


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


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_adapter_is_the_reference_plugins_code_renamed(tmp_path, quiet_registry, dialect):
    root = scaffold(tmp_path / "plugin", dialect)
    reference = Path(builtin_references()[dialect].directory)
    assert reference.name == REFERENCES[dialect]
    ref_class = REFERENCES[dialect].capitalize() + "Adapter"
    for module in ("adapter.py", "const.py"):
        generated = (root / PACKAGE / module).read_text(encoding="utf-8")
        original = (reference / module).read_text(encoding="utf-8")
        code = _code_without_docstrings(generated, {})  # comments are dropped too
        assert code == _code_without_docstrings(original, {ref_class: "SuzhouAdapter"})
        assert ref_class not in code
    assert "class SuzhouAdapter(CityAdapter):" in (root / PACKAGE / "adapter.py").read_text(encoding="utf-8")
    const = (root / PACKAGE / "const.py").read_text(encoding="utf-8")
    assert f"[credentials.{PLUGIN}]" in const and f"[credentials.{REFERENCES[dialect]}]" not in const


def test_the_adapter_is_derived_at_generation_time(tmp_path, quiet_registry):
    """No adapter template: a change of the reference plugin shows up in the next scaffolded plugin."""
    original = builtin_references()["rest-json"]
    copy = tmp_path / "zhejiang"
    shutil.copytree(original.directory, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "const.py", "a", encoding="utf-8") as fh:
        fh.write('\n#: added to the reference after this test was written\nNEW_WIRE_FIELD = "x"\n')
    from essc.cli.scaffold import PluginSpec

    spec = PluginSpec(city=CITY, city_name=NAME, province=PROVINCE, dialect="rest-json", plugin=PLUGIN,
                      maintainer_email="t@example.org", maintainer_name="t")
    files = render_plugin(spec, {"rest-json": Reference(original.name, copy, original.manifest)})
    assert 'NEW_WIRE_FIELD = "x"' in files[f"{PACKAGE}/const.py"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_generated_plugin_loads_in_the_registry(tmp_path, quiet_registry, dialect):
    """Through a plugin folder, in this process: loaded, city 320500, the adapter implements everything."""
    root = scaffold(tmp_path / "plugin", dialect, "--plugin-name", f"suzhou_{dialect.replace('-', '_')}")
    package = f"essc_suzhou_{dialect.replace('-', '_')}"
    try:
        registry = Registry(Settings(builtin_plugins=True, entry_points=False, plugin_dirs=(root,)))
        record = next(r for r in registry.load_all() if r.source.module == package)
        assert (record.status, record.reason, record.cities) == ("loaded", None, (CITY,))
        assert registry.city(CITY).plugin == record.name
        assert type(registry.adapter(CITY)).__name__ == f"Suzhou{dialect.title().replace('-', '')}Adapter"
    finally:
        sys.path[:] = [p for p in sys.path if p != str(root)]
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def _ruff() -> str | None:
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed in this environment")
@pytest.mark.parametrize("dialect", DIALECTS)
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
    assert "city 320600 has not opened the e-SSC service" in proc.stdout and "3 passed, 14 skipped" in proc.stdout
    assert {k: cities["320600"][k] for k in ("name", "province", "dialect", "mode")} == {
        "name": "南通", "province": PROVINCE, "dialect": "xml-envelope", "mode": "not_opened"}


@pytest.mark.slow
def test_a_city_of_a_dialect_the_mock_does_not_speak_is_skipped_with_a_warning(tmp_path):
    package = tmp_path / "p_other"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from essc.core import hookimpl\nfrom essc.tooling.bench import SyntheticAdapter\n\n\n@hookimpl\n"
        "def essc_register_adapters(register, context):\n    for city in context.cities:\n"
        "        register(city, SyntheticAdapter())\n", encoding="utf-8")
    (package / "manifest.json").write_text(json.dumps({
        "name": "p_other", "version": "1.0.0", "contract_version": CONTRACT_VERSION, "dialect": "other",
        "cities": [{"code": "700001", "name": "合成市", "province": "合成省", "opened": True}],
        "capabilities": {"operations": ["read_card", "verify_identity", "activate", "health"],
                         "identity_checks": ["sms"], "services": []},
        "timeouts": {"connect_s": 1, "read_s": 1, "total_s": 2},
        "maintainers": [{"name": "t", "email": "t@example.org"}]}, ensure_ascii=False), encoding="utf-8")
    proc = run([sys.executable, "-c", ESSC, "contract", "--plugin", "p_other", "-W", "error"], cwd=tmp_path,
               env=clean_env(ESSC_PLUGIN_DIRS=str(tmp_path)))
    assert "EsscMockWarning: the mock city systems cannot play city 700001" in proc.stdout
    assert "dialect other" in proc.stdout and "failed" not in proc.stdout
    assert "2 passed, 15 skipped" in proc.stdout  # manifest and capabilities; every check needing the mock skipped


# -- end to end: a fresh virtual environment -------------------------------------------------------------
def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this run's packages (essc-adapters, pytest, responses, pip,
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


@pytest.mark.slow
@pytest.mark.skipif(find_spec("setuptools") is None, reason="setuptools is needed to build the plugin offline")
@pytest.mark.parametrize("dialect", E2E_DIALECTS)
def test_scaffold_install_discover_and_pass_the_contract_suite(tmp_path, quiet_registry, dialect):
    root = scaffold(tmp_path / "essc-suzhou", dialect)
    python = str(fresh_venv(tmp_path / "venv"))
    assert run([python, "-c", "import essc_suzhou"], cwd=tmp_path, check=False).returncode != 0

    # a normal (non-editable) install: the wheel must carry manifest.json and the entry point
    run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(root)],
        cwd=tmp_path, timeout=180)
    installed = run([python, "-P", "-c", "import essc_suzhou; print(essc_suzhou.__file__)"], cwd=tmp_path).stdout
    assert Path(installed.strip()).is_relative_to(tmp_path / "venv")

    # the framework's registry in that environment finds it through the entry point
    rows = json.loads(run([python, "-P", "-c", ESSC, "plugins", "--json"], cwd=tmp_path).stdout)
    row = next(r for r in rows if r["name"] == PLUGIN)
    assert (row["status"], row["cities"], row["module"], row["dialect"]) == ("loaded", [CITY], PACKAGE, dialect)
    assert row["origin"] == "entry-point:essc-suzhou"
    assert {r["name"] for r in rows} >= {"zhejiang", "fujian", "sichuan", "mohrss"}

    # the generated repository's own tests: unit tests + the contract suite for 320500 (in-process mock)
    proc = run([python, "-P", "-m", "pytest", "-v", "-p", "no:cacheprovider"], cwd=root)
    assert "tests/test_contract.py::test_happy_path[320500-suzhou] PASSED" in proc.stdout
    assert "tests/test_adapter.py::test_read_card PASSED" in proc.stdout
    assert "330100" not in proc.stdout and " failed" not in proc.stdout

    if dialect != E2E_DIALECTS[0]:
        return
    # the documented command, from the plugin's environment
    proc = run([python, "-P", "-c", ESSC, "contract", "--plugin", PLUGIN], cwd=tmp_path)
    assert "17 passed" in proc.stdout
    # the suite in a third-party repository against a RUNNING mock that has never heard of 320500
    with running_mock(tmp_path) as url:
        proc = run([python, "-P", "-m", "pytest", "tests/test_contract.py", "-v", "-p", "no:cacheprovider",
                    "--essc-city", CITY, "--essc-mock-url", url], cwd=root)
        assert "test_upstream_fault[320500-suzhou-hang] PASSED" in proc.stdout and " failed" not in proc.stdout
        assert CITY in {c["code"] for c in MockAdmin(url).cities()}  # added again after the last reset
