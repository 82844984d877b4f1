"""The citizen's activation pages (H5), opened from a channel app with a signed launch URL.

Flow (docs/domain.md "The activation flow"): launch -> terms (agree) -> city list (grouped by
province, A-Z index, search) -> confirm (agree again) -> the activation page, which follows
the activation live: reading the card, not yet synced, face step (a simulated liveness
capture) + SMS code or e-SSC password, then the result; finally back to the channel with a
signed outcome (essc.service.pages.launch). Every step calls the activation service on behalf
of the launch's channel, with exactly the API's rules.

Routes: ``GET /h5/launch``, ``GET|POST /h5/terms``, ``GET|POST /h5/cities``, ``GET|POST
/h5/confirm``, ``GET /h5/activation``, ``GET /h5/activation/state`` (JSON, long-poll),
``POST /h5/face``, ``POST /h5/verify``, ``POST /h5/restart``, ``POST /h5/return``. Every POST
carries a CSRF token (Flask-WTF); the session is a signed cookie (essc.service.pages.cookies).
"""
from __future__ import annotations

import secrets
import time

import segno
from flask import flash, jsonify, redirect, render_template, request, session, url_for

from essc.core import naming
from essc.core.errors import EsscError, IdentityMismatch, InvalidInput, RetryableError
from essc.core.idnumber import validate_id_number
from essc.core.masking import get_logger

from .. import states
from ..errors import ActivationConflict, ActivationNotFound, IdentityLocked, VerificationBusy
from ..names import check_name
from . import citizen, citylist, stages
from .citizen import required, state
from .common import page_blueprint, problem
from .launch import (
    ACTION_ISSUED,
    ACTION_NOT_ISSUED,
    CLOCK_SKEW_S,
    LaunchRefused,
    open_launch,
    open_ticket,
    signed_return_url,
)
from .refusals import refusal_page

bp = page_blueprint("h5", "/h5")
log = get_logger("essc.service.pages")

MAX_QUERY = 64
STATE_WAIT_S = 20.0  #: longest long-poll of the activation page


@bp.get("/launch")
def launch():
    st, address = state(), request.remote_addr or ""
    if st.throttle is not None and st.throttle.retry_after("", address) is not None:
        return refusal_page("throttled")
    try:
        if "ticket" in request.args:  # a launch ticket from POST /v1/launch-tickets
            accepted = open_ticket(st.runtime.service.sealer, request.args["ticket"], st.channels.channels)
        else:
            accepted = open_launch(request.args, st.channels.channels)
        try:
            validate_id_number(accepted.id_number, field="id_number")
            check_name(accepted.name, field="name")
        except InvalidInput as err:
            raise LaunchRefused("citizen", f"{err.details.get('field')}: {err.details.get('rule')}") from None
    except LaunchRefused as refused:
        if refused.reason in ("bad_signature", "citizen") and st.throttle is not None:
            st.throttle.failed("", address)
        log.info("launch refused (%s): %s", refused.reason, refused.detail)
        return refusal_page(refused.reason)
    if session.get("ln") == accepted.nonce and session.get("ch") == accepted.channel:
        return redirect(url_for(".resume"), 303)  # the same launch again (back button): go on
    if not st.nonces.claim(accepted.channel, "launch." + accepted.nonce,
                           expires_at=accepted.expires + CLOCK_SKEW_S + 1, now=time.time()):
        log.info("launch refused (replayed) for channel %s", accepted.channel)
        return refusal_page("replayed")
    citizen.start(accepted)
    log.info("launch accepted for %s via %s", session["hint"], accepted.channel)
    return redirect(url_for(".terms"), 303)


@bp.get("/")
@required
def resume():
    """Where this page session stands."""
    if session.get("act"):
        return redirect(url_for(".activation"), 303)
    if session.get("city"):
        return redirect(url_for(".confirm"), 303)
    return redirect(url_for(".cities" if session.get("agreed") else ".terms"), 303)


@bp.route("/terms", methods=["GET", "POST"])
@required
def terms():
    if request.method == "POST":
        if request.form.get("agree") != "yes":
            return render_template("h5/terms.html", error="请阅读并勾选同意《电子社保卡服务协议》后继续。"), 400
        session["agreed"] = True
        return redirect(url_for(".cities"), 303)
    return render_template("h5/terms.html", error=None)


@bp.route("/cities", methods=["GET", "POST"])
@required
def cities():
    if not session.get("agreed"):
        return redirect(url_for(".terms"), 303)
    st = state()
    if request.method == "POST":
        code = request.form.get("city", "")
        if st.cities.place(code) is None:
            flash("请从列表中选择参保城市。")
            return redirect(url_for(".cities"), 303)
        session["city"] = code
        session.pop("act", None)
        session.pop("face", None)
        return redirect(url_for(".confirm"), 303)
    query = request.args.get("q", "")[:MAX_QUERY]
    found = st.cities.find(query)
    if query.strip():  # best first, as the search ranks them
        return render_template("h5/cities.html", results=citylist.rows(st.cities, found), q=query, count=len(found))
    provinces = citylist.group(st.cities, found)
    return render_template("h5/cities.html", results=None, provinces=provinces, letters=citylist.letters(provinces),
                           q=query, count=len(found))


def _city_name(code: str) -> str:
    place = state().cities.place(code)
    return (place.short or place.name) if place else code


@bp.route("/confirm", methods=["GET", "POST"])
@required
def confirm():
    code = session.get("city")
    if not code or not session.get("agreed"):
        return redirect(url_for(".cities"), 303)
    place = state().cities.place(code)
    if place is None:
        return redirect(url_for(".cities"), 303)
    info = {"name": place.short or place.name, "province": state().cities.province_row(place.province)["name"]}
    if request.method == "GET":
        return render_template("h5/confirm.html", city=info, error=None)
    if request.form.get("agree") != "yes":
        return render_template("h5/confirm.html", city=info, error="请勾选同意授权后继续。"), 400
    st, person = state(), citizen.who()
    try:
        act = st.runtime.service.submit(city=code, id_number=person["id_number"], name=person["name"], consent=True,
                                        channel=session["ch"])
    except RetryableError as err:  # the service or the city is busy: nothing was recorded
        st.metrics.count_submission(err.code.lower())
        return problem("系统繁忙", err.message_zh, "请稍等片刻后重新提交，您的授权不会丢失。", 503, back=True)
    except EsscError as err:
        st.metrics.count_submission(err.code.lower())
        log.warning("page submission refused: %s", err.code)
        return problem("暂时无法办理", err.message_zh, "请重新选择参保城市，或回到 App 稍后再试。", err.http_status,
                       back=True)
    st.metrics.count_submission(act["status"])
    session["act"] = act["id"]
    return redirect(url_for(".activation"), 303)


def _own_activation() -> dict | None:
    act_id = session.get("act")
    act = state().runtime.store.get(act_id) if act_id else None
    if act is None or act["channel"] != session.get("ch"):
        return None
    return act


@bp.get("/activation")
@required
def activation():
    act = _own_activation()
    if act is None:
        return redirect(url_for(".resume" if not session.get("act") else ".cities"), 303)
    return _activation_page(act)


def _activation_page(act: dict, status: int = 200, **extra):
    stage = stages.stage_of(act)
    if stage == "abnormal":
        extra["card"] = stages.CARD_STATUS.get(act.get("card_status") or "")
    elif stage == "locked":
        ident = state().runtime.store.identity(act["citizen_key"], act["city"]) or {}
        left = (ident.get("locked_until") or 0) - time.time()
        extra["locked_minutes"] = stages.minutes(left) if left > 0 else 0
    elif stage == "activated":
        extra["credential"] = naming.credential(act["credential"])
    elif stage == "verify":
        extra["notice"] = stages.verify_notice(act["error"])
    return render_template("h5/activation.html", act=act, stage=stage, city_name=_city_name(act["city"]),
                           face_ready=bool(session.get("face")), moving=stage in stages.MOVING,
                           wait_s=STATE_WAIT_S, **extra), status


def _dynamic_code(act: dict) -> dict:
    """A fresh dynamic code of the activated e-SSC (essc.service.qrcodes, as the channel's API
    gives it) with its QR image as inline SVG."""
    answer = state().qrcodes.issue(act["id"], session["ch"])
    svg = segno.make(answer["qrcode"], error="m").svg_inline(border=2, omitsize=True, title="电子社保卡动态码")
    svg = svg.replace("<svg ", '<svg role="img" ', 1)
    return {"qrcode": answer["qrcode"], "svg": svg, "expires_at": answer["expires_at"], "ttl_s": answer["ttl_s"]}


@bp.post("/qrcode")
@required
def qrcode_page():
    """The activated page with a fresh dynamic code (without JavaScript)."""
    act = _own_activation()
    if act is None:
        return redirect(url_for(".resume"), 303)
    try:
        return _activation_page(act, qr=_dynamic_code(act))
    except EsscError as err:
        return _activation_page(act, err.http_status, qr_error=err.message_zh)


@bp.post("/qrcode.json")
@required
def qrcode_json():
    """``{qrcode, svg, expires_at, ttl_s}``: a fresh dynamic code (the page refreshes it before it
    expires); the refusals are the API's (``NOT_ACTIVATED``, ``CARD_STATUS_ABNORMAL``...)."""
    act = _own_activation()
    if act is None:
        return jsonify({"error": ActivationNotFound("no activation in this page session").to_dict()}), 404
    try:
        answer = _dynamic_code(act)
    except EsscError as err:
        return jsonify({"error": err.to_dict()}), err.http_status
    return jsonify(answer), 201


@bp.get("/activation/state")
@required
def activation_state():
    """``{"stage", "status", "final"}``; with ``?stage=S&wait=N`` answered when the stage is no
    longer S (at most N seconds, capped at STATE_WAIT_S)."""
    runtime = state().runtime
    act = _own_activation()
    if act is None:
        return jsonify({"error": ActivationNotFound("no activation in this page session").to_dict()}), 404
    try:
        wait = min(max(float(request.args.get("wait", "0")), 0.0), STATE_WAIT_S)
    except ValueError:
        wait = 0.0
    known, deadline = request.args.get("stage"), time.monotonic() + wait
    seen = runtime.store.changes.version(act["id"])
    while stages.stage_of(act) == known and time.monotonic() < deadline:
        runtime.store.changes.wait(act["id"], seen, min(deadline - time.monotonic(), 0.5))
        seen = runtime.store.changes.version(act["id"])
        act = runtime.store.get(act["id"])
    stage = stages.stage_of(act)
    return jsonify({"stage": stage, "status": act["status"], "final": stage in stages.FINAL})


@bp.post("/face")
@required
def face():
    """The simulated liveness capture: a one-time liveness token, kept sealed in the session
    until the identity check uses it. Nothing is captured (the page says so)."""
    if _own_activation() is None:
        return redirect(url_for(".resume"), 303)
    session["face"] = citizen.seal("live-sim-" + secrets.token_urlsafe(16))
    return redirect(url_for(".activation", _anchor="code"), 303)


@bp.post("/verify")
@required
def verify():
    st, act = state(), _own_activation()
    if act is None:
        return redirect(url_for(".resume"), 303)
    if not session.get("face"):
        flash("请先完成人脸识别（模拟采集）。")
        return redirect(url_for(".activation"), 303)
    factor = request.form.get("factor", "sms")
    code = request.form.get("code", "").strip()
    face_token = citizen.unseal(session.pop("face"))  # used once, whatever the outcome
    second = {"password": code} if factor == "password" else {"sms_code": code}
    try:
        done, _ = st.runtime.service.verify(act["id"], channel=session["ch"], face_token=face_token, **second)
        st.metrics.count_verification(done["status"])
    except IdentityMismatch as err:  # recorded on the activation: its page says it (also after a 202)
        st.metrics.count_verification(err.code.lower())
    except IdentityLocked as err:
        st.metrics.count_verification(err.code.lower())
        now = _own_activation()
        if now is None or now["status"] != states.IDENTITY_FAILED:  # else its page says it
            wait = float(err.details.get("retry_after") or 60)
            flash(f"身份核验失败次数过多，已暂停核验。请 {stages.minutes(wait)} 分钟后再试。")
    except InvalidInput:
        flash("验证码或密码应为 6 位数字，请重新输入。")
    except (VerificationBusy, ActivationConflict, ActivationNotFound, RetryableError):
        pass  # the activation page shows where it stands (a city outage is recorded on it)
    return redirect(url_for(".activation"), 303)


@bp.post("/restart")
@required
def restart():
    """Choose another city (after a failure, or before submitting)."""
    for key in ("city", "act", "face"):
        session.pop(key, None)
    return redirect(url_for(".cities"), 303)


@bp.post("/return")
@required
def back_to_channel():
    """Back to the channel: the return URL with the signed outcome; the page session ends."""
    st = state()
    channel = st.channels.channels.get(session["ch"])
    act = _own_activation()
    if channel is None or not channel.hmac_secret:  # the channel was removed since the launch
        session.clear()
        return refusal_page("channel")
    issued = act is not None and act["status"] == states.ACTIVATED
    url = signed_return_url(session["ret"], channel.hmac_secret, channel=channel.name,
                            action=ACTION_ISSUED if issued else ACTION_NOT_ISSUED,
                            activation=act["id"] if act else "", status=act["status"] if act else "",
                            city=act["city"] if act else session.get("city", ""))
    session.clear()
    return redirect(url, 303)

