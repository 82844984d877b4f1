"""Throttling of failed authentications (per channel name and per client address).

Every failed authentication is counted twice: under the ``X-Channel`` name it claimed and
under the client address (``request.remote_addr``). Each counter is a fixed window that
opens with its first failure and lasts ``window_s``. Once a counter reaches ``limit``,
further requests are answered 429 with ``Retry-After`` before any credential is checked:

* from that ADDRESS, whatever channel they name;
* naming that CHANNEL, from an address that itself failed in its current window. A caller
  from an address without failures still gets its credentials checked, so an attacker who
  spends a channel's name cannot lock the real channel out, while each attacking address
  gets at most one try at that name per window once the name is exhausted.

Successes are never counted and never slowed. Counters live in this process
(:class:`MemoryCounters`) or in Redis (:class:`RedisCounters`: INCR + PEXPIRE in one Lua
script, shared by every API process). Several API processes without Redis (``essc serve
--processes N``, ``ServiceConfig.api_processes``) each count their own failures against
``ceil(limit / N)``, so all of them together allow about ``limit``, as one process does.
Addresses are stored as keyed hashes (blake2b) and never logged; names outside the
channel-name pattern share one bucket.

Configuration (Flask config of create_app, else ``runtime.config.extra``, else environment):
``AUTH_FAILURE_LIMIT`` / ``auth_failure_limit`` / ``ESSC_AUTH_FAILURE_LIMIT`` (default 10,
0 disables throttling) and ``AUTH_FAILURE_WINDOW_S`` / ``auth_failure_window_s`` /
``ESSC_AUTH_FAILURE_WINDOW_S`` (default 60).
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Mapping

from .channels import NAME
from .nonces import REDIS_SCHEMES

__all__ = ["FailureThrottle", "MemoryCounters", "RedisCounters", "build_throttle", "DEFAULT_LIMIT",
           "DEFAULT_WINDOW_S"]

DEFAULT_LIMIT = 10
DEFAULT_WINDOW_S = 60.0
_BAD_NAME = "?"  # one bucket for every name that is not a possible channel name


class MemoryCounters:
    """Fixed-window counters of this process; at most ``max_keys`` (expired ones go first)."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._counts: dict[str, list[float]] = {}  # key -> [count, reset_at]
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def incr(self, key: str, window_s: float, now: float) -> None:
        with self._lock:
            entry = self._counts.get(key)
            if entry is None or entry[1] <= now:
                if len(self._counts) >= self.max_keys:
                    self._evict(now)
                self._counts.pop(key, None)
                self._counts[key] = [1, now + window_s]
            else:
                entry[0] += 1

    def get(self, key: str, now: float) -> tuple[int, float]:
        """(failures in the current window, seconds until it closes)."""
        entry = self._counts.get(key)
        if entry is None or entry[1] <= now:
            return 0, 0.0
        return int(entry[0]), entry[1] - now

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, reset_at) in self._counts.items() if reset_at <= now]:
            del self._counts[key]
        while len(self._counts) >= self.max_keys:  # oldest windows first (insertion order)
            del self._counts[next(iter(self._counts))]


_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisCounters:
    """Fixed-window counters in Redis (the Redis server's clock; ``now`` is not used)."""

    def __init__(self, url_or_client, prefix: str = "essc:authfail:") -> None:
        if isinstance(url_or_client, str):
            import redis

            url_or_client = redis.Redis.from_url(url_or_client)
        self.redis = url_or_client
        self.prefix = prefix
        self._incr = self.redis.register_script(_INCR)

    def incr(self, key: str, window_s: float, now: float) -> None:
        self._incr(keys=[self.prefix + key], args=[max(1, math.ceil(window_s * 1000))])

    def get(self, key: str, now: float) -> tuple[int, float]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.prefix + key)
        pipe.pttl(self.prefix + key)
        count, ttl_ms = pipe.execute()
        if not count or ttl_ms is None or ttl_ms < 0:
            return 0, 0.0
        return int(count), ttl_ms / 1000.0


class FailureThrottle:
    """``retry_after(name, address)`` before authenticating, ``failed(name, address)`` after a
    failure. ``clock`` is injectable (tests); ``key_secret`` keys the hash of addresses."""

    def __init__(self, limit: int = DEFAULT_LIMIT, window_s: float = DEFAULT_WINDOW_S, counters=None,
                 clock: Callable[[], float] = time.time, key_secret: bytes | None = None) -> None:
        if limit < 1 or not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError("the failure limit must be >= 1 and the window a positive number of seconds")
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.counters = counters if counters is not None else MemoryCounters()
        self.clock = clock
        self._key = hashlib.sha256(key_secret).digest() if key_secret else os.urandom(32)

    def _keys(self, name: str, address: str) -> tuple[str | None, str]:
        digest = hashlib.blake2b((address or "").encode("utf-8", "replace"), digest_size=12, key=self._key)
        name_key = None if not name else "n:" + (name if NAME.match(name) else _BAD_NAME)
        return name_key, "a:" + digest.hexdigest()

    def retry_after(self, name: str, address: str) -> float | None:
        """Seconds to wait when this request must be refused unchecked (429), else None."""
        name_key, addr_key = self._keys(name, address)
        now = self.clock()
        addr_count, addr_left = self.counters.get(addr_key, now)
        if addr_count >= self.limit:
            return addr_left
        if name_key is not None and addr_count > 0:
            name_count, name_left = self.counters.get(name_key, now)
            if name_count >= self.limit:
                return min(name_left, addr_left)  # allowed again when either window closes
        return None

    def failed(self, name: str, address: str) -> None:
        name_key, addr_key = self._keys(name, address)
        now = self.clock()
        self.counters.incr(addr_key, self.window_s, now)
        if name_key is not None:
            self.counters.incr(name_key, self.window_s, now)


def _setting(config: Mapping, extra: Mapping, env: Mapping[str, str], name: str, cast):
    for value in (config.get(name), extra.get(name.lower()), env.get("ESSC_" + name)):
        if value is not None and value != "":
            return cast(value)
    return None


def build_throttle(runtime, config: Mapping | None = None, env: Mapping[str, str] | None = None,
                   clock: Callable[[], float] | None = None) -> FailureThrottle | None:
    """The API's throttle (None when disabled): ``config["AUTH_THROTTLE"]`` when given, else
    limit/window from the settings above, counters in Redis when ``queue_url`` (or the nonce
    URL) is a Redis URL, else in this process."""
    config = config or {}
    if config.get("AUTH_THROTTLE") is not None:
        return config["AUTH_THROTTLE"] or None
    env = os.environ if env is None else env
    service = runtime.config
    extra = service.extra or {}
    limit = _setting(config, extra, env, "AUTH_FAILURE_LIMIT", int)
    window = _setting(config, extra, env, "AUTH_FAILURE_WINDOW_S", float)
    limit = DEFAULT_LIMIT if limit is None else limit
    if limit <= 0:
        return None
    counters = None
    url = config.get("NONCE_URL") or extra.get("nonce_url") or env.get("ESSC_NONCE_URL") or service.queue_url
    if url and str(url).startswith(REDIS_SCHEMES):
        counters = RedisCounters(str(url), prefix=f"{service.queue_name}:authfail:")
        key_secret = service.resolved_secret().encode()  # every process must hash addresses alike
    else:
        key_secret = None
        limit = math.ceil(limit / max(1, service.api_processes))  # this process's share of it
    return FailureThrottle(limit, DEFAULT_WINDOW_S if window is None else window, counters,
                           clock=clock or time.time, key_secret=key_secret)
