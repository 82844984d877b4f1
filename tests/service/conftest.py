"""Fixtures of the activation service: its configuration for the Runtime (tests/conftest.py:
registry + SQLite store + SQLite huey queue in a temporary folder, over the in-process mock of
the city systems), the HTTP API over it, and PostgreSQL and Redis where they answer."""
import os
import uuid

import pytest

from essc.service.api import create_app
from essc.service.config import ServiceConfig

DEMO = {"face_token": "live-test", "sms_code": "123456"}


@pytest.fixture
def service_config(tmp_path):
    # answer_budget_s=0: city steps in the caller's thread, so a test sees their outcome at once
    return ServiceConfig(data_dir=tmp_path / "data", retry_base_s=0.05, retry_cap_s=2.0, lease_s=10.0,
                         sweep_interval_s=0.2, answer_budget_s=0)


@pytest.fixture
def app(runtime):
    """The HTTP API over ``runtime`` with the test channels (api_helpers.CHANNELS)."""
    from .api_helpers import CHANNELS

    return create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS})


@pytest.fixture
def client(app):
    return app.test_client()


def person(mock, city, scenario="normal", index=0):
    c = mock.citizens(city, scenario)[index]
    return {"id_number": c["id_number"], "name": c["name"]}


REDIS = os.environ.get("ESSC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client():
    """A client of the test Redis (``REDIS``) and a fresh name for one test: ``client.test_name``
    (a queue name), ``client.test_prefix`` (``<name>:``, a key prefix); every key holding the name
    is deleted after the test. Skipped, with the reason, where no server answers."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as err:
        pytest.skip(f"Redis not reachable at {REDIS}: {err}")
    client.test_name = name = f"essc-test-{uuid.uuid4().hex[:10]}"
    client.test_prefix = f"{name}:"
    yield client
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


PG_ADMIN = os.environ.get("ESSC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test (SQLAlchemy URL), dropped after it; the test is
    skipped, with the reason, where no server answers."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {err}")
    name = f"essc_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
