"""The operator console without a browser: operators' credentials, the login's throttle and
CSRF, the console cookie, redirects that stay on the console."""
from __future__ import annotations

import re

import pytest
from werkzeug.security import generate_password_hash

from essc.service.api import create_app
from essc.service.pages.operators import Operator, Operators

PASSWORD = "correct horse battery staple"


@pytest.fixture
def app(runtime):
    operators = Operators({"ops-lee": Operator("ops-lee", generate_password_hash(PASSWORD)),
                           "admin": Operator("admin", generate_password_hash("demo-admin"), demo=True)})
    return create_app(runtime, {"OPERATORS": operators, "CONSOLE_LOGIN_LIMIT": 3})


def token(client, path="/console/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def login(client, name="ops-lee", password=PASSWORD, **kwargs):
    return client.post("/console/login" + kwargs.pop("query", ""), data={
        "username": name, "password": password, "csrf_token": token(client)}, **kwargs)


def test_an_operator_logs_in_with_a_scoped_cookie_and_logs_out(app):
    client = app.test_client()
    assert client.get("/console/").status_code == 303
    response = login(client)
    assert response.status_code == 303 and response.location.endswith("/console/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("essc_console=") and "Path=/console" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    home = client.get("/console/")
    assert home.status_code == 200 and "城市" in home.get_data(as_text=True)
    assert client.post("/console/logout", data={"csrf_token": token(client, "/console/")}).status_code == 303
    assert client.get("/console/").status_code == 303


def test_wrong_passwords_are_throttled_per_name_and_address(app):
    client = app.test_client()
    for _ in range(3):
        assert login(client, password="wrong").status_code == 401
    refused = login(client)  # even the right password waits for the window
    assert refused.status_code == 429 and "登录失败次数过多" in refused.get_data(as_text=True)
    other = app.test_client()
    assert login(other, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 303


def test_unknown_operators_and_demo_operators_off_loopback_are_refused(app):
    client = app.test_client()
    assert login(client, name="nobody").status_code == 401
    assert login(client, name="admin", password="demo-admin",
                 environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 401
    assert login(app.test_client(), name="admin", password="demo-admin").status_code == 303


def test_a_login_without_the_csrf_token_is_refused(app):
    response = app.test_client().post("/console/login", data={"username": "ops-lee", "password": PASSWORD})
    assert response.status_code == 400 and "text/html" in response.content_type


@pytest.mark.parametrize(("next_url", "lands"), [("/console/?days=30", "/console/?days=30"),
                                                 ("https://evil.example/", "/console/"),
                                                 ("//evil.example/console", "/console/")])
def test_the_login_sends_back_to_the_console_only(app, next_url, lands):
    response = login(app.test_client(), query_string={"next": next_url})
    assert response.status_code == 303 and response.location.endswith(lands)
    assert "evil" not in response.location


def test_the_operators_file_is_checked_at_start_up(tmp_path):
    bad = tmp_path / "operators.toml"
    bad.write_text('[operators.lee]\npassword = "plain text"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="password_hash"):
        Operators.load(bad)
    demo = Operators.load()
    assert demo.check("admin", "demo-admin", "127.0.0.1") is not None
    assert demo.check("admin", "demo-admin", "203.0.113.5") is None


def test_the_docs_examples_of_operators_and_channels_load(tmp_path):
    from pathlib import Path

    from essc.service.channels import Channels

    root = Path(__file__).resolve().parents[2]
    blocks = [b for doc in ("README.md", "docs/launch.md")
              for b in re.findall(r"^```toml\n(.*?)^```", (root / doc).read_text(encoding="utf-8"), flags=re.M | re.S)]
    operators = [b for b in blocks if "[operators." in b]
    channels = [b for b in blocks if "[channels." in b and "return_urls" in b]
    assert operators and channels
    for i, block in enumerate(operators + channels):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block, encoding="utf-8")
        loaded = Operators.load(path).operators if "[operators." in block else Channels.load(path).channels
        assert loaded
