"""What the citizen's page shows for an activation: its **stage** and the words for it.

One activation status (essc.service.states) maps to one stage of the page; the waiting stages
are followed live by the page (long-poll, or a refresh without JavaScript). The wording of
failures follows docs/domain.md ("Failure wording", "Card statuses"), with what to do next.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .. import states

#: stages whose page follows the activation by itself (it is about to change)
MOVING = ("reading", "pending_sync", "pending_upstream", "checking", "issuing")
FINAL = ("activated", "not_opened", "abnormal", "locked", "expired", "failed")


@dataclass(frozen=True)
class CardAdvice:
    label: str  #: the status as the citizen knows it
    advice: str  #: what to do


CARD_STATUS = {
    "reported_lost": CardAdvice("挂失", "您的社保卡处于挂失状态。请先到参保地社保经办机构或社保卡合作银行网点"
                                        "办理解挂或补换卡，办理完成后再来申领电子社保卡。"),
    "sealed": CardAdvice("封存", "您的社保卡已制作，但社保功能尚未启用。请携带本人身份证到社保卡服务网点或"
                                 "合作银行启用社保卡后再试。"),
    "cancelled": CardAdvice("注销", "您的社保卡已注销。补换新卡后电子社保卡会自动恢复，请先办理补换卡。"),
    "locked": CardAdvice("应用锁定", "您的社保卡应用已锁定（例如密码输错次数过多）。请到社保卡服务网点或"
                                     "合作银行解锁后再试。"),
}


def stage_of(act: dict, now: float | None = None) -> str:
    """The page stage of an activation (a row of the store)."""
    status = act["status"]
    if status in (states.RECEIVED,):
        return "reading"
    if status == states.VERIFIED:
        return "issuing"
    if status == states.PENDING_SYNC:
        return "pending_sync"
    if status == states.PENDING_UPSTREAM:
        return "pending_upstream"
    if status == states.AWAITING_VERIFICATION:
        now = time.time() if now is None else now
        if (act.get("lease_until") or 0) > now:
            return "checking"  # an identity check is running (slower than the answer budget)
        return "verify"
    return {states.ACTIVATED: "activated", states.CITY_NOT_OPENED: "not_opened",
            states.CARD_STATUS_ABNORMAL: "abnormal", states.IDENTITY_FAILED: "locked",
            states.EXPIRED: "expired"}.get(status, "failed")


def minutes(seconds: float) -> int:
    """Whole minutes to show for a wait (at least 1)."""
    return max(1, int(-(-seconds // 60)))


def verify_notice(error: dict | None) -> str | None:
    """What the identity step says about the last check of this activation (recorded on it, so
    that a check slower than the answer budget is reported too), or None."""
    if not error:
        return None
    if error.get("code") == "IDENTITY_MISMATCH":
        left = (error.get("details") or {}).get("attempts_left")
        return "人脸与身份不匹配，请重新核验。" + (f"还可尝试 {left} 次。" if left is not None else "")
    if error.get("retryable"):
        return "参保城市系统暂时不可用，请稍后再试；已完成的步骤不会丢失。"
    return "核验已失效，请重新完成人脸识别和验证码核验。"
