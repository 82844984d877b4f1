"""The registry: discovers city plugins, quarantines broken ones, loads them lazily
through pluggy and dispatches contract calls through a table.

    registry = Registry(Settings.from_env())
    registry.setup()                      # reads manifests only (idempotent)
    record = registry.call("330100", "read_card", {"aac002": ..., "aac003": ..., "aab301": "330100"})

The hot path (:meth:`Registry.call`) is one dict lookup for the city, one compiled
validator for the request, the adapter call inside the city's guard (bulkhead + circuit
breaker, core/resilience.py), one compiled validator for the response (an ``activate`` answer
in the deprecated names of contract 1.0 is then handed on in the new ones, core/naming.py): its
cost does not grow with the number of cities.
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from . import divisions, hookspecs
from .adapter import OPERATIONS, CityAdapter, Payload, implemented_operations
from .answers import problem_path
from .errors import CityNotOpened, ContractViolation, EsscError, InvalidInput, PluginUnavailable
from .idnumber import validate_id_number
from .manifest import PluginRecord, discover, read_manifest
from .masking import get_logger
from .naming import RENAMED, normalise
from .resilience import BUSY_RETRY_AFTER_S, CityGuard, Clock, Policy, Resilience
from .rules import request_problem
from .schemas import validator
from .settings import PluginContext, Settings

__all__ = ["Registry", "CityInfo", "raised_at"]

log = get_logger("essc.registry")


def raised_at(err: BaseException, directory: Path | None) -> dict[str, Any] | None:
    """Where inside a plugin's package ``err`` was raised: the innermost frame of its traceback whose
    file lies in ``directory``, as ``{"file": path relative to the package, "line", "function"}``; ``None``
    when no frame is inside. Code locations only: never a value (values may be personal data)."""
    if directory is None:
        return None
    try:
        root = directory.resolve()
    except OSError:
        return None
    found: dict[str, Any] | None = None
    tb = err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        try:
            rel = Path(code.co_filename).resolve().relative_to(root)
        except (OSError, ValueError):
            rel = None
        if rel is not None:
            found = {"file": rel.as_posix(), "line": tb.tb_lineno, "function": code.co_name}
        tb = tb.tb_next
    return found


@dataclass(frozen=True)
class CityInfo:
    """A city as the manifests describe it."""

    code: str
    name: str
    province: str
    opened: bool
    plugin: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "province": self.province, "opened": self.opened,
                "plugin": self.plugin}


class _Bound:
    """A city's adapter with its operations pre-bound (the dispatch table's value)."""

    __slots__ = ("adapter", "plugin", "methods", "opened", "guard")
    guard: CityGuard  #: set by Registry._load before the city enters the dispatch table

    def __init__(self, adapter: CityAdapter, plugin: str, ops: Iterable[str], opened: bool) -> None:
        self.adapter = adapter
        self.plugin = plugin
        self.methods = {op: getattr(adapter, op) for op in ops}
        self.opened = opened


class Registry:
    """Plugins, cities and the dispatch table. Thread-safe; one per process is typical."""

    def __init__(self, settings: Settings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or Settings.from_env()
        #: per-city bulkheads and breakers; ``clock`` (default time.monotonic) times the breakers
        self.resilience = Resilience(Policy.from_settings(self.settings), clock,
                                     share=self.settings.bulkhead_share, peers=self.settings.bulkhead_peers)
        self.pm = pluggy.PluginManager("essc")
        self.pm.add_hookspecs(hookspecs)
        self._records: dict[str, PluginRecord] = {}
        self._cities: dict[str, CityInfo] = {}
        self._table: dict[str, _Bound] = {}
        self._lock = threading.RLock()
        self._ready = False
        self._observe = self.pm.hook.essc_adapter_called
        self._validators = {name: (validator(op.request_schema), validator(op.response_schema))
                            for name, op in OPERATIONS.items()}
        #: operations whose answers may carry deprecated names (core/naming.py): handed on in the new ones
        self._renamed = {name: op.response_schema for name, op in OPERATIONS.items() if op.response_schema in RENAMED}

    # -- setup -------------------------------------------------------------------------
    def setup(self) -> Registry:
        """Discover plugins and read their manifests (no plugin code is imported).
        Idempotent: a second call does nothing."""
        with self._lock:
            if self._ready:
                return self
            if self.settings.trace:
                self.pm.trace.root.setwriter(lambda msg: log.info("hook trace: %s", msg.rstrip()))
                self.pm.enable_tracing()
            allow, block = self.settings.allow, self.settings.block
            for source in discover(self.settings):
                record = PluginRecord(source)
                read_manifest(record)
                name = record.name
                if name in self._records:
                    other = self._records[name]
                    record.quarantine(f"plugin name {name!r} is already used by {other.source.module} "
                                      f"({other.source.origin})")
                    self._records[f"{name}@{source.module}"] = record
                    continue
                self._records[name] = record
                if record.status == "quarantined":
                    continue
                if name in block or (allow is not None and name not in allow):
                    record.status = "disabled"
                    record.reason = ("blocked by settings (ESSC_DISABLED_PLUGINS / [plugins] block)" if name in block
                                     else "not in the allow list (ESSC_LOAD_PLUGINS / [plugins] allow)")
                    continue
                self._claim_cities(record)
            for record in self._records.values():
                if record.status == "quarantined":
                    self._notify_quarantine(record)
            self._ready = True
            return self

    def _claim_cities(self, record: PluginRecord) -> None:
        taken = [(c, self._cities[c].plugin) for c in record.cities if c in self._cities]
        if taken:
            code, owner = taken[0]
            record.quarantine(f"claims city {code} already claimed by plugin {owner!r}")
            return
        for c in record.manifest["cities"] if record.manifest else ():
            self._cities[c["code"]] = CityInfo(c["code"], c["name"], c["province"], c["opened"], record.name)

    # -- introspection -----------------------------------------------------------------
    @property
    def plugins(self) -> list[PluginRecord]:
        self.setup()
        return list(self._records.values())

    def plugin(self, name: str) -> PluginRecord:
        self.setup()
        return self._records[name]

    def cities(self) -> list[CityInfo]:
        self.setup()
        return sorted(self._cities.values(), key=lambda c: c.code)

    def city(self, code: str) -> CityInfo:
        """The city's manifest entry. Raises :class:`CityNotOpened` for a city of the country no
        plugin serves (essc.core.divisions), :class:`PluginUnavailable` when its plugin is
        quarantined or disabled, else :class:`InvalidInput` naming what is wrong with the code."""
        self.setup()
        info = self._cities.get(code)
        if info is None:
            raise self._unknown_city(code)
        return info

    def served(self, code: str) -> CityInfo | None:
        """The manifest entry of a city a plugin serves, or ``None`` (no error; no lock once set up)."""
        if not self._ready:
            self.setup()
        return self._cities.get(code)

    def _unknown_city(self, code: object) -> EsscError:
        if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
            return InvalidInput("a city code is 6 digits (GB/T 2260)", field="city", rule="format")
        for rec in self._records.values():
            if code in rec.cities and rec.status != "loaded":
                return PluginUnavailable(f"plugin {rec.name!r} serving city {code} is {rec.status}: {rec.reason}",
                                         city=code, plugin=rec.name)
        country = divisions.city(code)
        if country is not None:  # a city of the country without a plugin: not opened, nothing to call
            return CityNotOpened(f"no plugin serves city {code} ({country.name})", city=code)
        if code in divisions.ABOLISHED:
            return InvalidInput(divisions.abolished_hint(code), field="city", rule="abolished-division", city=code)
        hint = divisions.explain(code)
        if hint:
            return InvalidInput(hint, field="city", rule="not-a-city", city=code)
        return InvalidInput(f"no plugin serves city {code}, and GB/T 2260 has no division {code}", field="city",
                            rule="unknown-city", city=code)

    # -- loading -----------------------------------------------------------------------
    def adapter(self, city: str) -> CityAdapter:
        """The adapter serving ``city`` (loading its plugin on first use)."""
        bound = self._table.get(city) or self._resolve(city)
        return bound.adapter

    def offers(self, city: str, operation: str) -> bool:
        """Does ``city``'s plugin offer ``operation`` (declared in its manifest, so implemented)?
        False for an unknown city or a plugin that is not available (quarantined, blocked)."""
        try:
            bound = self._table.get(city) or self._resolve(city)
        except EsscError:
            return False
        return operation in bound.methods

    def load_all(self) -> list[PluginRecord]:
        """Import every enabled plugin now (e.g. to report the real state)."""
        self.setup()
        for record in list(self._records.values()):
            if record.status == "discovered":
                self._load(record)
        return self.plugins

    def plugin_rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per plugin, after loading all of them (``essc plugins --json``,
        ``GET /v1/adapters``): name, version, cities, status, reason, dialect,
        contract_version, module, origin, the hooks it implements and how it registers adapters."""
        rows: list[dict[str, Any]] = []
        for rec in self.load_all():
            m = rec.manifest or {}
            callers = self.pm.get_hookcallers(rec.module) if rec.module is not None else None
            rows.append({
                "name": rec.name,
                "version": rec.version,
                "cities": list(rec.cities),
                "status": rec.status,
                "reason": rec.reason,
                "dialect": m.get("dialect"),
                "contract_version": m.get("contract_version"),
                "module": rec.source.module,
                "origin": rec.source.origin,
                "hooks": sorted(h.name for h in callers or []),
                "registration": _registration(m),
            })
        return rows

    def _resolve(self, city: str) -> _Bound:
        self.setup()
        info = self._cities.get(city)
        if info is None:
            raise self._unknown_city(city)
        record = self._records[info.plugin]
        if record.status == "discovered":
            self._load(record)
        bound = self._table.get(city)
        if bound is None:
            raise PluginUnavailable(f"plugin {record.name!r} is {record.status}: {record.reason}", city=city,
                                    plugin=record.name)
        return bound

    def _load(self, record: PluginRecord) -> None:
        with self._lock:
            if record.status != "discovered":
                return
            try:
                staged = self._import_and_register(record)
            except _Quarantine as q:
                record.quarantine(str(q))
                if record.module is not None and self.pm.is_registered(record.module):
                    self.pm.unregister(record.module)
                for code in record.cities:
                    if self._cities.get(code) and self._cities[code].plugin == record.name:
                        del self._cities[code]
                self._notify_quarantine(record)
                return
            limit = (record.manifest or {}).get("concurrency", {}).get("max_in_flight")
            for code, bound in staged.items():
                bound.guard = self.resilience.guard(code, limit)
            self._table.update(staged)
            record.status, record.reason = "loaded", None

    def _default_adapter(self, record: PluginRecord, declared: Mapping[str, str]) -> CityAdapter:
        """The adapter a manifest's ``adapter`` names: derived from a dialect spec, or a class."""
        manifest = record.manifest or {}
        context = PluginContext.for_manifest(manifest, self.settings)
        if "spec" in declared:
            from .dialects import SpecError, dialect, load_spec

            name = declared["spec"]
            if name.endswith((".yaml", ".yml", ".json")):
                if record.source.directory is None:
                    raise _Quarantine(f"adapter spec {name!r}: the plugin has no folder to read it from")
                try:
                    spec = load_spec(record.source.directory / name)
                except SpecError as err:
                    raise _Quarantine(f"adapter spec: {err}") from None
            else:
                entry = dialect(name)
                if entry is None or entry.spec is None:
                    raise _Quarantine(f"adapter spec {name!r} is not an installed dialect spec (see essc dialects)")
                spec = entry.spec
            if spec.name != manifest.get("dialect"):
                raise _Quarantine(f"manifest dialect {manifest.get('dialect')!r} but its adapter spec is {spec.name!r}")
            from .dialects import SpecAdapter

            return SpecAdapter(context, spec)
        module_name, _, cls_name = declared["class"].partition(":")
        src = record.source
        if src.sys_path and src.sys_path not in sys.path:
            sys.path.append(src.sys_path)
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
            adapter = cls(context)
        except Exception as err:
            raise _Quarantine(f"adapter class {declared['class']}: {type(err).__name__}: {err}") from None
        if not isinstance(adapter, CityAdapter):
            raise _Quarantine(f"adapter class {declared['class']} is not a CityAdapter")
        return adapter

    def _import_and_register(self, record: PluginRecord) -> dict[str, _Bound]:
        src, manifest = record.source, record.manifest
        if manifest is None:  # pragma: no cover - only plugins with a valid manifest are loaded
            raise _Quarantine("no valid manifest")
        if "adapter" in manifest:  # default registration: no code of the plugin's own is needed
            declared_ops = set(manifest["capabilities"]["operations"])
            adapter = self._default_adapter(record, manifest["adapter"])
            missing = declared_ops - implemented_operations(adapter)
            if missing:
                raise _Quarantine(f"manifest declares {', '.join(sorted(missing))} but the "
                                  f"{'spec' if 'spec' in manifest['adapter'] else 'adapter'} does not carry it")
            if self.settings.trace:
                log.info("hook trace: %s registered by default (%s)", record.name, manifest["adapter"])
            return {c["code"]: _Bound(adapter, record.name, declared_ops, c["opened"]) for c in manifest["cities"]}
        if src.sys_path and src.sys_path not in sys.path:
            sys.path.append(src.sys_path)
        try:
            module = importlib.import_module(src.module)
        except Exception as err:  # any failure while importing quarantines, nothing else
            raise _Quarantine(f"import of {src.module} failed: {type(err).__name__}: {err}") from None
        record.module = module
        try:
            self.pm.register(module, name=record.name)
        except (pluggy.PluginValidationError, ValueError) as err:
            raise _Quarantine(f"hook validation failed: {err}") from None
        impls = [i for i in self.pm.hook.essc_register_adapters.get_hookimpls() if i.plugin is module]
        unknown = [h for h, _ in self._plugin_hooks(module) if not hasattr(hookspecs, h)]
        if unknown:
            raise _Quarantine(f"implements unknown hook(s) {', '.join(sorted(unknown))} (typo? see core/hookspecs.py)")
        if not impls:
            raise _Quarantine("implements no essc_register_adapters hook: it registers no adapter")
        declared = set(manifest["capabilities"]["operations"])
        opened = {c["code"]: c["opened"] for c in manifest["cities"]}
        staged: dict[str, _Bound] = {}

        def register(city: str, adapter: CityAdapter) -> None:
            if city not in opened:
                raise _Quarantine(f"registers city {city!r} that its manifest does not list")
            if city in staged:
                raise _Quarantine(f"registers city {city} twice")
            missing = declared - implemented_operations(adapter)
            if missing:
                raise _Quarantine(f"manifest declares {', '.join(sorted(missing))} but adapter "
                                  f"{type(adapter).__name__} does not implement it")
            staged[city] = _Bound(adapter, record.name, declared, opened[city])

        context = PluginContext.for_manifest(manifest, self.settings)
        kwargs = {"register": register, "context": context}
        for impl in impls:
            if self.settings.trace:
                log.info("hook trace: %s.essc_register_adapters(%s)", record.name, ", ".join(impl.argnames))
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except _Quarantine:
                raise
            except Exception as err:
                raise _Quarantine(f"essc_register_adapters raised {type(err).__name__}: {err}") from None
        if self.settings.trace:
            log.info("hook trace: %s registered %s", record.name,
                     ", ".join(f"{c}->{type(b.adapter).__name__}" for c, b in staged.items()))
        missing_cities = [c for c in opened if c not in staged]
        if missing_cities:
            raise _Quarantine(f"manifest lists city {missing_cities[0]} but the plugin registered no adapter for it")
        return staged

    @staticmethod
    def _plugin_hooks(module: object) -> list[tuple[str, object]]:
        return [(n, getattr(module, n)) for n in dir(module)
                if n.startswith("essc_") and callable(getattr(module, n))]

    def _notify_quarantine(self, record: PluginRecord) -> None:
        log.warning("plugin %s quarantined: %s", record.name, record.reason)
        self.pm.hook.essc_plugin_quarantined(name=record.name, reason=record.reason or "")

    def saturated(self, city: str) -> float | None:
        """Seconds to wait when the city's bulkhead is saturated right now (new work for it should
        be refused, not queued without bound: :meth:`CityGuard.saturated`), else None. Cheap: one
        dict lookup, no lock."""
        guard = self.resilience._guards.get(city)
        if guard is not None and guard.saturated():
            return BUSY_RETRY_AFTER_S
        return None

    def resilience_snapshot(self) -> dict[str, dict[str, Any]]:
        """Every loaded city's breaker and bulkhead: ``{city: {"breaker": "closed|open|half_open",
        "in_flight", "limit", "rejected", "rejected_by": {reason: n}, "opened", "failures",
        "retry_after"}}`` (see :meth:`essc.core.resilience.CityGuard.snapshot`)."""
        return self.resilience.snapshot()

    # -- dispatch ----------------------------------------------------------------------
    def call(self, city: str, operation: str, request: Payload) -> Payload:
        """Run one contract operation for ``city``: validate the request, call the
        adapter, validate its response. Raises only typed :class:`EsscError`."""
        bound = self._table.get(city) or self._resolve(city)
        pair = self._validators.get(operation)
        if pair is None:
            raise InvalidInput(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}",
                               field="operation", rule="enum")
        req_v, resp_v = pair
        if not req_v.is_valid(request):
            p = req_v.first_problem(request)
            raise InvalidInput(f"request {p}", field=p.path if p else "$", rule=p.rule if p else "?", city=city,
                               operation=operation)
        if request["aab301"] != city:
            raise InvalidInput("aab301 in the request differs from the city called", field="$.aab301",
                               rule="same-city", city=city, operation=operation)
        if "aac002" in request:
            validate_id_number(request["aac002"])
        problem = request_problem(operation, request)
        if problem is not None:
            raise problem.with_context(city=city, operation=operation)
        if not bound.opened and operation != "health":
            raise CityNotOpened(city=city, operation=operation, plugin=bound.plugin)
        method = bound.methods.get(operation)
        if method is None:
            raise PluginUnavailable(f"plugin {bound.plugin!r} does not offer {operation}", city=city,
                                    operation=operation, plugin=bound.plugin)
        guard = bound.guard
        try:
            probe = guard.enter()  # UpstreamUnavailable bulkhead_full / circuit_open: the city is not called
        except EsscError as err:
            raise err.with_context(operation=operation, plugin=bound.plugin) from None
        started = time.perf_counter()
        error: EsscError | None = None
        try:
            response: Payload = method(request)
        except EsscError as err:
            error = err.with_context(city=city, operation=operation, plugin=bound.plugin)
            raise
        except Exception as err:
            at = raised_at(err, self._records[bound.plugin].source.directory)
            error = ContractViolation(f"adapter raised {type(err).__name__} instead of a typed error"
                                      + (f" at {at['file']}:{at['line']} in {at['function']}" if at else ""),
                                      city=city, hook=operation, path="$", rule="typed-errors", plugin=bound.plugin,
                                      **(at or {}))
            raise error from err
        else:
            if not resp_v.is_valid(response):
                p = resp_v.first_problem(response)
                error = ContractViolation(f"response {p}", city=city, hook=operation,
                                          path=problem_path(p) if p else "$", rule=p.rule if p else "?",
                                          plugin=bound.plugin, schema=resp_v.name)
                raise error
            schema = self._renamed.get(operation)
            if schema is not None:
                try:
                    response = normalise(schema, response)
                except EsscError as err:
                    error = err.with_context(city=city, hook=operation, plugin=bound.plugin)
                    raise
            return response
        finally:
            guard.leave(probe, error)
            if self._observe.get_hookimpls():  # observers may be registered at any time
                self._observe(city=city, operation=operation, plugin=bound.plugin,
                              elapsed_s=time.perf_counter() - started, error=error)


def _registration(manifest: Mapping[str, Any]) -> str:
    """How the plugin's adapters are registered: ``spec:<dialect or file>``, ``class:<module:Class>``
    (both by default, from the manifest) or ``hook`` (essc_register_adapters)."""
    declared = manifest.get("adapter") or {}
    for kind in ("spec", "class"):
        if kind in declared:
            return f"{kind}:{declared[kind]}"
    return "hook"


class _Quarantine(Exception):
    """Internal: raised while loading a plugin to quarantine it with a reason."""
