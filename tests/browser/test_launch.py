"""Launch refusals in Chromium: each gets a page saying what happened and what to do."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow

HANGZHOU = "330100"


@pytest.fixture
def person(live):
    return live.mock.citizen(HANGZHOU, "normal")


def test_a_tampered_launch_is_refused(page, live, person):
    url = live.launch_url(person).replace("signature=", "signature=0")
    response = page.goto(url)
    assert response.status == 403
    expect(page.get_by_role("heading", name="链接无法验证")).to_be_visible()
    expect(page.get_by_text("请只从 App 内的电子社保卡入口进入")).to_be_visible()


def test_a_launch_signed_with_another_secret_is_refused(page, live, person):
    response = page.goto(live.launch_url(person, secret="not-the-channel-secret"))
    assert response.status == 403
    expect(page.get_by_role("heading", name="链接无法验证")).to_be_visible()


def test_an_expired_launch_is_refused(page, live, person):
    response = page.goto(live.launch_url(person, ttl_s=60, now=time.time() - 600))
    assert response.status == 403
    expect(page.get_by_role("heading", name="链接已过期")).to_be_visible()
    expect(page.get_by_text("请回到 App 重新进入电子社保卡申领")).to_be_visible()


def test_a_replayed_launch_is_refused_in_another_browser(page, live, person, browser):
    url = live.launch_url(person)
    page.goto(url)
    expect(page.get_by_role("heading", name="申领电子社保卡")).to_be_visible()
    other = browser.new_context(locale="zh-CN")  # whoever copied the link
    try:
        tab = other.new_page()
        response = tab.goto(url)
        assert response.status == 403
        expect(tab.get_by_role("heading", name="链接已使用过")).to_be_visible()
    finally:
        other.close()
    page.goto(url)  # the same browser coming back (back button) goes on where it was
    expect(page.get_by_role("heading", name="申领电子社保卡")).to_be_visible()


def test_a_return_url_the_channel_did_not_configure_is_refused(page, live, person):
    response = page.goto(live.launch_url(person, return_url="https://evil.example/essc/"))
    assert response.status == 400
    expect(page.get_by_role("heading", name="链接配置有误")).to_be_visible()


def test_pages_without_a_launch_ask_to_start_from_the_app(page, live):
    response = page.goto(live.url + "/h5/terms")
    assert response.status == 401
    expect(page.get_by_role("heading", name="页面已过期")).to_be_visible()
