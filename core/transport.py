"""Keep-alive HTTP/1.1 connections to one city origin, parsed by llhttp (issue 10, "slow cities").

Every city call a plugin makes through :class:`~essc.core.http.CityHttpClient` ends in
``HTTPAdapter.send``, which asks a connection pool to ``urlopen`` the request. urllib3's pool
goes through ``http.client``, which reads the status line and every header line by line and
hands the header block to the ``email`` package's feed parser: ~130 us of client CPU per call
(``bench/http_cost.py``), about a third of what a call costs the service. :class:`KeepAlivePool`
is a pool with the same ``urlopen`` for the common call - the request written in one ``sendall``,
the answer parsed by llhttp (Node.js's HTTP parser, through MagicStack's ``httptools``, the
parser under uvicorn) - and hands every other call to the urllib3 pool it wraps, so the
uncommon cases keep urllib3's behaviour exactly.

What it takes: ``http`` and ``https`` (TLS verified as ``requests`` asks through
``cert_verify``: the CA bundle it names, the host name checked, SNI); a body of bytes or text
(or none) with no chunked framing (no ``Transfer-Encoding`` or ``Expect`` header); a method and a
path of visible ASCII; header names that are HTTP tokens and text values without CR, LF or NUL
(Latin-1, as ``http.client`` encodes them); an ASCII host; no retries asked of urllib3; any method
but ``HEAD`` (whose answer has no body however it is framed). Anything else - bytes header values
among it - goes to urllib3 (the wrapped pool), which sends it or refuses it as before.

On the wire it writes what urllib3 + ``http.client`` write: the request line; ``Host`` (unless
given); ``Accept-Encoding: identity`` (unless given); ``Content-Length`` when not given and not
chunked (``0`` for a method that expects a body and has none); urllib3's ``User-Agent`` (unless
given); then the headers in their order (tests/core/test_http.py compares the bytes).

What it gives back: a urllib3 ``HTTPResponse`` holding the whole body (read before it
returns: the caller reads it anyway), its status, reason, version and headers (repeated names
kept), so ``requests`` builds its ``Response`` from it as from urllib3's - ``Content-Encoding``
is decoded by urllib3 when the body is read, cookies are extracted through
``_original_response.msg`` as from ``http.client``'s answer. ``1xx`` interim answers are
skipped as ``http.client`` skips them. A body framed by the connection's end is read to the end.

Connections: each has a receive buffer of its own (``RECV_BUFFER``) that answers are read into;
the most recently used idle one is reused (LIFO: the warmest), after a check that
the city has not closed it meanwhile (readable while idle means closed or garbage: dropped, as
urllib3 drops it); at most ``maxsize`` are kept idle, the rest closed when returned; a
connection is only ever returned after a complete answer that allows keep-alive.

Errors are urllib3's, so ``requests`` maps them as it maps urllib3's: a connect timeout
``MaxRetryError(ConnectTimeoutError)`` (-> ``requests.ConnectTimeout``), a refused or failed
connect ``MaxRetryError(NewConnectionError)``, a TLS failure ``MaxRetryError(SSLError)``
(-> ``requests.exceptions.SSLError``), a read timeout ``ReadTimeoutError`` (-> ``ReadTimeout``), a
connection closed before the answer ended or an answer llhttp refuses ``ProtocolError``
(-> ``requests.ConnectionError``). The connection is closed after any of them.

Not the same as ``http.client``: llhttp trims a header value's trailing blanks (``http.client``
keeps them) and refuses obsolete line folding in headers (``http.client`` unfolds it); an
answer's head above 64 KiB or with more than 100 headers is refused (``http.client``'s limits
are 64 KiB per line and 100 headers).
"""
from __future__ import annotations

import collections
import io
import re
import select
import socket
import ssl
import threading
import weakref
from http.client import HTTPMessage
from typing import Any

import httptools
import urllib3
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict, HTTPResponse
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import SKIP_HEADER
from urllib3.util.timeout import Timeout

__all__ = ["KeepAlivePool", "MAX_HEAD_BYTES", "MAX_HEADERS"]

#: an answer's status line and headers together may not exceed this
MAX_HEAD_BYTES = 64 * 1024
#: nor hold more headers than this (``http.client``'s limit)
MAX_HEADERS = 100
#: methods urllib3 sends no ``Content-Length: 0`` for when they have no body
_NO_BODY_EXPECTED = frozenset({"GET", "HEAD", "DELETE", "TRACE", "OPTIONS", "CONNECT"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHOD = re.compile(r"[A-Z][A-Z0-9_-]*")
_PATH = re.compile(r"/[\x21-\x7e]*")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_USER_AGENT_LINE = f"User-Agent: python-urllib3/{urllib3.__version__}\r\n"
#: each connection's receive buffer: an answer is read into it, never into a new bytes object per
#: read (reading with recv(n) allocated n bytes and shrank them, which left the allocator's arenas
#: fragmented across hundreds of threads: +20 MB of RSS with 8 KiB reads, +230 MB with 64 KiB)
RECV_BUFFER = 8192


class _Answer:
    """llhttp's callbacks for one answer: status text, headers, body, completion."""

    __slots__ = ("parser", "reason", "headers", "body", "head_bytes", "headers_done", "complete", "keep_alive",
                 "status", "until_close")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.head_bytes = 0
        self.headers_done = self.complete = self.keep_alive = self.until_close = False
        self.status = 0

    def on_status(self, reason: bytes) -> None:
        self.reason = reason.decode("iso-8859-1").strip()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            raise ProtocolError(f"the answer has more than {MAX_HEADERS} headers")
        self.headers.append((name.decode("iso-8859-1"), value.decode("iso-8859-1")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        self.status = parser.get_status_code()
        self.keep_alive = parser.should_keep_alive()
        self.headers_done = True
        if 100 <= self.status < 200:
            return
        names = {name.lower() for name, _ in self.headers}
        self.until_close = ("content-length" not in names and "transfer-encoding" not in names
                            and self.status not in (204, 304))

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200 and self.status != 101:
            # an interim answer (100 Continue, 103 Early Hints): skipped, the final one follows
            self.reason, self.headers, self.body, self.headers_done, self.head_bytes = "", [], [], False, 0
            return
        self.complete = True


#: a kept connection: its socket and its receive buffer
_Connection = tuple[socket.socket, memoryview]


class KeepAlivePool:
    """The connections to one ``scheme://host:port``; ``fallback`` is the urllib3 pool of the
    same origin, which takes every call this one does not (see the module's docstring)."""

    def __init__(self, fallback: Any, maxsize: int = 32) -> None:
        self.fallback = fallback
        self.scheme: str = fallback.scheme
        self.host: str = fallback.host
        self.port: int = fallback.port or (443 if self.scheme == "https" else 80)
        self.maxsize = maxsize
        # what requests' cert_verify sets on the pool before each call
        self.cert_reqs: str | None = None
        self.ca_certs: str | None = None
        self.ca_cert_dir: str | None = None
        host = self.host.strip("[]")
        self._address = (host, self.port)
        host_header = f"[{host}]" if ":" in host else host
        default_port = 443 if self.scheme == "https" else 80
        host_value = host_header if self.port == default_port else f"{host_header}:{self.port}"
        self._host_line = f"Host: {host_value}\r\n"
        #: an ASCII host (urllib3 gives IDNA-encoded names): else http.client's encoding is urllib3's job
        self._plain = host_value.isascii()
        self._idle: collections.deque[_Connection] = collections.deque()
        self._lock = threading.Lock()
        self._tls: tuple[tuple[str | None, str | None, str | None], ssl.SSLContext] | None = None
        self.closed = False
        # a pool dropped without close() (a session nobody closed) closes its idle connections
        # when it is collected, as urllib3's pools do
        weakref.finalize(self, _close_all, self._idle)

    # -- what HTTPAdapter.send calls --------------------------------------------------------

    def urlopen(self, method: str, url: str, body: Any = None, headers: Any = None, retries: Any = None,
                redirect: bool = True, assert_same_host: bool = True, timeout: Any = None,
                pool_timeout: Any = None, release_conn: Any = None, chunked: bool = False, body_pos: Any = None,
                preload_content: bool = True, decode_content: bool = True, **response_kw: Any) -> Any:
        if self.closed:
            raise ClosedPoolError(self, "Pool is closed.")  # type: ignore[arg-type]
        plain = not (chunked or redirect or response_kw) and _no_retries(retries)
        head = self._head(method, url, body, headers) if plain else None
        if head is None:
            return self.fallback.urlopen(method, url, body=body, headers=headers, retries=retries, redirect=redirect,
                                         assert_same_host=assert_same_host, timeout=timeout,
                                         pool_timeout=pool_timeout, release_conn=release_conn, chunked=chunked,
                                         body_pos=body_pos, preload_content=preload_content,
                                         decode_content=decode_content, **response_kw)
        data = head if body is None else head + (body.encode("utf-8") if isinstance(body, str) else body)
        connect_s, read_s = _timeouts(timeout)
        conn = self._connection(url, connect_s)
        sock = conn[0]
        try:
            sock.settimeout(read_s)
            sock.sendall(data)
            answer = self._read(conn, url)
        except BaseException:
            sock.close()
            raise
        if answer.keep_alive and not answer.until_close:
            self._put(conn)
        else:
            sock.close()
        return self._response(answer, method, url, decode_content, preload_content)

    def close(self) -> None:
        """Close the idle connections and refuse new calls (the fallback pool is its manager's)."""
        self.closed = True
        with self._lock:
            _close_all(self._idle)

    # -- the request ----------------------------------------------------------------------------

    def _head(self, method: str, url: str, body: Any, headers: Any) -> bytes | None:
        """The request line and headers as urllib3 + http.client write them, or ``None`` when the
        call is one this pool leaves to urllib3."""
        if (not self._plain or type(method) is not str or method == "HEAD" or not _METHOD.fullmatch(method)
                or type(url) is not str or not _PATH.fullmatch(url)
                or not (body is None or type(body) in (bytes, str))):
            return None
        if not headers:
            pairs: list[tuple[Any, Any]] = []
        else:
            # requests' prepared headers keep (name as given, value) by lower-cased name in
            # ``_store`` (since requests 1.0); reading them there costs a third of going through
            # the Mapping interface (a lookup per name). Anything else: the Mapping interface.
            store = getattr(headers, "_store", None) if type(headers) is CaseInsensitiveDict else None
            pairs = list(store.values()) if isinstance(store, dict) else list(headers.items())
        names = set()
        given = []
        for name, value in pairs:
            if (type(name) is not str or type(value) is not str or not _TOKEN.fullmatch(name)
                    or _BAD_VALUE.search(value) or value == SKIP_HEADER):
                return None  # bytes values, odd names or values: urllib3's to send or refuse
            names.add(name.lower())
            given.append(f"{name}: {value}\r\n")
        if "transfer-encoding" in names or "expect" in names:
            return None
        lines = [f"{method} {url} HTTP/1.1\r\n"]
        if "host" not in names:
            lines.append(self._host_line)
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: identity\r\n")
        if "content-length" not in names:
            if body is not None:
                size = len(body.encode("utf-8")) if type(body) is str else len(body)
                lines.append(f"Content-Length: {size}\r\n")
            elif method not in _NO_BODY_EXPECTED:
                lines.append("Content-Length: 0\r\n")
        if "user-agent" not in names:
            lines.append(_USER_AGENT_LINE)
        lines.extend(given)
        lines.append("\r\n")
        try:
            # the request line and names are ASCII (checked above); values go as http.client
            # sends text values: Latin-1
            return "".join(lines).encode("iso-8859-1")
        except UnicodeEncodeError:
            return None

    # -- connections ------------------------------------------------------------------------

    def _connection(self, url: str, connect_s: float | None) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(url, connect_s), memoryview(bytearray(RECV_BUFFER))
            if _still_open(conn[0]):
                return conn
            conn[0].close()

    def _connect(self, url: str, connect_s: float | None) -> socket.socket:
        try:
            sock = socket.create_connection(self._address, connect_s)
        except TimeoutError as exc:
            raise MaxRetryError(self, url, ConnectTimeoutError(  # type: ignore[arg-type]
                self, f"Connection to {self.host} timed out. (connect timeout={connect_s})")) from exc
        except OSError as exc:
            raise MaxRetryError(self, url, NewConnectionError(  # type: ignore[arg-type]
                self, f"Failed to establish a new connection: {exc}")) from exc  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme != "https":
            return sock
        try:
            return self._tls_context().wrap_socket(sock, server_hostname=self._address[0])
        except TimeoutError as exc:
            sock.close()
            raise MaxRetryError(self, url, ConnectTimeoutError(  # type: ignore[arg-type]
                self, f"TLS handshake with {self.host} timed out. (connect timeout={connect_s})")) from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            sock.close()
            raise MaxRetryError(self, url, SSLError(exc)) from exc  # type: ignore[arg-type]
        except OSError:
            sock.close()
            raise

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS settings requests asked for (``cert_verify``), made once per set of them."""
        wanted = (self.cert_reqs, self.ca_certs, self.ca_cert_dir)
        known = self._tls
        if known is not None and known[0] == wanted:
            return known[1]
        context = ssl.create_default_context(cafile=self.ca_certs, capath=self.ca_cert_dir)
        if self.cert_reqs == "CERT_NONE":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        self._tls = (wanted, context)
        return context

    def _put(self, conn: _Connection) -> None:
        with self._lock:
            if not self.closed and len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn[0].close()

    # -- the answer -------------------------------------------------------------------------

    def _read(self, conn: _Connection, url: str) -> _Answer:
        answer = _Answer()
        feed = answer.parser.feed_data
        recv_into, view = conn[0].recv_into, conn[1]
        while not answer.complete:
            try:
                size = recv_into(view)
            except TimeoutError as exc:
                raise ReadTimeoutError(self, url, "Read timed out.") from exc  # type: ignore[arg-type]
            except OSError as exc:
                raise ProtocolError("Connection aborted.", exc) from exc
            if not size:
                if answer.headers_done and answer.until_close:
                    answer.complete = True  # the body is framed by the end of the connection
                    break
                raise ProtocolError("Connection aborted.",
                                    ConnectionResetError("the city closed the connection before its answer ended"))
            if not answer.headers_done:
                answer.head_bytes += size
                if answer.head_bytes > MAX_HEAD_BYTES:
                    raise ProtocolError(f"the answer's head is longer than {MAX_HEAD_BYTES} bytes")
            try:
                feed(view[:size])  # llhttp's callbacks get bytes of their own: the buffer is reused
            except httptools.HttpParserUpgrade:
                raise ProtocolError("the city switched protocols (HTTP 101)") from None
            except httptools.HttpParserError as exc:
                raise ProtocolError(f"the city's answer is not valid HTTP/1.1 ({exc})") from exc
        return answer

    def _response(self, answer: _Answer, method: str, url: str, decode_content: bool,
                  preload_content: bool) -> HTTPResponse:
        headers = HTTPHeaderDict()
        for name, value in answer.headers:
            headers.add(name, value)
        version = 10 if answer.parser.get_http_version() == "1.0" else 11
        original = None
        if "set-cookie" in headers or "set-cookie2" in headers:
            original = _Original(answer.headers)  # what requests' cookie extraction reads
        return HTTPResponse(body=io.BytesIO(b"".join(answer.body)), headers=headers, status=answer.status,
                            version=version, version_string=f"HTTP/{version // 10}.{version % 10}",
                            reason=answer.reason, preload_content=preload_content, decode_content=decode_content,
                            original_response=original, pool=None, connection=None,  # type: ignore[arg-type]
                            request_method=method, request_url=url)


class _Original:
    """The part of ``http.client``'s answer requests reads for cookies: ``msg``."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.msg = HTTPMessage()
        for name, value in headers:
            self.msg[name] = value  # appends: every Set-Cookie is kept

    def isclosed(self) -> bool:
        return True


def _close_all(idle: collections.deque[_Connection]) -> None:
    while idle:
        idle.pop()[0].close()


def _no_retries(retries: Any) -> bool:
    """urllib3 would not retry (``HTTPAdapter(max_retries=0)``: ``Retry(0, read=False)``)."""
    if retries is None or retries is False or retries == 0:
        return retries is not None
    return getattr(retries, "total", None) == 0


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    if isinstance(timeout, Timeout):
        connect, read = timeout.connect_timeout, timeout.read_timeout
    else:
        connect = read = timeout
    return (connect if isinstance(connect, (int, float)) else None,
            read if isinstance(read, (int, float)) else None)


def _still_open(sock: socket.socket) -> bool:
    """An idle connection the city has not closed: nothing to read (readable while idle means
    the end of the connection or bytes nobody asked for)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)
