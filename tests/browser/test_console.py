"""The operator console in Chromium: login (refused, throttled, accepted), the city table,
activations by outcome and city, the pending-sync queue with masked hints, health probes."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from .conftest import CHANNEL, shot

pytestmark = [pytest.mark.slow, pytest.mark.desktop]


def login(page, live, password="demo-admin"):
    page.goto(live.url + "/console/")
    expect(page.get_by_role("heading", name="运维人员登录")).to_be_visible()
    page.get_by_label("用户名").fill("admin")
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def activations(live) -> list[dict]:
    """A few activations with different outcomes, made through the service as the pages would."""
    service, mock = live.runtime.service, live.mock
    made = []
    for city, scenario in (("330100", "normal"), ("330100", "reported_lost"), ("110000", "normal"),
                           ("460300", "normal")):
        who = mock.citizen(city if city != "460300" else "330100", scenario)
        made.append(service.submit(city=city, id_number=who["id_number"], name=who["name"], consent=True,
                                   channel=CHANNEL))
    return made


def test_login_is_refused_with_a_wrong_password(page, live):
    login(page, live, password="wrong-password")
    expect(page.get_by_role("alert")).to_have_text("用户名或密码不正确。")
    expect(page).to_have_url(re.compile("/console/login"))


def contract_report(live) -> None:
    """A contract report as `essc contract --report DIR` leaves it (the parts the console reads)."""
    live.report_dir.mkdir()
    (live.report_dir / "report.json").write_text(json.dumps({
        "format": "essc-contract-report/1", "run": {"finished_at": "2026-11-27T10:00:00Z"},
        "summary": {"pass": 120, "fail": 0}, "cities": {"330100": {"tier": "gold"}}}), encoding="utf-8")
    (live.report_dir / "index.html").write_text("<!doctype html><title>contract report</title><h1>合同测试报告</h1>",
                                                encoding="utf-8")


def test_the_console_shows_cities_activity_and_the_queue_without_personal_data(page, live):
    made = activations(live)
    contract_report(live)
    login(page, live)
    expect(page.get_by_role("heading", name="概览")).to_be_visible()
    table = page.locator("#city-table")
    hangzhou = table.get_by_role("row").filter(has_text="330100")
    expect(hangzhou).to_contain_text("杭州")
    expect(hangzhou).to_contain_text("zhejiang")
    expect(hangzhou).to_contain_text("已开通")
    expect(hangzhou).to_contain_text("gold")  # its tier in the latest contract report
    expect(page.get_by_role("img", name="各城市申领结果")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"待同步队列（1 笔）"))).to_be_visible()
    beijing = next(a for a in made if a["city"] == "110000")
    expect(page.get_by_role("cell", name=beijing["id_hint"])).to_be_visible()
    for act in made:  # masked hints only: no ID number appears on the page
        who = live.runtime.service.sealer.unseal(live.runtime.store.get(act["id"])["sealed"])
        expect(page.locator("body")).not_to_contain_text(who["id_number"])
        expect(page.locator("body")).not_to_contain_text(who["name"])
    page.get_by_role("button", name="检查健康状态").click()
    expect(hangzhou.get_by_text("up")).to_be_visible()
    shot(page, "console", full_page=True)
    page.get_by_role("link", name="最新报告").click()
    expect(page.get_by_role("heading", name="合同测试报告")).to_be_visible()
    page.go_back()
    page.get_by_label("城市", exact=True).select_option("all")
    page.get_by_role("button", name="应用").click()
    expect(page.get_by_role("heading", name=re.compile(r"城市（3\d\d 个，全部城市）"))).to_be_visible()


def test_the_console_needs_a_login_and_logout_ends_it(page, live):
    response = page.goto(live.url + "/console/?days=30")
    expect(page.get_by_role("heading", name="运维人员登录")).to_be_visible()
    assert response.url.startswith(live.url + "/console/login")
    login(page, live)
    expect(page.get_by_role("heading", name="概览")).to_be_visible()
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("heading", name="运维人员登录")).to_be_visible()
    page.goto(live.url + "/console/")
    expect(page.get_by_role("heading", name="运维人员登录")).to_be_visible()
