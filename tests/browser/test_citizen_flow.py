"""The citizen's pages in Chromium: launch, terms, city list, waiting, face + SMS, results."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from essc.service.pages.launch import verify_return

from .conftest import CHANNEL, RETURN, SECRET, shot

pytestmark = pytest.mark.slow

HANGZHOU, BEIJING, SANSHA = "330100", "110000", "460300"


def citizen(live, city: str, scenario: str = "normal") -> dict:
    return live.mock.citizen(city, scenario)


def to_city_list(page, live, person: dict) -> None:
    page.goto(live.launch_url(person))
    expect(page.get_by_role("heading", name="申领电子社保卡")).to_be_visible()
    page.get_by_label("我已阅读并同意《电子社保卡服务协议》").check()
    page.get_by_role("button", name="同意并继续").click()
    expect(page.get_by_role("heading", name="选择参保城市")).to_be_visible()


def found(page, city: str):
    """The city's button among the search results (the list by province is hidden meanwhile)."""
    return page.get_by_role("region", name="搜索结果").get_by_role("button", name=re.compile("^" + city))


def choose(page, query: str, city: str) -> None:
    page.get_by_label("搜索城市").fill(query)
    button = found(page, city)
    expect(button).to_be_visible()
    button.click()
    expect(page.get_by_role("heading", name="授权查询")).to_be_visible()
    page.get_by_label(re.compile("我同意授权平台查询")).check()
    page.get_by_role("button", name="同意并申领").click()


def face_and_code(page, code: str = "123456") -> None:
    expect(page.get_by_role("heading", name="身份核验")).to_be_visible()
    page.get_by_role("button", name="开始模拟人脸采集").click()
    expect(page.get_by_text("已完成模拟人脸采集")).to_be_visible()
    page.get_by_label("验证码或密码（6 位数字）").fill(code)
    page.get_by_role("button", name="提交核验").click()


def test_supported_city_from_search_to_the_card_and_back_to_the_channel(page, live):
    person = citizen(live, HANGZHOU)
    # the city answers slower than the service's answer budget: the waiting screen shows, then
    # follows the activation by itself to the identity step
    live.mock.fault(city=HANGZHOU, operation="read_card", kind="latency", latency_ms=1500, attempts=[1])
    to_city_list(page, live, person)
    expect(page.get_by_role("navigation", name="按省份首字母跳转")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("浙江"))).to_be_visible()
    shot(page, "h5-city-list")
    page.get_by_label("搜索城市").fill("hz")
    expect(found(page, "杭州")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^北京"))).to_be_hidden()
    expect(page.locator("#search-count")).to_contain_text("找到")
    expect(page.locator("#search-results li").first).to_contain_text("杭州")  # best first
    shot(page, "h5-cities")
    choose(page, "hz", "杭州")
    expect(page.get_by_role("heading", name="正在读取社保卡信息")).to_be_visible()
    expect(page.get_by_role("heading", name="身份核验")).to_be_visible()
    expect(page.get_by_text("不会打开摄像头")).to_be_visible()  # honest about the simulation
    page.get_by_role("button", name="开始模拟人脸采集").click()
    page.get_by_label("验证码或密码（6 位数字）").fill("123456")
    shot(page, "h5-verify", full_page=True)
    page.get_by_role("button", name="提交核验").click()
    expect(page.get_by_role("heading", name="申领成功")).to_be_visible()
    card = page.get_by_role("group", name="电子社保卡")
    expect(card).to_contain_text(person["id_number"][:3] + "*")
    expect(card).not_to_contain_text(person["id_number"])
    expect(card).to_contain_text("杭州")
    act = live.runtime.store.find(live.runtime.service.sealer.citizen_key(person["id_number"]), HANGZHOU, CHANNEL)
    expect(card).to_contain_text(act["credential"]["sign_no"])
    code = page.get_by_role("img", name="电子社保卡动态码")  # the dynamic code, shown at once
    expect(code).to_be_visible()
    expect(page.locator("#qr-note")).to_contain_text("秒后自动刷新")
    first = page.locator("#qr-image path").get_attribute("d")
    shot(page, "h5-activated", full_page=True)
    page.get_by_role("button", name="刷新动态码").click()  # a new code replaces it
    expect(page.locator("#qr-image path")).not_to_have_attribute("d", first)
    page.get_by_role("button", name="完成，返回 App").click()
    expect(page.get_by_role("heading", name="已回到渠道 App")).to_be_visible()
    back = verify_return(page.url, SECRET, channel=CHANNEL)
    assert page.url.startswith(RETURN + "?")
    assert (back["action"], back["status"], back["city"], back["activation"]) == ("001", "activated", HANGZHOU,
                                                                                   act["id"])


@pytest.mark.parametrize(("query", "city"), [("三沙", "三沙"),  # served, its manifest says not opened
                                             ("huizhou", "惠州")])  # a city of the country no plugin serves
def test_not_opened_city_says_so_and_offers_another_city(page, live, query, city):
    to_city_list(page, live, citizen(live, HANGZHOU))
    page.get_by_label("搜索城市").fill(query)
    expect(found(page, city)).to_contain_text("暂未开通")
    choose(page, query, city)
    expect(page.get_by_role("heading", name=f"{city}暂未开通电子社保卡业务")).to_be_visible()
    if city == "三沙":
        shot(page, "h5-not-opened")
    page.get_by_role("button", name="重新选择参保城市").click()
    expect(page.get_by_role("heading", name="选择参保城市")).to_be_visible()


def test_abnormal_card_names_the_status_and_what_to_do(page, live):
    to_city_list(page, live, citizen(live, HANGZHOU, "reported_lost"))
    choose(page, "hangzhou", "杭州")
    expect(page.get_by_role("heading", name="卡状态异常：挂失")).to_be_visible()
    expect(page.get_by_text("解挂或补换卡")).to_be_visible()
    shot(page, "h5-abnormal")


def test_identity_mismatch_tells_the_attempts_left_then_the_lockout(page, live):
    to_city_list(page, live, citizen(live, HANGZHOU, "face_mismatch"))
    choose(page, "杭州", "杭州")
    face_and_code(page)
    expect(page.get_by_role("alert")).to_contain_text("人脸与身份不匹配")
    expect(page.get_by_role("alert")).to_contain_text("还可尝试 2 次")
    # the liveness token was used: a new capture is asked for
    expect(page.get_by_role("button", name="开始模拟人脸采集")).to_be_visible()
    shot(page, "h5-mismatch", full_page=True)
    face_and_code(page)
    expect(page.get_by_role("alert")).to_contain_text("还可尝试 1 次")
    face_and_code(page)
    expect(page.get_by_role("heading", name="身份核验失败次数过多")).to_be_visible()
    minutes = round(live.runtime.config.identity_lockout_s / 60)
    expect(page.get_by_text(f"请 {minutes} 分钟后再试")).to_be_visible()


def test_delayed_sync_waits_then_goes_on_when_the_record_arrives(page, live):
    person = citizen(live, BEIJING)
    to_city_list(page, live, person)
    choose(page, "bj", "北京")
    expect(page.get_by_role("heading", name="信息未同步")).to_be_visible()
    expect(page.get_by_text("我们会在后台自动完成查询")).to_be_visible()
    shot(page, "h5-not-synced")
    live.mock.advance(3600)  # the record reaches the platform; the queue's next try reads it
    expect(page.get_by_role("heading", name="身份核验")).to_be_visible()
    face_and_code(page)
    expect(page.get_by_role("heading", name="申领成功")).to_be_visible()


@pytest.mark.nojs
def test_the_whole_flow_works_without_javascript(page, live):
    person = citizen(live, HANGZHOU)
    live.mock.fault(city=HANGZHOU, operation="read_card", kind="latency", latency_ms=1500, attempts=[1])
    to_city_list(page, live, person)
    page.get_by_label("搜索城市").fill("hz")
    page.get_by_role("button", name="搜索").click()  # the server renders the matches, best first
    expect(page.get_by_role("heading", name="搜索结果")).to_be_visible()
    expect(page.locator(".city-list li").first).to_contain_text("杭州")
    choose(page, "hz", "杭州")
    expect(page.get_by_role("heading", name="正在读取社保卡信息")).to_be_visible()
    face_and_code(page)  # the waiting page refreshed itself (<noscript> refresh) to the identity step
    expect(page.get_by_role("heading", name="申领成功")).to_be_visible()
    page.get_by_role("button", name="显示动态码").click()
    expect(page.get_by_role("img", name="电子社保卡动态码")).to_be_visible()


def test_the_terms_and_the_city_list_work_with_the_keyboard(page, live):
    page.goto(live.launch_url(citizen(live, HANGZHOU)))
    expect(page.get_by_role("heading", name="申领电子社保卡")).to_be_visible()
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.textContent.trim().slice(0, 12) || "
                                   "document.activeElement.getAttribute('name')"))
    assert order == ["跳到主要内容", "电子社保卡服务协议（摘要", "agree", "同意并继续"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")  # the checkbox
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="选择参保城市")).to_be_visible()
    page.get_by_label("搜索城市").focus()
    page.keyboard.type("hangzhou")
    first = page.locator("#search-results button").first
    expect(first).to_contain_text("杭州")
    page.keyboard.press("Tab")  # the search button, then the first match
    page.keyboard.press("Tab")
    expect(first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="授权查询")).to_be_visible()
