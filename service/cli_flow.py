"""The progress display of ``essc activate``: the seed's steps, one line each."""
from __future__ import annotations

import time

from essc.core import divisions, naming
from essc.core.errors import InvalidInput
from essc.core.masking import mask_id

from . import states

STEPS = (
    ("consent_given", "agreed to the terms"),
    ("city_chosen", "city chosen"),
    ("card_read", "card record read from the city system"),
    ("identity_verified", "face recognition + identity check passed"),
    ("activated", "e-SSC activated: credential issued"),
)


def resolve_city(registry, text: str) -> str:
    """A city code from a code, a Chinese name, full pinyin or initials, over the whole country
    (a city no plugin serves is resolved too: its activation ends city_not_opened)."""
    text = text.strip()
    if len(text) == 6 and text.isdigit():
        return text  # any code: the service says what is wrong with it
    from .cities import CityDirectory

    found = CityDirectory(registry).find(text)
    if not found:
        raise InvalidInput(f"no city matches {text!r}", field="city", rule="unknown-city")
    exact = [c for c in found if text in (c.name, c.short)]
    if len(found) > 1 and len(exact) != 1:
        names = ", ".join(f"{c.short} {c.code}" for c in found[:5])
        raise InvalidInput(f"{text!r} matches several cities: {names}", field="city", rule="ambiguous")
    return (exact or found)[0].code


def settle(runtime, act: dict, wait_s: float, on_wait=None, poll_s: float = 0.2) -> dict:
    """Follow an activation until it leaves the queue's hands (card read, final) or ``wait_s``
    passes; ``on_wait(act)`` is called at every poll while it is pending."""
    deadline = time.monotonic() + wait_s
    while act["status"] in states.RUNNABLE and time.monotonic() < deadline:
        if on_wait is not None:
            on_wait(act)
        time.sleep(poll_s)
        act = runtime.store.get(act["id"])
    return act


def walk(console, runtime, city, id_number, name, face_token, sms_code, password, wait_s, channel="cli"):
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from essc.core.errors import EsscError

    info, place = runtime.registry.served(city), divisions.city(city)
    where = f"{info.name} {city} ({info.province})" if info else f"{place.name if place else '?'} {city}"
    console.print(f"activating the e-SSC of {mask_id(id_number)} in {where}")
    credential = None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as progress:
        task = progress.add_task("reading the card record from the city system…")

        def show(act):
            err = act.get("error") or {}
            progress.update(task, description=f"{act['status']}: {err.get('message_zh', 'working…')}")

        act = runtime.service.submit(city=city, id_number=id_number, name=name, consent=True, channel=channel)
        act = settle(runtime, act, wait_s, show)
        if act["status"] == states.AWAITING_VERIFICATION:
            progress.update(task, description="face recognition + identity check…")
            try:
                act, credential = runtime.service.verify(act["id"], channel=channel, face_token=face_token,
                                                         sms_code=sms_code, password=password)
            except EsscError as err:
                act = runtime.store.get(act["id"])
                act = {**act, "error": err.to_dict()}
            act = settle(runtime, act, wait_s, show)
    done = {ev["event"] for ev in runtime.store.audit(act["id"])}
    for event, text in STEPS:
        mark = "[green]✓[/]" if event in done else "[dim]·[/]"
        console.print(f" {mark} {text}")
    if act["status"] == states.ACTIVATED:
        c = naming.credential(credential or act["credential"])
        console.print(f"[bold green]activated[/]: sign_no {c['sign_no']}, sign level {c['sign_level']}, "
                      f"signed {c['sign_date']}, valid until {c['valid_until']}")
    else:
        failure = act.get("error") or {}
        console.print(f"[bold red]{act['status']}[/]: {failure.get('message_zh', '')} — {failure.get('message_en', '')}"
                      + (f" (card status: {act['card_status']})" if act.get("card_status") else ""))
        if act["status"] in states.PENDING:
            console.print("the activation stays queued and is retried automatically")
    return act
