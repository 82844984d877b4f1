"""Settings of a registry, and the per-plugin context handed to plugins.

Sources, later wins: defaults -> a TOML file (``ESSC_CONFIG`` or ``config_file``) ->
environment variables -> keyword arguments. The TOML file looks like::

    [plugins]
    allow = ["zhejiang", "fujian"]   # omit to load all; [] loads none
    block = ["sichuan"]
    dirs  = ["/srv/essc/extra-plugins"]

    [endpoints]
    default  = "http://127.0.0.1:8765"   # the mock city systems
    zhejiang = "https://card.zj.example/api"

    [credentials.zhejiang]
    token = "..."

    [resilience]                          # per-city bulkhead and circuit breaker (core/resilience.py)
    bulkhead_max_in_flight = 32           # ESSC_BULKHEAD_MAX_IN_FLIGHT, when a manifest sets no concurrency
    breaker_failures = 5                  # ESSC_BREAKER_FAILURES (0: no breaker)
"""
from __future__ import annotations

import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .masking import get_logger
from .timeouts import Timeouts

if TYPE_CHECKING:
    from .http import CityHttpClient

__all__ = ["Settings", "PluginContext", "Timeouts", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "http://127.0.0.1:8765"


#: environment variable -> (Settings field, type) of the per-city resilience knobs (core/resilience.py);
#: a TOML file sets the same fields in its ``[resilience]`` table.
RESILIENCE_ENV: dict[str, tuple[str, type]] = {
    "ESSC_BULKHEAD_MAX_IN_FLIGHT": ("bulkhead_max_in_flight", int),
    "ESSC_BULKHEAD_WAIT_S": ("bulkhead_wait_s", float),
    "ESSC_BREAKER_FAILURES": ("breaker_failures", int),
    "ESSC_BREAKER_WINDOW_S": ("breaker_window_s", float),
    "ESSC_BREAKER_COOLDOWN_S": ("breaker_cooldown_s", float),
    "ESSC_BREAKER_COOLDOWN_MAX_S": ("breaker_cooldown_max_s", float),
    "ESSC_RETRY_BACKOFF_S": ("retry_backoff_s", float),
}


def _number(name: str, value: object, kind: type) -> float:
    """A resilience knob: a finite number >= 0 (a whole one for ``int``), or ValueError naming ``name``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (kind is int and not number.is_integer()):
        raise ValueError(f"{name}: expected {'a whole number' if kind is int else 'a number'} >= 0, got {value!r}")
    return int(number) if kind is int else number


def _csv(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(x.strip() for x in value.split(",") if x.strip())


@dataclass
class Settings:
    """What a :class:`~essc.core.registry.Registry` needs to know."""

    base_url: str = DEFAULT_BASE_URL
    endpoints: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    #: plugin names to load; ``None`` = all discovered (``ESSC_LOAD_PLUGINS``)
    allow: frozenset[str] | None = None
    #: plugin names never to load (``ESSC_DISABLED_PLUGINS``)
    block: frozenset[str] = frozenset()
    #: extra folders holding plugin packages (``ESSC_PLUGIN_DIRS``)
    plugin_dirs: tuple[Path, ...] = ()
    #: also discover plugins from the in-repo ``essc.plugins`` package
    builtin_plugins: bool = True
    #: also discover installed plugins through entry points
    entry_points: bool = True
    #: log every hook call (``ESSC_TRACE_PLUGINS=1``)
    trace: bool = False
    #: most calls to one city in flight at once, when its manifest sets no ``concurrency.max_in_flight``
    #: (``ESSC_BULKHEAD_MAX_IN_FLIGHT``)
    bulkhead_max_in_flight: int = 32
    #: seconds a call may wait for room in a full bulkhead; 0 fails fast (``ESSC_BULKHEAD_WAIT_S``)
    bulkhead_wait_s: float = 0.25
    #: processes sharing each city's bulkhead (``essc serve --processes``): each one guards
    #: ``ceil(limit / bulkhead_share)`` slots, so the city never sees more than its limit in all
    bulkhead_share: int = 1
    #: the other processes' calls in flight to each city, when they share the bulkheads through
    #: memory (``essc.core.resilience.Peers``; set by ``essc serve --processes``, never from a file)
    bulkhead_peers: Any = None
    #: consecutive upstream failures of a city that open its breaker; 0 disables it (``ESSC_BREAKER_FAILURES``)
    breaker_failures: int = 5
    #: ... counted when they come within this many seconds of the first one (``ESSC_BREAKER_WINDOW_S``)
    breaker_window_s: float = 60.0
    #: seconds an open breaker fails calls fast before it lets one probe through (``ESSC_BREAKER_COOLDOWN_S``)
    breaker_cooldown_s: float = 10.0
    #: the cool-down doubles after each failed probe, up to this (``ESSC_BREAKER_COOLDOWN_MAX_S``)
    breaker_cooldown_max_s: float = 300.0
    #: pause before a city call is tried again (idempotent calls, within the manifest's ``retries``
    #: and budget): this, doubling per attempt, with jitter x0.5-1.5 (``ESSC_RETRY_BACKOFF_S``)
    retry_backoff_s: float = 0.05

    @classmethod
    def from_env(cls, config_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                 **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        path = config_file or env.get("ESSC_CONFIG")
        if path:
            with open(path, "rb") as fh:
                cfg = tomllib.load(fh)
            plugins = cfg.get("plugins", {})
            endpoints = dict(cfg.get("endpoints", {}))
            if "default" in endpoints:
                data["base_url"] = endpoints.pop("default")
            data["endpoints"] = endpoints
            data["credentials"] = {k: dict(v) for k, v in cfg.get("credentials", {}).items()}
            if "allow" in plugins:
                data["allow"] = frozenset(plugins["allow"])
            data["block"] = frozenset(plugins.get("block", ()))
            data["plugin_dirs"] = tuple(Path(p) for p in plugins.get("dirs", ()))
            fields = dict(RESILIENCE_ENV.values())
            for key, value in cfg.get("resilience", {}).items():
                if key not in fields:
                    raise ValueError(f"[resilience] {key}: unknown setting; expected one of {sorted(fields)}")
                data[key] = _number(f"[resilience] {key}", value, fields[key])
        if env.get("ESSC_CITY_BASE_URL"):
            data["base_url"] = env["ESSC_CITY_BASE_URL"]
        if "ESSC_LOAD_PLUGINS" in env:
            data["allow"] = _csv(env["ESSC_LOAD_PLUGINS"])
        if env.get("ESSC_DISABLED_PLUGINS"):
            data["block"] = frozenset(data.get("block", frozenset()) | _csv(env["ESSC_DISABLED_PLUGINS"]))
        if env.get("ESSC_PLUGIN_DIRS"):
            data["plugin_dirs"] = tuple(data.get("plugin_dirs", ())) + tuple(
                Path(p) for p in env["ESSC_PLUGIN_DIRS"].split(os.pathsep) if p)
        if env.get("ESSC_TRACE_PLUGINS", "") not in ("", "0", "false"):
            data["trace"] = True
        for var, (key, kind) in RESILIENCE_ENV.items():
            if env.get(var):
                data[key] = _number(var, env[var], kind)
        data.update(overrides)
        return cls(**data)

    def endpoint(self, plugin: str) -> str:
        return self.endpoints.get(plugin, self.base_url).rstrip("/")


@dataclass
class PluginContext:
    """Handed to ``essc_register_adapters``: everything one plugin needs to build adapters."""

    name: str
    version: str
    cities: tuple[str, ...]
    base_url: str
    credentials: Mapping[str, str]
    timeouts: Timeouts
    logger: logging.Logger
    #: ``Settings.retry_backoff_s``: the HTTP client's pause before a retry
    retry_backoff_s: float = 0.05

    def credential(self, key: str, default: str | None = None) -> str:
        """A credential from the settings, else ``default`` (e.g. the mock's demo value)."""
        value = self.credentials.get(key, default)
        if value is None:
            raise KeyError(f"plugin {self.name!r} needs credential {key!r}: set [credentials.{self.name}] {key}")
        return value

    def http_client(self, **kwargs: Any) -> CityHttpClient:
        """A :class:`~essc.core.http.CityHttpClient` for this plugin's endpoint and timeouts."""
        from .http import CityHttpClient  # lazy: requests is imported only by a plugin that calls HTTP

        kwargs.setdefault("backoff_s", self.retry_backoff_s)
        return CityHttpClient(self.base_url, timeouts=self.timeouts, plugin=self.name, **kwargs)

    @classmethod
    def for_manifest(cls, manifest: Mapping[str, Any], settings: Settings) -> PluginContext:
        name = manifest["name"]
        t = manifest.get("timeouts", {})
        return cls(
            name=name,
            version=manifest["version"],
            cities=tuple(c["code"] for c in manifest["cities"]),
            base_url=settings.endpoint(name),
            credentials=dict(settings.credentials.get(name, {})),
            timeouts=Timeouts(t.get("connect_s", 2.0), t.get("read_s", 5.0), t.get("total_s", 8.0),
                              t.get("retries", 1)),
            logger=get_logger(f"essc.plugins.{name}"),
            retry_backoff_s=settings.retry_backoff_s,
        )
