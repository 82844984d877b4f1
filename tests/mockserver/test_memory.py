"""The mock under abuse, part 3: 50 oversized (5 MB) requests against ``essc mock`` in a child
process leave its resident memory within 20 MB of where it started, and its journal small.

Nothing here depends on timing: every request is answered before the next is sent and the
memory is read from /proc after the last answer."""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from flask import Response

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")]

MB = 1024 * 1024
TOLERANCE_MB = 20
REQUESTS = 50
BODY_BYTES = 5 * MB
REST = {"Authorization": "Bearer mock-rest-token"}
MALFORMED = {"rest-json": (400, "BAD_REQUEST"), "pinyin-form": (200, "9002"), "xml-envelope": (400, "99001"),
             "gm-json": (200, "40003")}


def oversized(dialect: str) -> tuple[str, str, bytes]:
    """(path, content type, body): a plausible request whose ID number field is 5 MB long -
    the abuse that used to be parsed and journaled in full."""
    huge = "1" * BODY_BYTES
    if dialect == "rest-json":
        return ("/rest/v1/cards/query", "application/json",
                json.dumps({"cityCode": "330100", "idNumber": huge, "name": "张三"}).encode())
    if dialect == "pinyin-form":
        return ("/pinyin/card/query", "application/x-www-form-urlencoded",
                f"appid=essc-mock&aab301=350100&aac002={huge}".encode())
    if dialect == "xml-envelope":
        return ("/xml/gateway", "application/xml; charset=utf-8",
                ("<ROOT><HEADER><MsgType>CARD_QUERY</MsgType></HEADER><BODY><AAB301>370200</AAB301>"
                 f"<AAC002>{huge}</AAC002></BODY></ROOT>").encode())
    return ("/gm/api/card.query", "application/json",
            json.dumps({"appId": "essc-mock", "timestamp": "1", "encryptData": huge, "signData": "0"}).encode())


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def essc_command() -> str:
    found = shutil.which("essc", path=str(Path(sys.executable).parent)) or shutil.which("essc")
    assert found, "the essc console script is not installed next to this Python"
    return found


@pytest.fixture
def mock_process(wait_for):
    """``essc mock`` on an ephemeral port in a child process: ``(pid, url)``."""
    proc = subprocess.Popen([essc_command(), "mock", "--host", "127.0.0.1", "--port", "0", "--clock", "frozen"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:  # reads stderr to the end, so the child never blocks on a full pipe
        for line in proc.stderr:
            lines.put(line)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    seen: list[str] = []

    def url() -> str | None:
        while not lines.empty():
            seen.append(lines.get())
            found = re.search(r"http://127\.0\.0\.1:[1-9][0-9]*", seen[-1])
            if found:
                return found.group(0)
        assert proc.poll() is None, f"essc mock exited: {''.join(seen)}"
        return None

    try:
        yield proc.pid, wait_for(url, timeout=60, what="essc mock printed its address")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        drainer.join(15)  # EOF once the child is gone
        proc.stderr.close()


def test_fifty_oversized_requests_leave_memory_where_it_was(mock_process, answer_of, capsys):
    pid, url = mock_process
    dialects = list(MALFORMED)
    with requests.Session() as session:
        session.trust_env = False
        # warm up with ordinary traffic of every dialect (first requests load code and caches)
        for _ in range(5):
            assert session.get(f"{url}/rest/v1/health?cityCode=330100", headers=REST, timeout=30).ok
            session.post(f"{url}/pinyin/health", data={"aab301": "350100"}, timeout=30)
            session.post(f"{url}/xml/gateway", data=b"<ROOT/>", timeout=30)
            session.post(f"{url}/gm/api/health", json={}, timeout=30)
            assert session.get(f"{url}/__admin/citizens?city=330100", timeout=30).ok
        journaled = len(session.get(f"{url}/__admin/journal", timeout=30).json())
        before = vm_rss_mb(pid)

        for i in range(REQUESTS):
            dialect = dialects[i % len(dialects)]
            path, content_type, body = oversized(dialect)
            headers = {"Content-Type": content_type, **(REST if i % 8 == 0 else {})}  # mostly unauthenticated
            if i % 5 == 4:  # chunked: no Content-Length
                data = (body[start:start + 256 * 1024] for start in range(0, len(body), 256 * 1024))
                resp = session.post(f"{url}{path}", data=data, headers=headers, timeout=60)
            else:
                resp = session.post(f"{url}{path}", data=body, headers=headers, timeout=60)
            answer = Response(resp.content, resp.status_code, content_type=resp.headers["Content-Type"])
            assert answer_of(dialect, answer)[:2] == MALFORMED[dialect], (i, dialect)
            del body, resp, answer

        after = vm_rss_mb(pid)
        entries = session.get(f"{url}/__admin/journal", timeout=30)
    with capsys.disabled():
        print(f"\nessc mock VmRSS: {before:.1f} MB before, {after:.1f} MB after {REQUESTS} requests of 5 MB "
              f"({after - before:+.1f} MB)")
    assert after - before < TOLERANCE_MB, f"RSS grew from {before:.1f} MB to {after:.1f} MB"
    new = entries.json()[journaled:]
    assert len(new) == REQUESTS and {e["outcome"] for e in new} == {"too_large"}
    assert all(e["citizen"] is None and e["city"] is None for e in new)
    assert len(entries.content) < 64 * 1024  # entries, never bodies
