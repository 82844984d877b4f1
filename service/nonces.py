"""Where the nonces of accepted signatures are kept (see essc.service.channels).

A nonce is accepted once per channel while its timestamp is inside the window: the caller
gives ``expires_at`` (the timestamp + the allowed skew), and :meth:`claim` answers True for
the first use and False for every use before ``expires_at``. Three stores:

* :class:`RedisNonceStore` - ``SET key 1 NX PX <ms until expires_at>``: one atomic command,
  shared by every API process using the same Redis (chosen when a Redis URL is configured);
* :class:`SqlNonceStore` - a table of its own, ``auth_nonces`` ((channel, nonce) primary key,
  expires_at), in the service's database (SQLite or PostgreSQL): the INSERT that fails on the
  primary key is the atomic check; expired rows are purged now and then;
* :class:`MemoryNonceStore` - a dict, for one process (tests, a Channels used on its own).

:func:`build_nonce_store` picks one for the API (see essc.service.api.create_app).
"""
from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping

from sqlalchemy import Column, Float, Index, MetaData, String, Table, delete, func, insert, inspect, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from .purging import Purger
from .sql import Runner, Statement
from .writers import writer_lock, writing

__all__ = ["MemoryNonceStore", "SqlNonceStore", "RedisNonceStore", "build_nonce_store", "NONCES"]

_META = MetaData()
NONCES = Table(
    "auth_nonces", _META,
    Column("channel", String(40), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),  # unix seconds
    Index("ix_auth_nonces_expires_at", "expires_at"),
)


class MemoryNonceStore:
    """Nonces of this process only (a second API process would not see them)."""

    def __init__(self, purge_every_s: float = 60.0) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.purge_every_s = purge_every_s
        self._next_purge = 0.0

    def claim(self, channel: str, nonce: str, expires_at: float, now: float) -> bool:
        key = (channel, nonce)
        with self._lock:
            if now >= self._next_purge:
                self._next_purge = now + self.purge_every_s
                self._purge(now)
            until = self._seen.get(key)
            if until is not None and now < until:
                return False
            self._seen[key] = expires_at
            return True

    def _purge(self, now: float) -> None:
        for key in [k for k, until in self._seen.items() if until <= now]:
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)


class SqlNonceStore:
    """Nonces in the ``auth_nonces`` table of ``engine``'s database (SQLite or PostgreSQL)."""

    def __init__(self, engine, purge_every_s: float = 60.0) -> None:
        self.engine = engine
        self._purge = Purger(engine, NONCES, every_s=purge_every_s, retention_s=0)  # expired: may be used again
        try:
            _META.create_all(engine)
        except DBAPIError:  # another process created it at the same moment
            if not inspect(engine).has_table(NONCES.name):
                raise
        # every signed request inserts its nonce: on the DBAPI connection, as the activations' hot
        # path (service/sql.py), one statement in autocommit mode on a database server. CPU per
        # claim (alternating runs of 1,500): SQLite (WAL) 157-232 -> 49-90 us, PostgreSQL 395-461
        # -> 117-145 us (3 round trips -> 1; wall 0.79-1.04 -> 0.34-0.49 ms)
        self._sql = Runner(engine, writer_lock(engine))
        self._insert_stmt = Statement(insert(NONCES), engine.dialect)

    def claim(self, channel: str, nonce: str, expires_at: float, now: float) -> bool:
        self._purge(now)
        if self._insert(channel, nonce, expires_at):
            return True
        # the pair is known: it is a replay unless the old row has expired (then it may go)
        with writing(self.engine) as conn:
            gone = conn.execute(delete(NONCES).where(NONCES.c.channel == channel, NONCES.c.nonce == nonce,
                                                     NONCES.c.expires_at <= now)).rowcount
        return bool(gone) and self._insert(channel, nonce, expires_at)

    def _insert(self, channel: str, nonce: str, expires_at: float) -> bool:
        values = {"channel": channel, "nonce": nonce, "expires_at": float(expires_at)}
        try:  # on SQLite through the database's writer thread, with the activations' writes
            self._sql.write(lambda tx: tx.execute(self._insert_stmt, values), single=True)
        except IntegrityError:
            return False
        return True

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(NONCES)).scalar_one())


class RedisNonceStore:
    """Nonces in Redis: ``<prefix><channel>:<nonce>`` set with NX and an expiry."""

    def __init__(self, url_or_client, prefix: str = "essc:nonce:") -> None:
        if isinstance(url_or_client, str):
            import redis

            url_or_client = redis.Redis.from_url(url_or_client)
        self.redis = url_or_client
        self.prefix = prefix

    def claim(self, channel: str, nonce: str, expires_at: float, now: float) -> bool:
        # channel names and nonces hold no ":" (their patterns), so keys cannot collide
        ttl_ms = max(1000, math.ceil((expires_at - now) * 1000))
        return bool(self.redis.set(f"{self.prefix}{channel}:{nonce}", b"1", nx=True, px=ttl_ms))


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def build_nonce_store(runtime, config: Mapping | None = None, env: Mapping[str, str] | None = None):
    """The API's nonce store: ``config["NONCE_STORE"]`` when given; else Redis at
    ``config["NONCE_URL"]`` / ``runtime.config.extra["nonce_url"]`` / env ``ESSC_NONCE_URL`` /
    ``runtime.config.queue_url`` (when it is a Redis URL); else the ``auth_nonces`` table in
    the service's database (``runtime.store.engine``)."""
    config = config or {}
    env = os.environ if env is None else env
    if config.get("NONCE_STORE") is not None:
        return config["NONCE_STORE"]
    service = runtime.config
    explicit = config.get("NONCE_URL") or (service.extra or {}).get("nonce_url") or env.get("ESSC_NONCE_URL")
    if explicit and not str(explicit).startswith(REDIS_SCHEMES):
        raise ValueError("the nonce URL must be a Redis URL (redis://, rediss://, unix://)")
    url = explicit or service.queue_url
    if url and str(url).startswith(REDIS_SCHEMES):
        return RedisNonceStore(str(url), prefix=f"{service.queue_name}:nonce:")
    return SqlNonceStore(runtime.store.engine)
