"""The keep-alive transport under every city call (essc.core.transport.KeepAlivePool): what a
plugin gets back and which errors it sees, against a scripted city that answers byte for byte.
(That it writes the same request bytes as urllib3 is tests/core/test_http.py's _same_bytes.)"""
from __future__ import annotations

import gzip
import socket
import ssl
import threading

import pytest
import requests

from essc.core.errors import UpstreamUnavailable
from essc.core.http import CityHttpClient, LeanHTTPAdapter
from essc.core.timeouts import Timeouts
from essc.core.transport import MAX_HEADERS, KeepAlivePool

GUARD_S = 30  # only a failure waits this long


def answer(status="200 OK", body=b'{"ok": 1}', headers=(), length=True):
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


class City:
    """A city on a raw socket: each request (head + Content-Length body) gets what ``script``
    returns for (request bytes, connection number, request number on it): the bytes to send,
    or (bytes, True) to close the connection after them. Counts connections."""

    def __init__(self, script, tls_context=None):
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.tls = tls_context
        self.url = f"{'https' if tls_context else 'http'}://localhost:{self.sock.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True)
            self.threads.append(t)  # before it starts: its answer may come before a later append
            t.start()

    def _serve(self, conn, number):
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            buf, nth = b"", 0
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if b"\r\ntransfer-encoding: chunked" in head.lower():
                    while b"0\r\n\r\n" not in buf:
                        buf += conn.recv(65536)
                    length = buf.index(b"0\r\n\r\n") + 5
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                nth += 1
                out = self.script(head, number, nth)
                close = False
                if isinstance(out, tuple):
                    out, close = out
                if out:
                    conn.sendall(out)
                if close:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def city():
    cities = []

    def make(script, tls_context=None):
        c = City(script, tls_context)
        cities.append(c)
        return c

    yield make
    for c in cities:
        c.close()


def client(url, read_s=2.0, retries=0):
    return CityHttpClient(url, timeouts=Timeouts(1.0, read_s, 5.0, retries), plugin="t", backoff_s=0.001)


def pool_of(c: CityHttpClient) -> KeepAlivePool:
    adapter = c.session.get_adapter(c.base_url)
    assert isinstance(adapter, LeanHTTPAdapter)
    (_, pool), = adapter._pools.values()
    return pool


def test_calls_reuse_one_connection_and_get_the_answer(city):
    c = city(lambda head, conn, nth: answer(body=b'{"n": %d}' % nth, headers=[("X-A", "1"), ("X-A", "2")]))
    http = client(c.url)
    answers = [http.request("POST", "/q", json={"i": i}) for i in range(3)]
    assert [a.json() for a in answers] == [{"n": 1}, {"n": 2}, {"n": 3}]
    first = answers[0]
    assert first.status_code == 200 and first.reason == "OK" and first.headers["X-A"] == "1, 2"
    assert first.raw.version == 11 and c.connections == 1 and len(c.requests) == 3


def test_a_connection_the_city_closed_while_idle_is_not_used_again(city):
    # the city closes every connection after one answer without saying so (no Connection: close)
    c = city(lambda head, conn, nth: (answer(), True))
    http = client(c.url)
    for _ in range(3):
        assert http.request("GET", "/q").json() == {"ok": 1}
        for t in c.threads:  # the city has closed it: the next call must notice before sending
            t.join(GUARD_S)
            assert not t.is_alive()
    assert c.connections == 3


def test_connection_close_and_a_body_framed_by_the_end_of_the_connection(city):
    big = b"x" * 300_000
    c = city(lambda head, conn, nth: (answer(body=big, headers=[("Connection", "close")], length=False), True))
    http = client(c.url)
    assert http.request("GET", "/q").content == big
    assert http.request("GET", "/q").content == big
    assert c.connections == 2 and not pool_of(http)._idle


def test_chunked_and_gzip_answers_are_decoded(city):
    payload = b'{"name": "\xe5\xbc\xa0\xe4\xb8\x89"}'
    packed = gzip.compress(payload)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (packed[:10], packed[10:])) + b"0\r\n\r\n"
    c = city(lambda head, conn, nth: answer(body=chunks, length=False,
                                            headers=[("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")]))
    http = client(c.url)
    for _ in range(2):
        resp = http.request("GET", "/q")
        assert resp.content == payload and resp.json() == {"name": "张三"}
    assert c.connections == 1


def test_interim_answers_are_skipped(city):
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
    c = city(lambda head, conn, nth: hint + answer(status="201 Created"))
    resp = client(c.url).request("POST", "/q", json={})
    assert resp.status_code == 201 and resp.reason == "Created" and resp.json() == {"ok": 1}
    assert "Link" not in resp.headers


def test_every_cookie_an_answer_sets_is_kept(city):
    c = city(lambda head, conn, nth: answer(headers=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")]))
    http = client(c.url)
    http.request("GET", "/q")
    assert http.session.cookies.get_dict() == {"a": "1", "b": "2"}
    http.request("GET", "/q")
    assert b"Cookie: a=1; b=2\r\n" in c.requests[1]


@pytest.mark.parametrize("reply, detail", [
    (answer(body=b'{"ok": 1, "cut": "here"}')[:-8], "connection failed"),  # closed mid-body
    (b"HTTP/1.1 200 OK\r\nContent-Le", "connection failed"),  # closed mid-head
    (b"", "connection failed"),  # closed without a word
    (b"SMTP ready\r\n\r\n", "connection failed"),  # not HTTP
    (b"HTTP/1.1 200 OK\r\n" + b"X-H: v\r\n" * (MAX_HEADERS + 1) + b"Content-Length: 0\r\n\r\n", "connection failed"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n", "connection failed"),
])
def test_a_broken_answer_is_a_connection_failure_and_the_connection_is_dropped(city, reply, detail):
    c = city(lambda head, conn, nth: (reply, True) if nth == 1 and conn == 1 else answer())
    http = client(c.url)
    with pytest.raises(UpstreamUnavailable) as err:
        http.request("POST", "/q", json={})
    assert err.value.reason == "connection" and detail in err.value.detail
    assert isinstance(err.value.__cause__, requests.ConnectionError)
    assert http.request("POST", "/q", json={}).json() == {"ok": 1}  # a new connection, not the broken one
    assert c.connections == 2


def test_a_city_that_does_not_answer_in_time_is_a_timeout(city):
    release = threading.Event()
    c = city(lambda head, conn, nth: release.wait(5) and b"")
    http = client(c.url, read_s=0.2)
    try:
        with pytest.raises(UpstreamUnavailable) as err:
            http.request("GET", "/q")
        assert err.value.reason == "timeout" and isinstance(err.value.__cause__, requests.ReadTimeout)
        assert not pool_of(http)._idle
    finally:
        release.set()


def test_a_refused_connection_is_a_connection_failure():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(UpstreamUnavailable) as err:
        client(f"http://127.0.0.1:{port}").request("GET", "/q")
    assert err.value.reason == "connection" and isinstance(err.value.__cause__, requests.ConnectionError)


def test_calls_it_does_not_take_go_to_urllib3(city):
    c = city(lambda head, conn, nth: answer(body=b"" if head.startswith(b"HEAD") else b'{"ok": 1}'))
    http = client(c.url)
    http.request("GET", "/q")
    pool = pool_of(http)
    taken = []
    original = pool.fallback.urlopen
    pool.fallback.urlopen = lambda *a, **k: taken.append(a[0] if a else k["method"]) or original(*a, **k)
    assert http.request("HEAD", "/q").status_code == 200  # no body whatever the framing says
    assert http.request("POST", "/q", data=iter([b"a", b"b"])).json() == {"ok": 1}  # a chunked body
    assert http.request("GET", "/q", headers={"X-Tab": "a\tb"}).json() == {"ok": 1}  # taken: a legal value
    assert http.request("GET", "/q", headers={"X-Bytes": b"\xe9"}).json() == {"ok": 1}  # bytes: as given
    assert taken == ["HEAD", "POST", "GET"]
    assert b"Transfer-Encoding: chunked" in c.requests[2] and b"X-Tab: a\tb\r\n" in c.requests[3]
    assert b"X-Bytes: \xe9\r\n" in c.requests[4]


def test_idle_connections_are_capped_and_closed_with_the_session(city):
    gate = threading.Barrier(4, timeout=10)

    def script(head, conn, nth):
        if b"/together" in head:
            gate.wait()  # four calls in flight at once: four connections
        return answer()

    c = city(script)
    http = client(c.url)
    http.request("GET", "/first")
    pool = pool_of(http)
    pool.maxsize = 2
    threads = [threading.Thread(target=http.request, args=("GET", "/together")) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(c.requests) == 5 and c.connections == 4  # the first call's connection and three more
    assert len(pool._idle) == 2  # two kept, two closed
    kept = [sock for sock, _ in pool._idle]
    http.session.close()
    assert pool.closed and not pool._idle and all(s.fileno() == -1 for s in kept)


def test_https_is_verified_against_the_bundle_requests_names(city, monkeypatch):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    c = city(lambda head, conn, nth: answer(), tls_context=server_context)
    with ca.cert_pem.tempfile() as bundle:
        monkeypatch.setattr("requests.adapters.DEFAULT_CA_BUNDLE_PATH", bundle)
        http = client(c.url)
        assert http.request("POST", "/q", json={}).json() == {"ok": 1}
        assert http.request("POST", "/q", json={}).json() == {"ok": 1}
        assert c.connections == 1 and pool_of(http).scheme == "https"
    other = trustme.CA()  # a bundle that does not hold the city's CA
    with other.cert_pem.tempfile() as bundle:
        monkeypatch.setattr("requests.adapters.DEFAULT_CA_BUNDLE_PATH", bundle)
        with pytest.raises(UpstreamUnavailable) as err:
            client(c.url).request("POST", "/q", json={})
        assert err.value.reason == "connection" and isinstance(err.value.__cause__, requests.exceptions.SSLError)
