"""The HTTP helper every city plugin shares.

:class:`CityHttpClient` gives: one pooled ``requests.Session`` per plugin (``trust_env``
off: no proxy lookups, ~0.4 ms saved per call); connect/read timeouts bounded by the
plugin's total budget; a retry policy (idempotent calls only, on connection errors and
502/503/504, with jittered backoff, never past the budget); mapping of every transport
failure to :class:`~essc.core.errors.UpstreamUnavailable`; and logs that carry method,
path, status and timing - never bodies, which hold personal data.
"""
from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

from .errors import UpstreamUnavailable
from .masking import get_logger
from .timeouts import Timeouts

__all__ = ["CityHttpClient", "Timeouts", "parse_json", "parse_xml", "parse_retry_after"]

log = get_logger("essc.http")

RETRY_STATUSES = frozenset({502, 503, 504})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` if absent or odd."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class CityHttpClient:
    """HTTP to one city system (or one provincial platform)."""

    def __init__(self, base_url: str, *, timeouts: Timeouts | None = None, plugin: str = "?",
                 session: requests.Session | None = None, backoff_s: float = 0.05,
                 rng: random.Random | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.plugin = plugin
        self.backoff_s = backoff_s
        self._rng = rng or random.Random()
        if session is None:
            session = requests.Session()
            session.trust_env = False
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session

    def request(self, method: str, path: str, *, city: str | None = None, operation: str | None = None,
                idempotent: bool = True, readable_statuses: frozenset[int] | set[int] = frozenset(),
                **kwargs: Any) -> requests.Response:
        """Send one request; return any response below 500 except 429 (business errors
        are the adapter's to read), and any status of ``readable_statuses`` - answers whose
        body the dialect reads (a SOAP 1.1 fault comes with HTTP 500). Raise
        :class:`UpstreamUnavailable` otherwise."""
        url = self.base_url + path
        t = self.timeouts
        deadline = time.monotonic() + t.total_s
        ctx = {"city": city, "operation": operation, "plugin": self.plugin}
        attempt = 0
        cause: BaseException | None  # the transport exception behind a failed attempt, if any
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamUnavailable(f"no answer within the plugin's {t.total_s:g}s budget", reason="timeout",
                                          **ctx)
            timeout = (min(t.connect_s, remaining), min(t.read_s, remaining))
            started = time.perf_counter()
            try:
                resp = self.session.request(method, url, timeout=timeout, **kwargs)
            except requests.Timeout as exc:
                err = UpstreamUnavailable(f"no answer within {timeout[1]:g}s", reason="timeout", **ctx)
                cause = exc
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                err = UpstreamUnavailable(f"connection failed ({type(exc).__name__})", reason="connection", **ctx)
                cause = exc
            else:
                ms = (time.perf_counter() - started) * 1000
                log.debug("%s %s %s city=%s op=%s -> %s in %.1fms (attempt %d)", self.plugin, method, path, city,
                          operation, resp.status_code, ms, attempt)
                if resp.status_code in readable_statuses:
                    return resp
                if resp.status_code == 429:
                    raise UpstreamUnavailable("the city is rate limiting (HTTP 429)", reason="rate_limited",
                                              retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                                              http_status=429, **ctx)
                if resp.status_code < 500:
                    return resp
                err = UpstreamUnavailable(f"the city answered HTTP {resp.status_code}", reason="http_5xx",
                                          http_status=resp.status_code, **ctx)
                cause = None
                if resp.status_code not in RETRY_STATUSES:
                    raise err
            log.info("%s %s %s city=%s op=%s failed: %s (attempt %d)", self.plugin, method, path, city, operation,
                     err.detail, attempt)
            pause = self.backoff_s * (2 ** (attempt - 1)) * (0.5 + self._rng.random())
            retry = (idempotent and attempt <= t.retries and err.reason != "timeout"
                     and deadline - time.monotonic() > pause + 0.05)
            if not retry:
                if cause is not None:
                    raise err from cause
                raise err
            time.sleep(pause)


def parse_json(resp: requests.Response, *, city: str | None = None, operation: str | None = None) -> Any:
    """The JSON body, or :class:`UpstreamUnavailable` (``malformed_response``)."""
    try:
        return resp.json()
    except ValueError as exc:
        raise UpstreamUnavailable(f"the city's answer is not valid JSON (HTTP {resp.status_code})",
                                  reason="malformed_response", city=city, operation=operation) from exc


def parse_xml(resp: requests.Response, *, city: str | None = None, operation: str | None = None) -> Element:
    """The XML body as an ElementTree element (parsed with defusedxml), or
    :class:`UpstreamUnavailable` (``malformed_response``)."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import ElementTree

    try:
        return ElementTree.fromstring(resp.content)
    except (ParseError, ValueError) as exc:
        raise UpstreamUnavailable(f"the city's answer is not well-formed XML (HTTP {resp.status_code})",
                                  reason="malformed_response", city=city, operation=operation) from exc
