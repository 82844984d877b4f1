"""The mock's virtual clock: ``now = offset + (real seconds since reset if realtime)``.

Not thread-safe on its own: :class:`~essc.mockserver.state.MockState` guards it.
"""
from __future__ import annotations

import datetime as dt
import math
import time

__all__ = ["CLOCK_MODES", "CHINA_TZ", "MAX_VIRTUAL_S", "VirtualClock"]

CLOCK_MODES = ("realtime", "frozen")
#: How far the virtual clock may run from its reset (100 years): its calendar time stays a date.
MAX_VIRTUAL_S = 100 * 366 * 86_400
#: Calendar dates (signDate, validate) are written in China Standard Time.
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


class VirtualClock:
    """Seconds since the last reset, frozen or running; plus the calendar time they map to."""

    def __init__(self, mode: str = "realtime") -> None:
        if mode not in CLOCK_MODES:
            raise ValueError(f"clock mode must be one of {CLOCK_MODES}, not {mode!r}")
        self.mode = mode
        self.offset = 0.0
        self._started = time.monotonic()
        #: The calendar time of virtual second 0 (the wall clock at reset, whole seconds).
        self.epoch = dt.datetime.now(CHINA_TZ).replace(microsecond=0)

    def now(self) -> float:
        """Virtual seconds since reset."""
        if self.mode == "realtime":
            return self.offset + (time.monotonic() - self._started)
        return self.offset

    def advance(self, seconds: float) -> None:
        """Move on by ``seconds`` (finite, >= 0, not past :data:`MAX_VIRTUAL_S`): ``ValueError``."""
        if not math.isfinite(seconds) or seconds < 0 or self.now() + seconds > MAX_VIRTUAL_S:
            raise ValueError(f"cannot advance the clock by {seconds!r} s")
        self.offset += seconds

    def set_mode(self, mode: str) -> None:
        if mode not in CLOCK_MODES:
            raise ValueError(f"clock mode must be one of {CLOCK_MODES}, not {mode!r}")
        if mode != self.mode:
            self.offset = self.now()  # keep the virtual time where it is
            self._started = time.monotonic()
            self.mode = mode

    def datetime(self, at: float | None = None) -> dt.datetime:
        """The calendar time of virtual second ``at`` (default: now)."""
        return self.epoch + dt.timedelta(seconds=self.now() if at is None else at)

    def as_dict(self) -> dict:
        now = self.now()
        return {"mode": self.mode, "now": round(now, 3), "datetime": self.datetime(now).isoformat(timespec="seconds")}
