"""``essc demo``: a scripted tour of the activation service on embedded defaults.

Four citizens, four outcomes, each through the two steps (submit: the card record is read;
verify: face + SMS code, then the credential): activated in a supported city; a city that has not opened
the service; a record not synced yet (pending, then activated once the mock's clock
passes the sync delay); a card reported lost. Then the e-SSC in use (essc.service.demo_use): the
code verified at a pharmacy, a portal login through OpenID Connect, a lost card blocking the
code; and payment enabled, a hospital bill settled, a second bill failing at its confirmation and
reversed (essc.service.demo_settlement). Ends with a summary table.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from essc.core import naming
from essc.core.masking import mask_name
from essc.mockserver.client import MockAdmin

from . import states
from .cli_flow import settle
from .config import ServiceConfig
from .demo_settlement import CITY as SETTLE_CITY
from .demo_settlement import run_scene as settlement_scene
from .demo_use import run_scenes
from .local import local_runtime

VERIFY = {"face_token": "live-demo", "sms_code": "123456"}  # the mock's accepted checks (docs/dialects.md)


@dataclass
class Scene:
    title: str
    city: str
    scenario: str
    expect: str
    sync_delay_s: float | None = None


SCENES = (
    Scene("supported city", "330100", "normal", states.ACTIVATED),
    Scene("city has not opened the e-SSC service", "460300", "normal", states.CITY_NOT_OPENED),
    Scene("record not synced yet", "110000", "normal", states.ACTIVATED, sync_delay_s=3),
    Scene("card reported lost", "330100", "reported_lost", states.CARD_STATUS_ABNORMAL),
)


def _outcome(act: dict) -> str:
    if act["status"] == states.ACTIVATED:
        c = naming.credential(act["credential"])
        return f"sign_no {c['sign_no']}, level {c['sign_level']}, valid to {c['valid_until']}"
    err = act.get("error") or {}
    return err.get("message_zh", "") + (f" ({act['card_status']})" if act.get("card_status") else "")


def _show_pending(status, act: dict) -> None:
    if act["status"] in states.PENDING:
        why = (act.get("error") or {}).get("message_zh", "")
        wait = max(0, act["next_attempt_at"] - time.time())
        status.update(f"[yellow]{act['status']}[/]: {why} — retry at +{wait:.1f}s")


def run(console, data_dir: Path | None = None, wait_s: float = 30.0) -> bool:
    """Run every scene; print progress and the summary; return True if all ended as expected."""
    from rich.table import Table

    with tempfile.TemporaryDirectory(prefix="essc-demo-") as tmp:
        config = ServiceConfig(data_dir=data_dir or Path(tmp), retry_base_s=0.5, retry_cap_s=5.0)
        with local_runtime(config) as (rt, mock_url):
            admin = MockAdmin(mock_url) if mock_url else None
            names = {c.code: c.name for c in rt.registry.cities()}
            rows = []
            for n, scene in enumerate(SCENES, 1):
                console.rule(f"[bold]{n}. {scene.title}[/] — {names.get(scene.city, scene.city)} {scene.city}")
                if admin is None:
                    console.print("[yellow]real city endpoints configured: the demo needs the mock[/]")
                    return False
                if scene.sync_delay_s is not None:
                    admin.set_city(scene.city, mode="delayed", sync_delay_s=scene.sync_delay_s)
                citizen = admin.citizen(scene.city, scene.scenario)
                console.print(f"citizen {mask_name(citizen['name'])} ({citizen['id_number'][:3]}…), "
                              "consent given, city chosen; reading the card record…")
                started = time.monotonic()
                act = rt.service.submit(city=scene.city, id_number=citizen["id_number"], name=citizen["name"],
                                        consent=True, channel="demo")
                with console.status(f"status: {act['status']}") as status:
                    act = settle(rt, act, wait_s, lambda a: _show_pending(status, a))
                    if act["status"] == states.AWAITING_VERIFICATION:
                        status.update("card record read; face recognition + identity check…")
                        act, _ = rt.service.verify(act["id"], channel="demo", **VERIFY)
                        act = settle(rt, act, wait_s, lambda a: _show_pending(status, a))
                for ev in rt.store.audit(act["id"]):
                    console.print(f"  [dim]{time.strftime('%H:%M:%S', time.localtime(ev['at']))}[/] "
                                  f"{ev['event']:<20} {ev['detail'] or ''}")
                ok = act["status"] == scene.expect
                colour = "green" if ok else "red"
                console.print(f"[{colour}]→ {act['status']}[/] {_outcome(act)}")
                rows.append((str(n), scene.title, f"{names.get(scene.city, '')} {scene.city}", act["status"],
                             _outcome(act), f"{time.monotonic() - started:.1f}s", "✓" if ok else "✗"))
            for n, used in enumerate(run_scenes(console, rt, admin, wait_s, first=len(rows) + 1), len(rows) + 1):
                rows.append((str(n), used.title, used.city, used.status, used.outcome, f"{used.took:.1f}s",
                             "✓" if used.ok else "✗"))
            if admin is not None:
                console.rule(f"[bold]{len(rows) + 1}. payment and medical settlement[/] — "
                             f"{names.get(SETTLE_CITY, '')} {SETTLE_CITY}")
                started = time.monotonic()
                for title, final, outcome, ok in settlement_scene(console, rt, admin, wait_s):
                    rows.append((str(len(rows) + 1), title, f"{names.get(SETTLE_CITY, '')} {SETTLE_CITY}", final,
                                 outcome, f"{time.monotonic() - started:.1f}s", "✓" if ok else "✗"))
            table = Table(title="e-SSC demo — summary", expand=True)
            for col, ratio in (("#", None), ("scene", 6), ("city", 4), ("final status", 6), ("outcome", 9),
                               ("took", None), ("ok", None)):
                table.add_column(col, ratio=ratio, overflow="fold", no_wrap=ratio is None)
            for row in rows:
                table.add_row(*row)
            console.print(table)
            return all(r[-1] == "✓" for r in rows)
