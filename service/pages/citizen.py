"""The citizen's page session: what a launch puts in the cookie and how views read it.

The cookie (essc.service.pages.cookies) is signed, not encrypted: the ID number and name
are sealed with the service secret before they go in (``who``); the page shows only masked
hints. Keys: ``ch`` channel, ``who`` sealed citizen, ``hint`` masked ID, ``nm`` masked name,
``ret`` return URL, ``ln`` launch nonce, ``agreed`` terms accepted, ``city`` chosen city,
``act`` activation id, ``face`` sealed liveness token of the simulated capture.
"""
from __future__ import annotations

import functools

from flask import current_app, session

from essc.core.masking import mask_id, mask_name

from .common import problem
from .launch import Launch

KEYS = ("ch", "who", "hint", "nm", "ret", "ln", "agreed", "city", "act", "face")


def state():
    return current_app.extensions["essc"]


def sealer():
    return state().runtime.service.sealer


def start(launch: Launch) -> None:
    """A new page session for an accepted launch (whatever was there before is dropped)."""
    session.clear()
    session.permanent = True
    session.update(ch=launch.channel, who=sealer().seal({"id_number": launch.id_number, "name": launch.name}),
                   hint=mask_id(launch.id_number), nm=mask_name(launch.name), ret=launch.return_url, ln=launch.nonce)


def who() -> dict:
    """The citizen's ID number and name (personal data: pass it on, never log or show it)."""
    return sealer().unseal(session["who"])


def seal(value: str) -> str:
    return sealer().seal({"v": value})


def unseal(token: str) -> str:
    return sealer().unseal(token)["v"]


def required(view):
    """The view needs a launched page session; without one, the citizen is told to start again
    from the channel (401)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("ch") or not session.get("who"):
            return problem("页面已过期", "没有找到您的办理信息，可能是页面已过期或 Cookie 被禁用。",
                           "请回到您使用的 App（如支付宝、微信、银行 App），重新进入电子社保卡申领。", 401,
                           reason="session")
        return view(*args, **kwargs)

    return wrapper
