"""Configuration of the activation service: embedded defaults, servers by URL.

Defaults need no server: SQLite files under ``data_dir`` for the activations and for the
huey queue. ``database_url`` = ``postgresql+psycopg://...`` and ``queue_url`` =
``redis://...`` switch to the scale-out path. Environment: ``ESSC_DATA_DIR``,
``ESSC_DATABASE_URL``, ``ESSC_QUEUE_URL``, ``ESSC_SECRET_KEY``, ``ESSC_CHANNELS_FILE``,
``ESSC_OIDC_ISSUER``, ``ESSC_OIDC_SIGNING_KEY``, and
``ESSC_<NUMBER>`` for the numeric settings below.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ServiceConfig:
    """Numbers below can also be set as ``ESSC_<NAME>`` (e.g. ``ESSC_LEASE_S=20``)."""

    data_dir: Path = Path(".essc")
    database_url: str | None = None
    queue_url: str | None = None
    #: name of the huey queue (lets several deployments share one Redis)
    queue_name: str = "essc"
    secret_key: str | None = None
    channels_file: Path | None = None
    #: the console's operators (essc.service.pages.operators; None: the packaged demo operator)
    operators_file: Path | None = None
    #: where `essc contract --report DIR` writes: the console shows its tiers and links its page
    contract_report_dir: Path | None = None
    #: identity checks a citizen may fail in a city (every channel counted) before being locked
    #: out of that city's checks for identity_lockout_s; the activation then ends as identity_failed
    max_identity_attempts: int = 3
    identity_lockout_s: float = 1800.0
    #: retry policy of pending activations: base * 2**n with jitter, at most cap; a city's
    #: retry_after wins when it is given; activations older than max_age end as expired
    retry_base_s: float = 1.0
    retry_cap_s: float = 300.0
    max_age_s: float = 2 * 86400.0
    #: connections each process keeps to a database server (PostgreSQL; SQLite has none): a
    #: transaction beyond them waits for one. Plan the server's max_connections for processes x this
    #: (each statement holds one for ~0.5 ms: 10 carry thousands of statements a second)
    database_pool_size: int = 10
    #: a worker holds an activation this long; longer than the slowest flow (3 city calls)
    lease_s: float = 60.0
    #: how often a worker looks for pending activations whose queue task was lost (crash)
    sweep_interval_s: float = 2.0
    #: queue workers started by `essc serve` / `essc worker` (they only hand work to the flow pool)
    workers: int = 2
    #: slow cities (docs: README "Slow cities"): the API waits at most answer_budget_s for a city
    #: step, then answers 202 and the step goes on in the flow pool (0 = run steps in the caller's
    #: thread, as tests and scripts do); flow_threads threads wait on city sockets; beyond
    #: max_in_flight steps new work gets 503 + Retry-After; GET ?wait= long-polls up to max_wait_s
    answer_budget_s: float = 1.5
    flow_threads: int = 256
    max_in_flight: int = 2000
    max_wait_s: float = 30.0
    #: waitress threads of `essc serve` (each answer holds one at most answer_budget_s, a
    #: long-poll at most max_wait_s)
    api_threads: int = 128
    #: API processes of `essc serve` sharing its port and the database (0: one per core, at most 4;
    #: 1 while the mock city systems run in-process); see essc.service.processes
    api_processes: int = 0
    #: with several API processes, hold each to one CPU of those the service may run on (spread
    #: over them; a restarted process keeps its CPU): a Python process runs Python on one core at a
    #: time, and its threads handing the interpreter lock and their work to each other across cores
    #: cost CPU (essc.service.processes.pin_cpu). "auto": when the processes are at least as many
    #: as those CPUs (the service has the machine, or its CPU set, to itself); "on": always; "off":
    #: the kernel moves them
    api_pin_cpus: str = "auto"
    #: open connections `essc serve` keeps (waitress's default of 100 makes the 101st channel wait
    #: in the accept queue)
    api_connections: int = 2000
    #: the e-SSC in use (docs/using-the-essc.md): a citizen's dynamic code is valid qrcode_ttl_s
    #: (single use; a new code replaces the binding's unused one); a portal's scan-login code
    #: login_ttl_s; an OpenID Connect authorization code oidc_code_ttl_s, its access token
    #: oidc_token_ttl_s (userinfo)
    qrcode_ttl_s: float = 60.0
    login_ttl_s: float = 120.0
    oidc_code_ttl_s: float = 60.0
    oidc_token_ttl_s: float = 600.0
    #: medical settlement (service/settlements.py): a pre-settlement not confirmed within
    #: settlement_hold_s is reversed; a pre-settlement or confirmation whose city call gets no
    #: answer (retried with the backoff above) for settlement_leg_deadline_s is reversed
    settlement_hold_s: float = 1800.0
    settlement_leg_deadline_s: float = 120.0
    #: OpenID Connect issuer URL (default: the URL the request came to) and the ID-token signing
    #: key (a PEM file; default: an RSA key generated into data_dir/oidc-signing-key.pem)
    oidc_issuer: str | None = None
    oidc_signing_key: Path | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ServiceConfig:
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        if env.get("ESSC_DATA_DIR"):
            data["data_dir"] = Path(env["ESSC_DATA_DIR"])
        for key, name in (("database_url", "ESSC_DATABASE_URL"), ("queue_url", "ESSC_QUEUE_URL"),
                          ("secret_key", "ESSC_SECRET_KEY"), ("queue_name", "ESSC_QUEUE_NAME")):
            if env.get(name):
                data[key] = env[name]
        for key, name in (("channels_file", "ESSC_CHANNELS_FILE"), ("operators_file", "ESSC_OPERATORS_FILE"),
                          ("contract_report_dir", "ESSC_CONTRACT_REPORT_DIR")):
            if env.get(name):
                data[key] = Path(env[name])
        if env.get("ESSC_OIDC_ISSUER"):
            data["oidc_issuer"] = env["ESSC_OIDC_ISSUER"]
        if env.get("ESSC_OIDC_SIGNING_KEY"):
            data["oidc_signing_key"] = Path(env["ESSC_OIDC_SIGNING_KEY"])
        for key, cast in _NUMBERS.items():
            name = "ESSC_" + key.upper()
            if env.get(name):
                data[key] = number(env[name], name, cast)
        if env.get("ESSC_API_PIN_CPUS", "").strip():
            data["api_pin_cpus"] = pin_setting(env["ESSC_API_PIN_CPUS"], "ESSC_API_PIN_CPUS")
        data.update(overrides)
        return cls(**data)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'essc.sqlite3').resolve()}"

    def resolved_queue_url(self) -> str:
        if self.queue_url:
            return self.queue_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'queue.sqlite3').resolve()}"

    def resolved_secret(self) -> str:
        """The secret sealing personal data at rest; generated once into data_dir if unset."""
        if self.secret_key:
            return self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        self.secret_key = path.read_text().strip()
        return self.secret_key


_NUMBERS = {"max_identity_attempts": int, "identity_lockout_s": float, "retry_base_s": float, "retry_cap_s": float,
            "answer_budget_s": float, "flow_threads": int, "max_in_flight": int, "max_wait_s": float,
            "api_threads": int, "api_processes": int, "api_connections": int, "max_age_s": float, "lease_s": float,
            "sweep_interval_s": float, "workers": int, "database_pool_size": int, "qrcode_ttl_s": float,
            "login_ttl_s": float, "oidc_code_ttl_s": float, "oidc_token_ttl_s": float,
            "settlement_hold_s": float, "settlement_leg_deadline_s": float}
_ON, _OFF = ("on", "1", "true", "yes"), ("off", "0", "false", "no")


def number(value: str, name: str, cast: type[int] | type[float]) -> int | float:
    """``value`` as ``cast`` (int or float); else a ValueError naming the variable."""
    try:
        return cast(value)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ValueError(f"{name}={value!r}: expected {kind}") from None


def pin_setting(value: str, name: str) -> str:
    """``auto``, ``on`` (or 1/true/yes) or ``off`` (or 0/false/no), any case; anything else is
    refused, naming the variable."""
    word = value.strip().lower()
    if word == "auto":
        return word
    if word in _ON or word in _OFF:
        return "on" if word in _ON else "off"
    raise ValueError(f"{name}={value!r}: expected auto, on ({', '.join(_ON[1:])}) or off ({', '.join(_OFF[1:])})")
