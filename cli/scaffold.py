"""``essc new-plugin``: scaffold a standalone city plugin package, for any city protocol.

    essc new-plugin --city 320500 --name 苏州 --dialect soap-1.1 ./essc-suzhou   # an installed dialect spec
    essc new-plugin --city 320500 --name 苏州 --dialect new ./essc-suzhou        # a spec of its own, to fill in
    essc new-plugin --city 320500 --name 苏州 --dialect code ./essc-suzhou       # a protocol written in Python

What ``--dialect`` makes (:data:`KINDS`):

``spec``
    any installed dialect that has a spec (``essc.core.dialects.dialects()``: the built-in specs
    and those of the ``essc.dialects`` entry points): a plugin with no Python of its own - the
    manifest says ``"adapter": {"spec": "<dialect>"}`` and the registry derives the adapter
    from the installed spec. The package module holds only its docstring (the ``essc.plugins``
    entry point needs an importable package to find ``manifest.json`` in).
``new``
    a dialect of the plugin's own, described by a spec SKELETON (``dialect.yaml``: a complete JSON
    protocol with TODOs) that the manifest names (``"adapter": {"spec": "dialect.yaml"}``) and the
    package registers through its own ``essc.dialects`` entry point, so the mock plays it.
``code``
    a dialect written in Python, both sides: the adapter class the manifest names
    (``"adapter": {"class": "<pkg>.adapter:<Class>"}``) and the city side the mock plays
    (``DialectEntry(city_side="<pkg>.city:register")`` from the package's ``essc.dialects`` entry
    point), sharing the wire constants of ``<pkg>/protocol.py``.
``reference``
    a dialect without a spec whose only platform side is the Python of a reference plugin of
    essc-adapters (gm-json: ``essc.plugins.sichuan``): ``adapter.py`` and ``const.py`` are derived
    from the reference at generation time (renamed, re-documented), registered by a hook.

Each package has its own setup.cfg (the ``essc.plugins`` entry point), a manifest, a README, tox.ini,
a conftest that runs the contract suite for its cities, and table-driven tests of its adapter
against the in-process mock; it passes them and the suite out of the box. The files are rendered
from the Jinja2 templates in ``essc/cli/templates/scaffold/``.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from essc.core.adapter import OPERATIONS

__all__ = ["KINDS", "NEW", "CODE", "DialectChoice", "PluginSpec", "Reference", "ScaffoldError", "available_dialects",
           "builtin_references", "default_plugin_name", "new_plugin_cmd", "render_plugin", "resolve_dialect",
           "write_plugin"]

NEW, CODE = "new", "code"
#: what a package can be made of (module docstring)
KINDS = ("spec", NEW, CODE, "reference")
#: --dialect values that are no dialect name
RESERVED = (NEW, CODE, "other")
CITY_CODE = re.compile(r"^[0-9]{6}$")
PLUGIN_VERSION = "0.1.0"
TEMPLATE_PACKAGE = "essc.cli.templates"
TEMPLATE_FOLDER = "scaffold"
#: the contract operations in the order manifests list them (a spec plugin declares those its spec carries)
OPERATION_ORDER = tuple(OPERATIONS)
#: what a plugin with a dialect of its own starts with (the skeleton carries the operations of 1.0)
FIRST_OPERATIONS = tuple(n for n, op in OPERATIONS.items() if op.since == "1.0")
#: operations that need a second factor of the city (the ticket they take comes from it)
NEEDS_FACTOR = {"enable_payment": "password", "reset_password": "sms"}
FACTORS = ("sms", "password")
SERVICES = ("identity_login", "social_security", "employment", "payment", "medical_bill")
TIMEOUTS = {"connect_s": 1, "read_s": 3, "total_s": 5, "retries": 1}


class ScaffoldError(Exception):
    """The plugin cannot be generated (a reference plugin is missing or has an unexpected shape)."""


@dataclass(frozen=True)
class Reference:
    """The Python reference plugin a new plugin of a dialect without a spec is derived from."""

    name: str
    directory: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class DialectChoice:
    """What ``--dialect`` resolved to: the kind of package, the wire dialect's name and its source."""

    kind: str
    name: str
    origin: str = "builtin"
    title: str = ""
    spec: Any = None  #: the installed DialectSpec (kind spec)
    reference: Reference | None = None  #: kind reference


@dataclass
class PluginSpec:
    """What ``essc new-plugin`` was asked for (validated by :func:`check_spec`). ``dialect`` is the
    ``--dialect`` value: an installed dialect, ``new`` or ``code``; ``dialect_name`` names the
    dialect a ``new`` or ``code`` plugin brings (default: the plugin name)."""

    city: str
    city_name: str
    province: str
    dialect: str
    plugin: str
    maintainer_email: str
    maintainer_name: str
    opened: bool = True
    dialect_name: str | None = None

    @property
    def package(self) -> str:
        return f"essc_{self.plugin}"

    @property
    def dist_name(self) -> str:
        return "essc-" + self.plugin.replace("_", "-")

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.plugin.split("_") if part) + "Adapter"

    @property
    def wire_dialect(self) -> str:
        """The manifest's ``dialect``: the installed one, or the one the plugin brings."""
        if self.dialect in (NEW, CODE):
            return self.dialect_name or self.plugin.replace("_", "-")
        return self.dialect


# -- names and checks ----------------------------------------------------------------------------------
def _manifest_schema() -> dict[str, Any]:
    from essc import schemas

    return schemas.load("manifest")


def plugin_name_pattern() -> str:
    """The manifest schema's pattern of a plugin name (the single source of truth)."""
    return _manifest_schema()["properties"]["name"]["pattern"]


def dialect_name_pattern() -> str:
    """The manifest schema's pattern of a dialect name."""
    return _manifest_schema()["properties"]["dialect"]["pattern"]


def default_plugin_name(city_name: str) -> str:
    """The pinyin of the city's name without tones (苏州 -> suzhou)."""
    from pypinyin import lazy_pinyin

    return re.sub(r"[^a-z0-9_]", "", "".join(lazy_pinyin(city_name)).lower())


def builtin_references() -> dict[str, Reference]:
    """dialect -> the in-repo reference plugin with a Python adapter of that dialect (the first by
    name if several). Reference plugins that are a manifest only are not references."""
    from essc.core.manifest import discover
    from essc.core.settings import Settings

    found: dict[str, Reference] = {}
    for source in discover(Settings(builtin_plugins=True, entry_points=False, plugin_dirs=())):
        if source.directory is None or not (source.directory / "adapter.py").is_file():
            continue
        try:
            manifest = json.loads((source.directory / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        dialect = manifest.get("dialect")
        name = manifest.get("name", source.name)
        if isinstance(dialect, str) and "adapter" not in manifest and (
                dialect not in found or name < found[dialect].name):
            found[dialect] = Reference(name, source.directory, manifest)
    return found


def installed_dialect_names() -> set[str]:
    """Every dialect name taken: the installed dialects and the mock's hand-written ones."""
    from essc.core.dialects import dialects
    from essc.mockserver.cities import DIALECTS as HAND_WRITTEN

    return set(dialects()) | set(HAND_WRITTEN)


def available_dialects(references: dict[str, Reference] | None = None) -> dict[str, DialectChoice]:
    """Every installed dialect a plugin can be scaffolded for, by name: those with a spec, then
    those whose only platform side is a reference plugin's Python (not ``new``/``code``)."""
    from essc.core.dialects import dialects

    references = builtin_references() if references is None else references
    out: dict[str, DialectChoice] = {}
    for name, entry in sorted(dialects().items()):
        if entry.spec is not None:
            out[name] = DialectChoice("spec", name, entry.origin, entry.spec.title, spec=entry.spec)
    for name, reference in sorted(references.items()):
        if name not in out:
            out[name] = DialectChoice("reference", name, "builtin", f"Python of the reference plugin {reference.name}",
                                      reference=reference)
    return out


def _installed_list(available: dict[str, DialectChoice]) -> str:
    specs = [n for n, c in available.items() if c.kind == "spec"]
    refs = [f"{n} (from the reference plugin {c.reference.name})" for n, c in available.items()
            if c.kind == "reference" and c.reference is not None]
    return ", ".join(specs + refs) or "none"


def resolve_dialect(spec: PluginSpec, references: dict[str, Reference] | None = None) -> DialectChoice:
    """The kind of package ``spec.dialect`` makes; ``click.BadParameter`` for a dialect that is not
    installed, or installed without anything to derive a plugin from."""
    if spec.dialect in (NEW, CODE):
        own = "spec" if spec.dialect == NEW else "code"
        return DialectChoice(spec.dialect, spec.wire_dialect, f"the plugin's own {own}")
    available = available_dialects(references)
    choice = available.get(spec.dialect)
    if choice is not None:
        return choice
    from essc.core.dialects import dialect

    entry = dialect(spec.dialect)
    if entry is not None:  # installed, but code only (a package's own adapter classes)
        raise click.BadParameter(
            f"dialect {spec.dialect!r} ({entry.origin}) has no spec: its platform side is the code of the package "
            f"that registers it, so there is nothing to derive a plugin from. Scaffold from one of the installed "
            f"dialects with a spec: {_installed_list(available)}; or give --dialect new (a dialect spec of your own) "
            "or --dialect code (a dialect in Python, both sides)", param_hint="'--dialect'")
    raise click.BadParameter(
        f"{spec.dialect!r} is not an installed dialect. Installed: {_installed_list(available)} "
        "(`essc dialects` lists them); or --dialect new (a dialect spec of your own to fill in) or --dialect code "
        "(a dialect in Python, both sides)", param_hint="'--dialect'")


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


_OPTION_OF_PATH = {"$.name": "'--plugin-name'", "$.cities[0].code": "'--city'", "$.cities[0].name": "'--name'",
                   "$.cities[0].province": "'--province'", "$.dialect": "'--dialect-name'",
                   "$.maintainers[0].email": "'--maintainer-email'", "$.maintainers[0].name": "'--maintainer-name'"}


def check_spec(spec: PluginSpec, registry=None, references: dict[str, Reference] | None = None) -> DialectChoice:
    """Refuse what cannot become a valid, loadable plugin (``click.BadParameter`` naming the option);
    return what ``--dialect`` resolved to."""
    if not CITY_CODE.match(spec.city):
        raise click.BadParameter(f"{spec.city!r} is not a city code: a city code is 6 digits (GB/T 2260), "
                                 "e.g. 320500", param_hint="'--city'")
    pattern = plugin_name_pattern()
    if not re.fullmatch(pattern, spec.plugin):
        raise click.BadParameter(f"{spec.plugin!r} does not match the manifest's plugin name pattern {pattern} "
                                 "(lower-case letters, digits and '_', starting with a letter, 2-40 characters)",
                                 param_hint="'--plugin-name'")
    if spec.dialect_name is not None and spec.dialect not in (NEW, CODE):
        raise click.BadParameter(f"--dialect-name names the dialect a new plugin brings (--dialect new or code); "
                                 f"{spec.dialect!r} is a dialect name already", param_hint="'--dialect-name'")
    choice = resolve_dialect(spec, references)
    if choice.kind in (NEW, CODE):
        name, name_pattern = choice.name, dialect_name_pattern()
        if not re.fullmatch(name_pattern, name) or name in RESERVED:
            raise click.BadParameter(f"{name!r} cannot name a dialect: the pattern is {name_pattern} (lower-case "
                                     "letters, digits, '-' and '.'), and new, code and other are reserved",
                                     param_hint="'--dialect-name'")
        if name in installed_dialect_names():
            raise click.BadParameter(f"a dialect named {name!r} is installed already (`essc dialects`): give the "
                                     "new one another name with --dialect-name, or scaffold a plugin of the installed "
                                     f"one with --dialect {name}", param_hint="'--dialect-name'")
    cities, names = installed_claims(registry)
    if spec.city in cities:
        raise click.BadParameter(f"city {spec.city} is already served by the installed plugin {cities[spec.city]!r}; "
                                 "two plugins claiming one city get the second quarantined",
                                 param_hint="'--city'")
    if spec.plugin in names:
        raise click.BadParameter(f"a plugin named {spec.plugin!r} is already installed ({names[spec.plugin]}); "
                                 "choose another --plugin-name", param_hint="'--plugin-name'")
    from essc.core.schemas import validator

    problem = validator("manifest").first_problem(build_manifest(spec, choice))
    if problem is not None:
        raise click.BadParameter(f"the manifest would be invalid: {problem}",
                                 param_hint=_OPTION_OF_PATH.get(problem.path))
    return choice


def check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise click.BadParameter(f"{directory} exists and is not a folder", param_hint="'DIR'")
    if directory.is_dir() and any(directory.iterdir()):
        raise click.BadParameter(f"{directory} is not empty: give a new or empty folder", param_hint="'DIR'")


# -- the manifest --------------------------------------------------------------------------------------
def spec_capabilities(dialect_spec: Any) -> dict[str, list[str]]:
    """What a plugin speaking ``dialect_spec`` can declare: the operations the spec carries, the
    second factors of its factor table, the services of its service table."""
    ops = [op for op in OPERATION_ORDER if op in dialect_spec.operations]
    factors = list(FACTORS)
    verify = dialect_spec.operations.get("verify_identity")
    for rule in (verify.request.values() if verify is not None else ()):
        if isinstance(rule, dict) and rule.get("field") == "factor" and rule.get("table"):
            table = dialect_spec.tables.get(rule["table"], {})
            factors = [f for f in FACTORS if f in table]
    services: list[str] = []
    listing = dialect_spec.operations.get("list_services")
    if listing is not None:
        code = listing.response.get("services", {}).get("code")
        table = dialect_spec.tables.get(code.get("table", ""), {}) if isinstance(code, dict) else {}
        services = [s for s in SERVICES if s in table]
    #: enable_payment needs a password check, reset_password an SMS check
    ops = [op for op in ops if NEEDS_FACTOR.get(op, factors[0] if factors else "") in factors]
    return {"operations": ops, "identity_checks": factors, "services": services}


def build_manifest(spec: PluginSpec, choice: DialectChoice) -> dict[str, Any]:
    from essc.core import CONTRACT_VERSION

    where = f"{spec.province} {spec.city_name} e-SSC city system"
    if choice.kind == "spec":
        capabilities = spec_capabilities(choice.spec)
        adapter: dict[str, str] | None = {"spec": choice.name}
        description = (f"{where} ({choice.name} dialect): a manifest and nothing else - the adapter is derived "
                       f"from the installed {choice.name} dialect spec. Scaffolded by essc new-plugin.")
    elif choice.kind == "reference" and choice.reference is not None:
        capabilities = json.loads(json.dumps(choice.reference.manifest["capabilities"]))
        adapter = None
        description = (f"{where} ({choice.name} dialect): adapter derived from the reference plugin "
                       f"{choice.reference.name} by essc new-plugin.")
    else:
        capabilities = {"operations": list(FIRST_OPERATIONS), "identity_checks": list(FACTORS),
                        "services": list(SERVICES)}
        if choice.kind == NEW:
            adapter = {"spec": "dialect.yaml"}
            description = (f"{where} in its own dialect {choice.name}, described by the dialect spec dialect.yaml "
                           "(adapter and mock city derived from it). Scaffolded by essc new-plugin.")
        else:
            adapter = {"class": f"{spec.package}.adapter:{spec.class_name}"}
            description = (f"{where} in its own dialect {choice.name}, written in Python: the adapter "
                           f"({spec.class_name}) and the mock's city side. Scaffolded by essc new-plugin.")
    manifest: dict[str, Any] = {
        "name": spec.plugin,
        "version": PLUGIN_VERSION,
        "contract_version": CONTRACT_VERSION,
        "description": description,
        "dialect": choice.name,
    }
    if adapter is not None:
        manifest["adapter"] = adapter
    manifest.update({
        "cities": [{"code": spec.city, "name": spec.city_name, "province": spec.province, "opened": spec.opened}],
        "capabilities": capabilities,
        "timeouts": dict(choice.reference.manifest["timeouts"]) if choice.reference is not None else dict(TIMEOUTS),
        "maintainers": [{"name": spec.maintainer_name, "email": spec.maintainer_email}],
    })
    return manifest


# -- deriving from a reference plugin (kind "reference") -------------------------------------------------
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
    edits.append((first.lineno - 1, first.end_lineno or first.lineno, _docstring(module_doc, "")))
    if adapter_class is not None:
        old, new, doc = adapter_class
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and _is_adapter_class(n)]
        if classes != [new]:
            raise ScaffoldError(f"{filename}: expected exactly one CityAdapter subclass {old}, found "
                                f"{classes or 'none'}")
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == new).body
        if body and _is_docstring(body[0]):
            edits.append((body[0].lineno - 1, body[0].end_lineno or body[0].lineno,
                          _docstring(doc, " " * body[0].col_offset)))
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


def _reference_files(spec: PluginSpec, reference: Reference, framework_version: str) -> tuple[dict[str, str], str]:
    """``adapter.py`` and ``const.py`` derived from ``reference``; and the reference's class name."""
    ref_class = _reference_class(reference)
    origin = (f"Derived by ``essc new-plugin`` (essc-adapters {framework_version}) from the reference plugin\n"
              f"``essc.plugins.{reference.name}`` ({ref_class}): the code is the reference's, renamed; adapt it to\n"
              f"the {spec.city_name} system's interface (README.md, \"Making it talk to the real system\").")
    renames = {reference.name: spec.plugin}
    dialect = spec.wire_dialect
    files = {
        "adapter.py": derive_module(
            (reference.directory / "adapter.py").read_text(encoding="utf-8"), filename=f"{reference.name}/adapter.py",
            module_doc=f"Adapter of the {spec.province} {spec.city_name} e-SSC system ({dialect}, docs/dialects.md "
                       f"\"{dialect}\").\n\n{origin}\n",
            renames=renames,
            adapter_class=(ref_class, spec.class_name,
                           f"Contract <-> {dialect} translation for {spec.city_name} {spec.city}.")),
        "const.py": derive_module(
            (reference.directory / "const.py").read_text(encoding="utf-8"), filename=f"{reference.name}/const.py",
            module_doc=f"Wire constants of the {spec.province} {spec.city_name} e-SSC system: the {dialect} dialect "
                       f"(docs/dialects.md, \"{dialect}\").\n\n{origin}\n",
            renames=renames),
    }
    return files, ref_class


# -- rendering -----------------------------------------------------------------------------------------
def _jinja_env():
    from importlib.resources import files

    import jinja2

    folder = files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_FOLDER)

    def load(name: str) -> str | None:
        resource = folder.joinpath(name)
        return resource.read_text(encoding="utf-8") if resource.is_file() else None

    return jinja2.Environment(loader=jinja2.FunctionLoader(load), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


def framework_source(framework_version: str) -> str:
    """What the plugin's tox.ini installs essc-adapters from: the checkout this one runs from when
    there is one (essc-adapters is not published on a package index), else the requirement."""
    import essc.core

    root = Path(essc.core.__file__).resolve().parent.parent
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file() and "name = essc-adapters" in setup_cfg.read_text(encoding="utf-8"):
        return str(root)
    return f"essc-adapters>={framework_version}"


#: the credentials of the skeletons of ``new`` and ``code`` (dialect.yaml.j2, protocol.py.j2)
SKELETON_CREDENTIALS = [("app_id", "the application id the city assigns to the platform", False),
                        ("sign_key", "the key of the request signature", True)]


def _credentials(choice: DialectChoice) -> list[tuple[str, str, bool]]:
    """``(name, description, secret)`` of the credentials the plugin's settings may give."""
    if choice.kind == "spec":
        return [(name, str(c.get("description", "")), bool(c.get("secret")))
                for name, c in choice.spec.credentials.items()]
    if choice.kind in (NEW, CODE):
        return SKELETON_CREDENTIALS
    return []


def render_plugin(spec: PluginSpec, references: dict[str, Reference] | None = None,
                  choice: DialectChoice | None = None) -> dict[str, str]:
    """Every file of the new plugin: ``{relative path: text}`` (nothing written)."""
    from importlib.metadata import PackageNotFoundError, version

    from essc.core import CONTRACT_VERSION

    if choice is None:
        try:
            choice = resolve_dialect(spec, references)
        except click.BadParameter as err:
            raise ScaffoldError(err.format_message()) from None
    try:
        framework_version = version("essc-adapters")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        framework_version = "0.1.0"
    manifest = build_manifest(spec, choice)
    values: dict[str, Any] = {
        "kind": choice.kind, "framework_source": framework_source(framework_version),
        "city": spec.city, "city_name": spec.city_name, "province": spec.province, "dialect": choice.name,
        "dialect_title": choice.title, "dialect_origin": choice.origin,
        "plugin": spec.plugin, "package": spec.package, "dist_name": spec.dist_name, "class_name": spec.class_name,
        "version": PLUGIN_VERSION, "framework_version": framework_version, "contract_version": CONTRACT_VERSION,
        "maintainer_name": spec.maintainer_name, "maintainer_email": spec.maintainer_email,
        "credentials": _credentials(choice), "operations": manifest["capabilities"]["operations"],
        "factor": (manifest["capabilities"]["identity_checks"] or ["sms"])[0],
        "spec_source": (f"{Path(str(choice.spec.source)).name} of "
                        f"{'essc-adapters' if choice.origin == 'builtin' else choice.origin}"
                        if choice.spec is not None else ""),
        "reference": choice.reference.name if choice.reference is not None else "", "reference_class": "",
    }
    pkg = spec.package
    files: dict[str, str] = {}
    if choice.kind == "reference" and choice.reference is not None:
        derived, values["reference_class"] = _reference_files(spec, choice.reference, framework_version)
        files.update({f"{pkg}/{name}": text for name, text in derived.items()})
    env = _jinja_env()

    def render(template: str) -> str:
        return env.get_template(template).render(values)

    files.update({
        "setup.cfg": render("setup.cfg.j2"),
        "pyproject.toml": render("pyproject.toml.j2"),
        "tox.ini": render("tox.ini.j2"),
        "README.md": render("README.md.j2"),
        ".gitignore": render("gitignore.j2"),
        f"{pkg}/__init__.py": render("__init__.py.j2"),
        f"{pkg}/manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
        "tests/conftest.py": render("conftest.py.j2"),
        "tests/test_contract.py": render("test_contract.py.j2"),
        "tests/test_against_mock.py": render("test_against_mock.py.j2"),
    })
    if choice.kind == NEW:
        files[f"{pkg}/dialect.yaml"] = render("dialect.yaml.j2")
    elif choice.kind == CODE:
        for module in ("protocol", "adapter", "city"):
            files[f"{pkg}/{module}.py"] = render(f"{module}.py.j2")
    elif choice.kind == "reference":
        files["tests/test_adapter.py"] = render(f"test_adapter_{choice.name}.py.j2")
    from essc.core.schemas import validator

    problem = validator("manifest").first_problem(manifest)
    if problem is not None:  # check_spec catches this earlier; keep the promise of a valid manifest
        raise ScaffoldError(f"the generated manifest is invalid: {problem}")
    if choice.kind == NEW:  # keep the promise of a valid spec, too
        import yaml

        from essc.core.dialects import SpecError, parse_spec

        try:
            parse_spec(yaml.safe_load(files[f"{pkg}/dialect.yaml"]), f"{pkg}/dialect.yaml")
        except SpecError as err:  # pragma: no cover - a template bug
            raise ScaffoldError(f"the generated dialect spec is invalid: {err}") from None
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
@click.option("--province", default=None,
              help="The province's name in Chinese, e.g. 江苏; default: from the city code's first two digits.")
@click.option("--dialect", required=True, metavar="DIALECT",
              help="An installed dialect (`essc dialects`): a plugin with no code of its own; 'new': a dialect "
                   "spec of its own to fill in; 'code': a dialect written in Python (both sides).")
@click.option("--dialect-name", default=None,
              help="With --dialect new or code: the name of the plugin's dialect (default: the plugin name).")
@click.option("--plugin-name", default=None,
              help="Plugin name (manifest 'name', entry point, package essc_<name>); default: the pinyin of --name.")
@click.option("--maintainer-email", default=None, help="Maintainers' address (default: <plugin>-essc@example.org).")
@click.option("--maintainer-name", default=None, help="Maintainers' name (default: '<name> e-SSC integration team').")
@click.option("--opened/--not-opened", default=True, show_default=True,
              help="Whether the city has opened the e-SSC service.")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
def new_plugin_cmd(city: str, city_name: str, province: str | None, dialect: str, dialect_name: str | None,
                   plugin_name: str | None, maintainer_email: str | None, maintainer_name: str | None, opened: bool,
                   directory: Path) -> None:
    """Scaffold a standalone city plugin package in DIR (a new or empty folder), for any protocol.

    --dialect names an installed dialect with a spec (the plugin is a manifest: its adapter is
    derived from the spec), or is 'new' (a dialect spec skeleton of the plugin's own, dialect.yaml)
    or 'code' (a dialect in Python: adapter and the mock's city side). The package has its own
    setup.cfg with the essc.plugins entry point, a manifest, tests against the mock, the contract
    suite, tox.ini and a README, and passes its tests and the suite as generated.
    """
    from essc.core.divisions import province_of

    city, city_name, dialect = city.strip(), city_name.strip(), dialect.strip()
    inferred = province is None
    if province is None:
        province = province_of(city) if CITY_CODE.match(city) else ""
        if province is None:
            raise click.BadParameter(f"cannot infer the province of city {city}: {city[:2]} is not the code of a "
                                     "province, municipality or region (GB/T 2260); give --province",
                                     param_hint="'--province'")
    province = province.strip()
    if plugin_name is None:
        plugin_name = default_plugin_name(city_name)
        if not re.fullmatch(plugin_name_pattern(), plugin_name):
            raise click.BadParameter(f"cannot derive a plugin name from {city_name!r} (got {plugin_name!r}): "
                                     "give --plugin-name", param_hint="'--plugin-name'")
    spec = PluginSpec(city=city, city_name=city_name, province=province, dialect=dialect, plugin=plugin_name,
                      maintainer_email=maintainer_email or f"{plugin_name}-essc@example.org",
                      maintainer_name=maintainer_name or f"{city_name} e-SSC integration team", opened=opened,
                      dialect_name=dialect_name.strip() if dialect_name is not None else None)
    check_directory(directory)
    choice = check_spec(spec)
    try:
        files = render_plugin(spec, choice=choice)
    except ScaffoldError as err:
        raise click.ClickException(str(err)) from None
    write_plugin(files, directory)
    what = {"spec": f"the installed {choice.name} dialect spec", NEW: f"its own dialect {choice.name}: dialect.yaml",
            CODE: f"its own dialect {choice.name} in Python", "reference": f"{choice.name}, from the reference plugin "
            f"{choice.reference.name if choice.reference else '?'}"}[choice.kind]
    click.echo(f"created plugin {spec.plugin!r} ({spec.package}; {what}) for city {city} {city_name}, "
               f"province {province}{' (from the city code)' if inferred else ''}, in {directory}")
    for relative in sorted(files):
        click.echo(f"  {relative}")
    click.echo(f"next: cd {directory} && python -m pip install -e \".[test]\" && essc plugins && pytest")
