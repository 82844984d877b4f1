"""``essc new-plugin``: scaffold a standalone city plugin package.

    essc new-plugin --city 320500 --name 苏州 --province 江苏 --dialect rest-json ./essc-suzhou

The package (``essc_<plugin>``, its own setup.cfg with the ``essc.plugins`` entry point, manifest,
tests, tox.ini, README) is rendered from the Jinja2 templates in ``essc/cli/templates/scaffold/``.
The adapter is NOT a template: ``adapter.py`` and ``const.py`` are copied, at generation time, from
the installed reference plugin of the chosen dialect (``essc.plugins.<reference>``) with new module
docstrings and the adapter class renamed, so a new plugin always starts from the code the framework's
own tests and contract suite exercise, and there are no per-dialect adapter templates to drift.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = ["DIALECTS", "PluginSpec", "ScaffoldError", "new_plugin_cmd", "render_plugin", "write_plugin"]

#: Dialects a plugin can be scaffolded for: those of docs/dialects.md (the manifest's "other" has
#: no reference plugin to start from).
DIALECTS = ("rest-json", "pinyin-form", "xml-envelope", "gm-json")
CITY_CODE = re.compile(r"^[0-9]{6}$")
PLUGIN_VERSION = "0.1.0"
TEMPLATE_PACKAGE = "essc.cli.templates"
TEMPLATE_FOLDER = "scaffold"


class ScaffoldError(Exception):
    """The plugin cannot be generated (a reference plugin is missing or has an unexpected shape)."""


@dataclass(frozen=True)
class Reference:
    """The reference plugin a new plugin of its dialect is derived from."""

    name: str
    directory: Path
    manifest: dict[str, Any]


@dataclass
class PluginSpec:
    """What ``essc new-plugin`` was asked for (validated by :func:`check_spec`)."""

    city: str
    city_name: str
    province: str
    dialect: str
    plugin: str
    maintainer_email: str
    maintainer_name: str
    opened: bool = True

    @property
    def package(self) -> str:
        return f"essc_{self.plugin}"

    @property
    def dist_name(self) -> str:
        return "essc-" + self.plugin.replace("_", "-")

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.plugin.split("_") if part) + "Adapter"


# -- names and checks ----------------------------------------------------------------------------------
def _manifest_schema() -> dict[str, Any]:
    from essc import schemas

    return schemas.load("manifest")


def plugin_name_pattern() -> str:
    """The manifest schema's pattern of a plugin name (the single source of truth)."""
    return _manifest_schema()["properties"]["name"]["pattern"]


def default_plugin_name(city_name: str) -> str:
    """The pinyin of the city's name without tones (苏州 -> suzhou)."""
    from pypinyin import lazy_pinyin

    return re.sub(r"[^a-z0-9_]", "", "".join(lazy_pinyin(city_name)).lower())


def builtin_references() -> dict[str, Reference]:
    """dialect -> the in-repo reference plugin of that dialect (the first by name if several)."""
    from essc.core.manifest import discover
    from essc.core.settings import Settings

    found: dict[str, Reference] = {}
    for source in discover(Settings(builtin_plugins=True, entry_points=False, plugin_dirs=())):
        if source.directory is None:
            continue
        try:
            manifest = json.loads((source.directory / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        dialect = manifest.get("dialect")
        name = manifest.get("name", source.name)
        if dialect in DIALECTS and (dialect not in found or name < found[dialect].name):
            found[dialect] = Reference(name, source.directory, manifest)
    return found


def installed_claims(registry=None) -> tuple[dict[str, str], dict[str, str]]:
    """``({city code: plugin}, {plugin name: origin})`` over every plugin the registry discovers,
    whatever its state (a disabled or quarantined plugin still holds its city and name)."""
    from essc.core.registry import Registry

    registry = registry or Registry()
    cities: dict[str, str] = {}
    names: dict[str, str] = {}
    for record in registry.plugins:
        names.setdefault(record.name, record.source.origin)
        for code in record.cities:
            cities.setdefault(code, record.name)
    return cities, names


def check_spec(spec: PluginSpec, registry=None) -> None:
    """Refuse what cannot become a valid, loadable plugin (``click.BadParameter`` naming the option)."""
    if not CITY_CODE.match(spec.city):
        raise click.BadParameter(f"{spec.city!r} is not a city code: a city code is 6 digits (GB/T 2260), "
                                 "e.g. 320500", param_hint="'--city'")
    pattern = plugin_name_pattern()
    if not re.fullmatch(pattern, spec.plugin):
        raise click.BadParameter(f"{spec.plugin!r} does not match the manifest's plugin name pattern {pattern} "
                                 "(lower-case letters, digits and '_', starting with a letter, 2-40 characters)",
                                 param_hint="'--plugin-name'")
    cities, names = installed_claims(registry)
    if spec.city in cities:
        raise click.BadParameter(f"city {spec.city} is already served by the installed plugin {cities[spec.city]!r}; "
                                 "two plugins claiming one city get the second quarantined",
                                 param_hint="'--city'")
    if spec.plugin in names:
        raise click.BadParameter(f"a plugin named {spec.plugin!r} is already installed ({names[spec.plugin]}); "
                                 "choose another --plugin-name", param_hint="'--plugin-name'")
    from essc.core.schemas import validator

    problem = validator("manifest").first_problem(build_manifest(spec, _reference_manifest_stub()))
    if problem is not None:
        options = {"$.name": "'--plugin-name'", "$.cities[0].code": "'--city'", "$.cities[0].name": "'--name'",
                   "$.cities[0].province": "'--province'",
                   "$.maintainers[0].email": "'--maintainer-email'", "$.maintainers[0].name": "'--maintainer-name'"}
        raise click.BadParameter(f"the manifest would be invalid: {problem}", param_hint=options.get(problem.path))


def _reference_manifest_stub() -> dict[str, Any]:
    return {"capabilities": {"operations": ["read_card", "verify_identity", "activate", "health"],
                             "identity_checks": ["sms"], "services": []},
            "timeouts": {"connect_s": 1, "read_s": 3, "total_s": 5}}


def check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise click.BadParameter(f"{directory} exists and is not a folder", param_hint="'DIR'")
    if directory.is_dir() and any(directory.iterdir()):
        raise click.BadParameter(f"{directory} is not empty: give a new or empty folder", param_hint="'DIR'")


# -- rendering -----------------------------------------------------------------------------------------
def build_manifest(spec: PluginSpec, reference_manifest: dict[str, Any]) -> dict[str, Any]:
    from essc.core import CONTRACT_VERSION

    return {
        "name": spec.plugin,
        "version": PLUGIN_VERSION,
        "contract_version": CONTRACT_VERSION,
        "description": f"{spec.province} {spec.city_name} e-SSC city system ({spec.dialect} dialect), "
                       f"scaffolded by essc new-plugin from the reference plugin "
                       f"{reference_manifest.get('name', '?')}.",
        "dialect": spec.dialect,
        "cities": [{"code": spec.city, "name": spec.city_name, "province": spec.province, "opened": spec.opened}],
        "capabilities": json.loads(json.dumps(reference_manifest["capabilities"])),
        "timeouts": dict(reference_manifest["timeouts"]),
        "maintainers": [{"name": spec.maintainer_name, "email": spec.maintainer_email}],
    }


def _docstring(text: str, indent: str) -> str:
    body = text.strip("\n").replace('"""', r"\"\"\"")
    lines = body.split("\n")
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    out = [f'{indent}"""{lines[0]}'] + [f"{indent}{line}" if line else "" for line in lines[1:]] + [f'{indent}"""']
    return "\n".join(out) + "\n"


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def derive_module(source: str, *, filename: str, module_doc: str, renames: dict[str, str],
                  adapter_class: tuple[str, str, str] | None = None) -> str:
    """``source`` with a new module docstring, the adapter class ``(old, new, docstring)`` renamed and
    re-documented, and every whole word of ``renames`` replaced. Raises :class:`ScaffoldError` when
    the source does not have the expected shape."""
    words = dict(renames)
    if adapter_class is not None:
        words[adapter_class[0]] = adapter_class[1]
    renamed = source
    for old, new in words.items():  # whole words only; never changes the line count
        renamed = re.sub(rf"\b{re.escape(old)}\b", new, renamed)
    try:
        tree = ast.parse(renamed, filename=filename)
    except SyntaxError as err:
        raise ScaffoldError(f"{filename}: not valid Python: {err}") from None
    edits: list[tuple[int, int, str]] = []  # (first line index, end line index exclusive, replacement)
    if not tree.body or not _is_docstring(tree.body[0]):
        raise ScaffoldError(f"{filename}: no module docstring")
    first = tree.body[0]
    edits.append((first.lineno - 1, first.end_lineno, _docstring(module_doc, "")))
    if adapter_class is not None:
        old, new, doc = adapter_class
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and _is_adapter_class(n)]
        if classes != [new]:
            raise ScaffoldError(f"{filename}: expected exactly one CityAdapter subclass {old}, found "
                                f"{classes or 'none'}")
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == new).body
        if body and _is_docstring(body[0]):
            edits.append((body[0].lineno - 1, body[0].end_lineno, _docstring(doc, " " * body[0].col_offset)))
    lines = renamed.splitlines(keepends=True)
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text]
    derived = "".join(lines)
    try:
        ast.parse(derived, filename=filename)
    except SyntaxError as err:  # pragma: no cover - a docstring-splicing bug
        raise ScaffoldError(f"{filename}: the derived code is not valid Python: {err}") from None
    return derived


def _is_adapter_class(node: ast.ClassDef) -> bool:
    return any(getattr(b, "id", getattr(b, "attr", None)) == "CityAdapter" for b in node.bases)


def _reference_class(reference: Reference) -> str:
    tree = ast.parse((reference.directory / "adapter.py").read_text(encoding="utf-8"))
    names = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and _is_adapter_class(n)]
    if len(names) != 1:
        raise ScaffoldError(f"reference plugin {reference.name}: expected one CityAdapter subclass in adapter.py, "
                            f"found {names or 'none'}")
    return names[0]


def _jinja_env():
    from importlib.resources import files

    import jinja2

    folder = files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_FOLDER)

    def load(name: str) -> str | None:
        resource = folder.joinpath(name)
        return resource.read_text(encoding="utf-8") if resource.is_file() else None

    return jinja2.Environment(loader=jinja2.FunctionLoader(load), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


def render_plugin(spec: PluginSpec, references: dict[str, Reference] | None = None) -> dict[str, str]:
    """Every file of the new plugin: ``{relative path: text}`` (nothing written)."""
    from importlib.metadata import PackageNotFoundError, version

    from essc.core import CONTRACT_VERSION

    references = builtin_references() if references is None else references
    reference = references.get(spec.dialect)
    if reference is None:
        raise ScaffoldError(f"no reference plugin of dialect {spec.dialect} is installed with essc-adapters "
                            f"(found: {', '.join(sorted(references)) or 'none'})")
    try:
        framework_version = version("essc-adapters")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        framework_version = "0.1.0"
    ref_class = _reference_class(reference)
    values = {
        "city": spec.city, "city_name": spec.city_name, "province": spec.province, "dialect": spec.dialect,
        "plugin": spec.plugin, "package": spec.package, "dist_name": spec.dist_name, "class_name": spec.class_name,
        "version": PLUGIN_VERSION, "framework_version": framework_version, "contract_version": CONTRACT_VERSION,
        "maintainer_name": spec.maintainer_name, "maintainer_email": spec.maintainer_email,
        "reference": reference.name, "reference_class": ref_class,
    }
    origin = (f"Derived by ``essc new-plugin`` (essc-adapters {framework_version}) from the reference plugin\n"
              f"``essc.plugins.{reference.name}`` ({ref_class}): the code is the reference's, renamed; adapt it to\n"
              f"the {spec.city_name} system's interface (README.md, \"Making it talk to the real system\").")
    renames = {reference.name: spec.plugin}
    adapter = derive_module(
        (reference.directory / "adapter.py").read_text(encoding="utf-8"), filename=f"{reference.name}/adapter.py",
        module_doc=f"Adapter of the {spec.province} {spec.city_name} e-SSC system ({spec.dialect}, docs/dialects.md "
                   f"\"{spec.dialect}\").\n\n{origin}\n",
        renames=renames,
        adapter_class=(ref_class, spec.class_name,
                       f"Contract <-> {spec.dialect} translation for {spec.city_name} {spec.city}."))
    const = derive_module(
        (reference.directory / "const.py").read_text(encoding="utf-8"), filename=f"{reference.name}/const.py",
        module_doc=f"Wire constants of the {spec.province} {spec.city_name} e-SSC system: the {spec.dialect} dialect "
                   f"(docs/dialects.md, \"{spec.dialect}\").\n\n{origin}\n",
        renames=renames)
    env = _jinja_env()
    manifest = build_manifest(spec, reference.manifest)
    pkg = spec.package
    files = {
        "setup.cfg": env.get_template("setup.cfg.j2").render(values),
        "pyproject.toml": env.get_template("pyproject.toml.j2").render(values),
        "tox.ini": env.get_template("tox.ini.j2").render(values),
        "README.md": env.get_template("README.md.j2").render(values),
        ".gitignore": env.get_template("gitignore.j2").render(values),
        f"{pkg}/__init__.py": env.get_template("__init__.py.j2").render(values),
        f"{pkg}/manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
        f"{pkg}/adapter.py": adapter,
        f"{pkg}/const.py": const,
        "tests/conftest.py": env.get_template("conftest.py.j2").render(values),
        "tests/test_adapter.py": env.get_template(f"test_adapter_{spec.dialect}.py.j2").render(values),
        "tests/test_contract.py": env.get_template("test_contract.py.j2").render(values),
    }
    from essc.core.schemas import validator

    problem = validator("manifest").first_problem(manifest)
    if problem is not None:  # check_spec catches this earlier; keep the promise of a valid manifest
        raise ScaffoldError(f"the generated manifest is invalid: {problem}")
    return files


def write_plugin(files: dict[str, str], directory: Path) -> list[Path]:
    written = []
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# -- the command ---------------------------------------------------------------------------------------
@click.command("new-plugin")
@click.option("--city", required=True, metavar="CODE", help="The city's 6-digit division code, e.g. 320500.")
@click.option("--name", "city_name", required=True, help="The city's name in Chinese, e.g. 苏州.")
@click.option("--province", required=True, help="The province's name in Chinese, e.g. 江苏.")
@click.option("--dialect", required=True, type=click.Choice(DIALECTS),
              help="Wire dialect of the city system (docs/dialects.md).")
@click.option("--plugin-name", default=None,
              help="Plugin name (manifest 'name', entry point, package essc_<name>); default: the pinyin of --name.")
@click.option("--maintainer-email", default=None, help="Maintainers' address (default: <plugin>-essc@example.org).")
@click.option("--maintainer-name", default=None, help="Maintainers' name (default: '<name> e-SSC integration team').")
@click.option("--opened/--not-opened", default=True, show_default=True,
              help="Whether the city has opened the e-SSC service.")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
def new_plugin_cmd(city: str, city_name: str, province: str, dialect: str, plugin_name: str | None,
                   maintainer_email: str | None, maintainer_name: str | None, opened: bool, directory: Path) -> None:
    """Scaffold a standalone city plugin package in DIR (a new or empty folder).

    The adapter is derived from the reference plugin of the dialect; the package has its own
    setup.cfg with the essc.plugins entry point, a manifest, unit tests, the contract suite
    against the mock city systems, tox.ini and a README.
    """
    city, city_name, province = city.strip(), city_name.strip(), province.strip()
    if plugin_name is None:
        plugin_name = default_plugin_name(city_name)
        if not re.fullmatch(plugin_name_pattern(), plugin_name):
            raise click.BadParameter(f"cannot derive a plugin name from {city_name!r} (got {plugin_name!r}): "
                                     "give --plugin-name", param_hint="'--plugin-name'")
    spec = PluginSpec(city=city, city_name=city_name, province=province, dialect=dialect, plugin=plugin_name,
                      maintainer_email=maintainer_email or f"{plugin_name}-essc@example.org",
                      maintainer_name=maintainer_name or f"{city_name} e-SSC integration team", opened=opened)
    check_directory(directory)
    check_spec(spec)
    try:
        files = render_plugin(spec)
    except ScaffoldError as err:
        raise click.ClickException(str(err)) from None
    write_plugin(files, directory)
    click.echo(f"created plugin {spec.plugin!r} ({spec.package}, {dialect}, city {city} {city_name}) in {directory}")
    for relative in sorted(files):
        click.echo(f"  {relative}")
    click.echo(f"next: cd {directory} && python -m pip install -e \".[test]\" && essc plugins && pytest")
