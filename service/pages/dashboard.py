"""What the operator console shows, read from the service: activations by outcome and by city
over a period (and the geometry of their chart), the pending-sync queue with masked hints only,
the latest contract report's tiers, and on-demand health probes of the served cities.

Nothing here returns personal data: activations are counted, and the queue lists the masked ID
hint the store keeps (``110***********803X``), never an ID number or a name.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from essc.core.errors import EsscError

from .. import states
from ..models import Activation

A = Activation.__table__

#: outcome groups of the chart, in order: (key, label, statuses, colour)
OUTCOMES = (
    ("activated", "已签发", (states.ACTIVATED,), "#1b7f3b"),
    ("in_progress", "办理中", (states.RECEIVED, states.AWAITING_VERIFICATION, states.VERIFIED), "#2c7be5"),
    ("pending", "待同步/重试", states.PENDING, "#e0a100"),
    ("not_opened", "暂未开通", (states.CITY_NOT_OPENED,), "#8a939e"),
    ("abnormal", "卡状态异常", (states.CARD_STATUS_ABNORMAL,), "#c05621"),
    ("identity_failed", "核验锁定", (states.IDENTITY_FAILED,), "#7b3fa0"),
    ("failed", "失败/超时", (states.FAILED, states.EXPIRED), "#b3261e"),
)
_GROUP_OF = {status: key for key, _label, statuses, _colour in OUTCOMES for status in statuses}
PERIODS = {1: "24 小时", 7: "7 天", 30: "30 天"}
REPORT_FORMAT = "essc-contract-report/1"


def group_of(status: str) -> str:
    return _GROUP_OF.get(status, "failed")


@dataclass
class Activity:
    total: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_city: list[tuple[str, dict[str, int], int]] = field(default_factory=list)  # (city, outcomes, total)


def activity(engine, since: float) -> Activity:
    """Activations created since ``since`` (Unix seconds), by outcome group and by city (busiest first)."""
    query = (select(A.c.city, A.c.status, func.count()).where(A.c.created_at >= since)
             .group_by(A.c.city, A.c.status))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = Activity()
    cities: dict[str, dict[str, int]] = {}
    for city, status, count in rows:
        key = group_of(status)
        out.total += count
        out.by_outcome[key] = out.by_outcome.get(key, 0) + count
        per = cities.setdefault(city, {})
        per[key] = per.get(key, 0) + count
    out.by_city = sorted(((c, per, sum(per.values())) for c, per in cities.items()), key=lambda r: (-r[2], r[0]))
    return out


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    colour: str
    x: float
    width: float
    count: int


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    total: int
    segments: tuple[Segment, ...]


def chart(by_city: list[tuple[str, dict[str, int], int]], names: dict[str, str], *, top: int = 12,
          width: float = 640.0, label_w: float = 90.0, bar_h: float = 18.0, gap: float = 8.0) -> dict[str, Any]:
    """The geometry of a stacked horizontal bar chart (one bar per city, busiest first, segments
    by outcome), drawn as inline SVG by the template."""
    rows = by_city[:top]
    peak = max((total for _c, _per, total in rows), default=0) or 1
    plot_w = width - label_w - 50
    bars = []
    for i, (city, per, total) in enumerate(rows):
        x, segments = label_w, []
        for key, label, _statuses, colour in OUTCOMES:
            count = per.get(key, 0)
            if count:
                w = plot_w * count / peak
                segments.append(Segment(key, label, colour, round(x, 1), round(max(w, 1.0), 1), count))
                x += w
        bars.append(Bar(names.get(city, city), i * (bar_h + gap), total, tuple(segments)))
    height = max(len(bars), 1) * (bar_h + gap) + 4
    return {"bars": bars, "width": width, "height": height, "bar_h": bar_h, "label_w": label_w,
            "legend": [(label, colour) for _k, label, _s, colour in OUTCOMES]}


def pending(engine, limit: int = 50) -> tuple[int, list[dict]]:
    """(how many activations wait for a retry, the first ``limit`` by next attempt): masked hints only."""
    where = A.c.status.in_(states.PENDING)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(A).where(where)).scalar_one()
        rows = conn.execute(select(A.c.id, A.c.id_hint, A.c.city, A.c.channel, A.c.status, A.c.runs,
                                   A.c.created_at, A.c.next_attempt_at)
                            .where(where).order_by(A.c.next_attempt_at).limit(limit)).mappings().all()
    return int(count), [dict(r) for r in rows]


def read_report(folder: Path | None) -> dict | None:
    """The latest contract report in ``folder`` (``essc contract --report DIR``): its run and the
    tier of each city, or None when there is none (or it is not a contract report)."""
    if folder is None:
        return None
    path = Path(folder) / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        return None
    run = data.get("run") or {}
    tiers = {code: (city or {}).get("tier") for code, city in (data.get("cities") or {}).items()}
    return {"finished_at": run.get("finished_at"), "commit": run.get("commit"), "summary": data.get("summary") or {},
            "tiers": tiers, "html": (Path(folder) / "index.html").is_file()}


@dataclass(frozen=True)
class Probe:
    status: str  #: the city's answer ("up", ...) or the error code
    latency_ms: float | None
    at: float


class HealthBoard:
    """Health probes of served cities, run when an operator asks (``probe``) and kept until the
    next one: the console shows each city's last answer and its age."""

    def __init__(self, workers: int = 8) -> None:
        self.results: dict[str, Probe] = {}
        self.workers = workers
        self._lock = threading.Lock()

    def probe(self, registry, codes: list[str]) -> None:
        def one(code: str) -> tuple[str, Probe]:
            started = time.monotonic()
            try:
                answer = registry.call(code, "health", {"aab301": code})
                return code, Probe(str(answer.get("status")), answer.get("latency_ms"), time.time())
            except EsscError as err:
                return code, Probe(err.code, round((time.monotonic() - started) * 1000, 1), time.time())

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="essc-health") as pool:
            found = dict(pool.map(one, codes))
        with self._lock:
            self.results.update(found)
