"""A plugin's time budget: read from its manifest (:mod:`essc.core.settings`), spent by the
HTTP helper (:mod:`essc.core.http`). A module of its own so neither imports the other."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """A plugin's time budget (from its manifest)."""

    connect_s: float = 2.0
    read_s: float = 5.0
    total_s: float = 8.0
    retries: int = 1
