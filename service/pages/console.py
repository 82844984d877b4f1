"""The operator console (``/console``): every city of the country with its plugin, version,
tier, opened flag, circuit state and last health probe; quarantined plugins with their
reasons; activations by outcome and by city over a period (an inline SVG chart); the
pending-sync queue (masked hints only); the latest contract report.

Behind an operator login (essc.service.pages.operators): a signed session cookie
(``essc_console``, path /console, HttpOnly, SameSite=Lax, Secure over https) that ends after
``CONSOLE_SESSION_HOURS`` (8) or on logout, CSRF tokens on every form, failed logins throttled.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from flask import current_app, redirect, render_template, request, send_from_directory, session, url_for

from essc.core.masking import get_logger

from . import dashboard
from .common import page_blueprint
from .operators import Operators

bp = page_blueprint("console", "/console")
log = get_logger("essc.service.pages.console")

SHOW = {"all": "全部城市", "served": "有插件的城市", "problems": "需要关注"}


@dataclass
class ConsoleState:
    """``app.extensions["essc_console"]``."""

    operators: Operators
    throttle: object | None  # essc.service.throttle.FailureThrottle
    health: dashboard.HealthBoard
    report_dir: object | None  # Path of the latest contract report


def console():
    return current_app.extensions["essc_console"]


def operator_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("op") or session.get("until", 0) < time.time():
            session.clear()
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for(".login", next=target), 303)
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("console/login.html", error=None, name="")
    state, address = console(), request.remote_addr or ""
    name = request.form.get("username", "").strip()
    if state.throttle is not None:
        wait = state.throttle.retry_after(name, address)
        if wait is not None:
            minutes = max(1, int(-(-wait // 60)))
            return render_template("console/login.html", name=name,
                                   error=f"登录失败次数过多，请 {minutes} 分钟后再试。"), 429
    operator = state.operators.check(name, request.form.get("password", ""), address)
    if operator is None:
        if state.throttle is not None:
            state.throttle.failed(name, address)
        log.info("console login refused for %s", name if state.operators.operators.get(name) else "-")
        return render_template("console/login.html", error="用户名或密码不正确。", name=name), 401
    session.clear()  # a new session: nothing from before the login survives
    session.update(op=operator.name, until=time.time() + float(current_app.config["CONSOLE_SESSION_HOURS"]) * 3600)
    log.info("console login: %s", operator.name)
    target = request.args.get("next") or ""
    return redirect(target if target.startswith("/console") and "//" not in target else url_for(".home"), 303)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for(".login"), 303)


def _days() -> int:
    try:
        days = int(request.args.get("days", "7"))
    except ValueError:
        days = 7
    return days if days in dashboard.PERIODS else 7


def _city_rows(show: str, tiers: dict, probes: dict) -> list[dict]:
    rows = []
    for row in current_app.extensions["essc"].cities.operator_rows():
        row["tier"] = tiers.get(row["code"])
        row["probe"] = probes.get(row["code"])
        problem = (row.get("plugin_state") in ("quarantined", "disabled") or row.get("breaker") in ("open", "half_open")
                   or (row["probe"] is not None and row["probe"].status != "up"))
        row["problem"] = problem
        if show == "served" and not row.get("plugin"):
            continue
        if show == "problems" and not problem:
            continue
        rows.append(row)
    return rows


@bp.get("/")
@operator_required
def home():
    essc, state = current_app.extensions["essc"], console()
    days, show = _days(), request.args.get("show", "served")
    show = show if show in SHOW else "served"
    engine = essc.runtime.store.engine
    activity = dashboard.activity(engine, time.time() - days * 86400)
    names = {p.code: (p.short or p.name) for p in essc.cities.places.values()}
    report = dashboard.read_report(state.report_dir)
    pending_count, pending_rows = dashboard.pending(engine)
    plugins = essc.runtime.registry.plugins
    return render_template(
        "console/home.html", days=days, periods=dashboard.PERIODS, show=show, shows=SHOW, activity=activity,
        chart=dashboard.chart(activity.by_city, names), outcomes=dashboard.OUTCOMES, names=names,
        cities=_city_rows(show, (report or {}).get("tiers", {}), dict(state.health.results)),
        troubled=[p for p in plugins if p.status in ("quarantined", "disabled")], plugin_count=len(plugins),
        pending_count=pending_count, pending=pending_rows, report=report, now=time.time(), operator=session["op"])


@bp.post("/health")
@operator_required
def probe_health():
    """Probe every served city now (in parallel; each within its plugin's time budget)."""
    registry = current_app.extensions["essc"].runtime.registry
    codes = [info.code for info in registry.cities()]
    console().health.probe(registry, codes)
    log.info("health probe of %d cities by %s", len(codes), session["op"])
    return redirect(url_for(".home", **{k: v for k, v in request.args.items() if k in ("days", "show")}), 303)


@bp.get("/report")
@operator_required
def contract_report():
    """The latest contract report's page (``essc contract --report DIR``; personal data scrubbed)."""
    folder = console().report_dir
    if folder is None or dashboard.read_report(folder) is None:
        return render_template("console/message.html", title="没有合同测试报告",
                               message="尚未配置报告目录（ESSC_CONTRACT_REPORT_DIR），或目录中没有 report.json。"), 404
    response = send_from_directory(folder, "index.html", mimetype="text/html")
    # the report is one static page with inline CSS and JS, generated by essc contract
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; "
                                                   "script-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                                                   "frame-ancestors 'none'")
    return response
