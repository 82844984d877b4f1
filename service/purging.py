"""Rows that outlive their use are deleted now and then, on the write path: codes, login
sessions, OpenID Connect codes and tokens a day after their expiry (:data:`RETENTION_S`; the
usage audit stays), the nonces of signatures as soon as their window has passed."""
from __future__ import annotations

import threading

from sqlalchemy import Table, delete

from essc.core.masking import get_logger

from .writers import writing

__all__ = ["Purger", "RETENTION_S"]

#: codes, login sessions and tokens are deleted this long after their expiry (the audit stays)
RETENTION_S = 86400.0

log = get_logger("essc.service.purging")


class Purger:
    """Deletes the rows of ``table`` whose ``expires_at`` is older than ``retention_s``, at most
    once per ``every_s`` per process (opportunistic: called on the write path, a failure waits
    for the next turn)."""

    def __init__(self, engine, table: Table, every_s: float = 60.0, retention_s: float = RETENTION_S) -> None:
        self.engine, self.table, self.every_s, self.retention_s = engine, table, every_s, retention_s
        self._lock = threading.Lock()
        self._next = 0.0

    def __call__(self, now: float) -> None:
        with self._lock:
            if now < self._next:
                return
            self._next = now + self.every_s
        try:
            with writing(self.engine) as conn:
                purged = conn.execute(delete(self.table).where(self.table.c.expires_at < now - self.retention_s))
            if purged.rowcount:
                log.debug("purged %d old row(s) of %s", purged.rowcount, self.table.name)
        except Exception:
            log.warning("purging old rows of %s failed", self.table.name, exc_info=True)
