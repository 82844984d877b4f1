"""The HTTP helper every city plugin shares.

:class:`CityHttpClient` gives: one pooled ``requests.Session`` per plugin (``trust_env``
off: no proxy lookups, ~0.4 ms saved per call); connect/read timeouts bounded by the
plugin's total budget; a retry policy (idempotent calls only, on connection errors and
502/503/504, with jittered backoff, never past the budget); mapping of every transport
failure to :class:`~essc.core.errors.UpstreamUnavailable`; and logs that carry method,
path, status and timing - never bodies, which hold personal data.

The lean path (issue 10, "slow cities"). ``Session.request`` spends much of a call's client
CPU on generality a plugin's call does not use (merging session settings through
``to_key_val_list`` and its typing-Protocol checks, environment and proxy lookups, cookie jar
copies, hooks, redirect bookkeeping). For a call it can prepare itself,
:meth:`CityHttpClient.request` builds the ``requests.PreparedRequest`` directly, as
``Session.prepare_request`` would: the method upper-cased; the URL as ``prepare_url`` makes it
(worked out once per URL without query, kept in a small cache) with ``params=`` encoded as
requests encodes them; the headers in the same order (the session's, then the caller's - a
name set again keeps its place, a ``None`` value drops it - then ``Cookie``,
``Content-Length``, ``Content-Type``), each checked by requests' header check; the body
(``json=`` with requests' ``json.dumps(..., allow_nan=False)``, ASCII-escaped, UTF-8; a
``data=`` dict form-encoded; bytes or text as given). It hands it to the session's adapter
with the keyword arguments ``Session.send`` passes, then does what ``Session.send`` does:
cookies the answer sets go to ``self.session.cookies`` (and are sent back, in a ``Cookie``
header requests' cookie jar makes), a redirect is followed by ``Session.resolve_redirects``
as ``Session.request`` follows it (303, 302 and 301-after-POST become a GET without body,
307/308 re-send the request to the new place: the first URL gets it once, as before), the
body is read (one ``read``, same bytes and exceptions as ``Response.content``). So the bytes
on the wire are the same, ``responses`` mocks and cassette recording (both patch
``HTTPAdapter.send``) see every request, and the plugin gets a ``requests.Response`` as
before. The session's adapter, :class:`LeanHTTPAdapter`, keeps the connection pool of an
origin instead of looking it up per call and skips the cookie extraction of
``build_response`` when the answer sets no cookie.

The call takes the full ``self.session.request(...)`` instead when it has a keyword other
than ``json``, ``data``, ``headers``, ``params`` (``allow_redirects``, ``auth``, ``cookies``,
``files``, ``stream``...); a ``data`` other than bytes, text or a dict; ``headers`` or
``params`` other than a dict, or a header name other than text; a path not starting with
``/``, or a URL with a query, fragment or credentials of its own; or when the session is not
the one this client built (a test's or tooling's stand-in: ``tooling/bench.py``) or was
changed in a way the lean path does not reproduce (auth, params, proxies, response hooks,
``trust_env``, ``verify``, ``cert``, ``stream``, ``request``/``send``/``prepare_request``
replaced). Headers a plugin adds to ``self.session.headers`` are sent on the lean path.

Client CPU per call against ``essc mock`` in its own process (``bench/http_cost.py``, the two
ways in alternating rounds, best round, on a shared 2-core machine at load 3-4):
``Session.request`` ~330-410 us (POST ``json=``, POST ``data=``), ~305-375 us (GET
``params=``); the lean path ~215-250 us and ~195-225 us: 0.59-0.67 of it. urllib3 alone (the
floor through requests' adapter) is ~150-170 us of that. With the keep-alive transport under the
adapter (:mod:`essc.core.transport`: llhttp parses the answers instead of ``http.client`` and the
``email`` package), on a slower machine: the lean path 185-190 us where it took 276-296 us through
urllib3 (``Session.request`` 430-490 us).
"""
from __future__ import annotations

import functools
import random
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from requests.compat import json as _requests_json  # type: ignore[attr-defined]  # what encodes json=
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_auth_from_url, get_encoding_from_headers
from urllib3 import BaseHTTPResponse, HTTPHeaderDict
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

from .errors import UpstreamUnavailable
from .masking import get_logger
from .timeouts import Timeouts
from .transport import KeepAlivePool

__all__ = ["CityHttpClient", "LeanHTTPAdapter", "Timeouts", "parse_json", "parse_xml", "parse_retry_after"]

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


class LeanHTTPAdapter(HTTPAdapter):
    """``HTTPAdapter`` with cheaper versions of the hooks requests leaves to subclasses, for
    the common case (no proxy, default TLS verification, no client certificate; any other
    case is the base class's): the connection pool of a ``scheme://host:port`` is looked up
    once, not per call (no proxy to select, no pool key to build: three URL parses fewer),
    and kept while it is open; the calls go through a :class:`~essc.core.transport.KeepAlivePool`
    over urllib3's pool of the origin (llhttp parses the answers; urllib3 takes what it does not);
    ``build_response`` skips the cookie extraction (a cookie-policy walk over the answer's
    headers) when the answer sets no cookie. ``send`` is the base class's, so whatever
    patches ``HTTPAdapter.send`` (``responses``, cassette recording) still sees every request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ``scheme://host:port`` -> (the pool manager, the keep-alive pool over the one it gave)
        self._pools: dict[str, tuple[Any, KeepAlivePool]] = {}
        #: idle connections kept per origin: the adapter's ``pool_maxsize``, as urllib3 keeps
        self._idle_max: int = vars(self).get("_pool_maxsize", DEFAULT_POOLSIZE)

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: Any,
                                        proxies: Mapping[str, str] | None = None, cert: Any = None) -> Any:
        url = request.url
        if proxies or verify is not True or cert is not None or not isinstance(url, str):
            return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        start = url.find("//") + 2
        end = url.find("/", start)
        origin = url[:end] if start > 1 and end > 0 else ""
        if not origin or "?" in origin or "#" in origin:
            return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        known = self._pools.get(origin)
        # the pool the manager gave for this origin, while it is open (a pool the manager drops,
        # or clear() closes, has no connection queue any more) and the manager is the same
        if known is not None:
            if known[0] is self.poolmanager and known[1].fallback.pool is not None and not known[1].closed:
                return known[1]
            known[1].close()
        pool = KeepAlivePool(super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert),
                             maxsize=self._idle_max)
        if len(self._pools) >= 64:
            self._close_pools()
        self._pools[origin] = (self.poolmanager, pool)
        return pool

    def _close_pools(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for _, pool in pools:
            pool.close()

    def close(self) -> None:
        self._close_pools()
        super().close()

    def request_url(self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        if proxies:
            return super().request_url(request, proxies)
        return request.path_url  # no proxy: the path and query, as the base class sends them

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        headers = getattr(resp, "headers", None)
        if not isinstance(headers, HTTPHeaderDict) or "set-cookie" in headers or "set-cookie2" in headers:
            return super().build_response(req, resp)
        response = requests.Response()  # as HTTPAdapter.build_response, with nothing to extract
        response.status_code = getattr(resp, "status", None)  # type: ignore[assignment]
        response.headers = CaseInsensitiveDict(headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url  # type: ignore[assignment]
        response.request = req
        response.connection = self
        return response


#: keyword arguments of :meth:`CityHttpClient.request` the lean path prepares itself
LEAN_KWARGS = frozenset({"json", "data", "headers", "params"})
_SESSION_METHODS = {name: getattr(requests.Session, name) for name in ("request", "send", "prepare_request")}
_BASESTRING = (str, bytes)


@functools.lru_cache(maxsize=256)
def _base_url(url: str) -> tuple[str, bool]:
    """``url`` (no query) as ``PreparedRequest.prepare_url`` makes it, and whether the lean path
    may take it: no query or fragment of its own (``params`` are appended as requests would
    append them) and no credentials (``user:password@``: requests would send basic auth)."""
    prep = requests.PreparedRequest()
    prep.prepare_url(url, {})
    prepared = str(prep.url)
    return prepared, "?" not in prepared and "#" not in prepared and not any(get_auth_from_url(prepared))


def _form(data: dict[Any, Any]) -> str:
    """A ``data=`` or ``params=`` dict encoded as requests encodes it
    (``RequestEncodingMixin._encode_params``: ``None`` values left out, sequences repeated)."""
    result = []
    for k, vs in data.items():
        if isinstance(vs, _BASESTRING) or not hasattr(vs, "__iter__"):
            vs = [vs]
        for v in vs:
            if v is not None:
                result.append((k.encode("utf-8") if isinstance(k, str) else k,
                               v.encode("utf-8") if isinstance(v, str) else v))
    return urlencode(result, doseq=True)


def _read_body(resp: requests.Response) -> None:
    """Read the body now, as a non-streamed ``Session.request`` does (``resp.content``): the same
    bytes (decoded by urllib3) and the same exceptions (``Response.iter_content``'s mapping), in
    one ``read`` instead of a generator over 10 KiB chunks (~9 us less per call)."""
    raw = resp.raw
    unread = resp._content is False  # type: ignore[comparison-overlap]  # requests' "not read yet"
    if not isinstance(raw, BaseHTTPResponse) or resp.status_code == 0 or not unread:
        resp.content  # noqa: B018 - not urllib3's answer: requests reads it
        return
    try:
        data = raw.read(decode_content=True)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except urllib3_exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    resp._content = data or b""
    resp._content_consumed = True  # type: ignore[attr-defined]


def _lean_session(session: requests.Session) -> bool:
    """The session still has requests' defaults the lean path relies on (what
    ``Session.request`` would merge in is nothing but its headers and cookies)."""
    own = vars(session)
    return (session.auth is None and not session.params and not session.proxies and not session.trust_env
            and session.verify is True and session.cert is None and not session.stream
            and not session.hooks.get("response")
            and all(name not in own and getattr(type(session), name) is method
                    for name, method in _SESSION_METHODS.items()))


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
            adapter = LeanHTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._own_session: requests.Session | None = session
        else:
            self._own_session = None
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
                resp = self._send(method, path, url, timeout, kwargs)
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


    def _send(self, method: str, path: str, url: str, timeout: tuple[float, float],
              kwargs: dict[str, Any]) -> requests.Response:
        """One attempt: the lean path when the call allows it, ``Session.request`` otherwise."""
        session = self.session
        if (session is self._own_session and kwargs.keys() <= LEAN_KWARGS and type(method) is str
                and path.startswith("/") and _lean_session(session)):
            prep = self._prepare(session, method, url, **kwargs)
            if prep is not None:
                return self._send_prepared(session, prep, timeout)
        return session.request(method, url, timeout=timeout, **kwargs)

    @staticmethod
    def _prepare(session: requests.Session, method: str, url: str, json: Any = None, data: Any = None,
                 headers: Any = None, params: Any = None) -> requests.PreparedRequest | None:
        """What ``Session.prepare_request`` makes of the call, or ``None`` (not a simple call)."""
        if data is not None and type(data) not in (bytes, str, dict):
            return None
        if (headers is not None and type(headers) is not dict) or (params is not None and type(params) is not dict):
            return None
        prepared, plain = _base_url(url)
        if not plain:
            return None
        if params:
            # prepare_url appends the encoded params as the query and requotes the whole URL;
            # urlencode's output holds only characters requote_uri leaves as they are
            query = _form(params)
            if query:
                prepared = prepared + "?" + query
        prep = requests.PreparedRequest()
        prep.method = method.upper()
        prep.url = prepared
        # headers: the session's, then the caller's (a name set again keeps its place, takes the
        # new spelling), a None value drops the header - as merge_setting + prepare_headers
        merged: dict[str, tuple[str, Any]] = {}
        for source in (session.headers, headers or {}):
            for name, value in source.items():
                if type(name) is not str:
                    return None
                merged[name.lower()] = (name, value)
        prepared_headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict()
        for name, value in merged.values():
            if value is not None:
                check_header_validity((name, value))
                prepared_headers[name] = value
        prep.headers = prepared_headers
        # cookies: the session's jar copied, as prepare_request does; none (the usual case): no
        # Cookie header, and the empty jar is made only if a redirect needs it (_send_prepared)
        if session.cookies:
            jar = RequestsCookieJar()
            jar.update(session.cookies)
            prep.prepare_cookies(jar)
        # body: as PreparedRequest.prepare_body for json / bytes / text / a dict
        body: Any = None
        content_type = None
        if not data and json is not None:
            content_type = "application/json"
            try:
                body = _requests_json.dumps(json, allow_nan=False)
            except ValueError as exc:
                raise requests.exceptions.InvalidJSONError(exc, request=prep) from exc
            if not isinstance(body, bytes):
                body = body.encode("utf-8")
        elif data:
            if type(data) is dict:
                body, content_type = _form(data), "application/x-www-form-urlencoded"
            else:
                body = data
        prep.prepare_content_length(body)
        if content_type and "content-type" not in prepared_headers:
            prepared_headers["Content-Type"] = content_type
        prep.body = body
        return prep

    @staticmethod
    def _send_prepared(session: requests.Session, prep: requests.PreparedRequest,
                       timeout: tuple[float, float]) -> requests.Response:
        """What ``Session.send`` does with ``prep`` for this client's session: the adapter sends it
        (with the keyword arguments ``Session.request`` would give), cookies go to the session's
        jar, redirects are followed by ``Session.resolve_redirects``, the body is read."""
        send_kwargs: dict[str, Any] = {"timeout": timeout, "proxies": {}, "stream": False, "verify": True,
                                       "cert": None}
        adapter = session.get_adapter(url=str(prep.url))
        started = time.perf_counter()
        resp = adapter.send(prep, **send_kwargs)
        resp.elapsed = timedelta(seconds=time.perf_counter() - started)
        if "set-cookie" in resp.headers or "set-cookie2" in resp.headers:
            extract_cookies_to_jar(session.cookies, prep, resp.raw)  # type: ignore[no-untyped-call]
        if resp.is_redirect:
            if prep._cookies is None:  # type: ignore[attr-defined]  # resolve_redirects reads it
                prep._cookies = RequestsCookieJar()  # type: ignore[attr-defined]
            history = list(session.resolve_redirects(resp, prep, **send_kwargs))
            if history:
                history.insert(0, resp)
                resp = history.pop()
                resp.history = history
        _read_body(resp)
        return resp


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
