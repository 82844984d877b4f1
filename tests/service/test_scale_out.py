"""The scale-out path for real: PostgreSQL store, Redis-backed huey queue, two worker
processes. Skipped, with the reason shown, where the servers are absent."""

import pytest

from essc.core.settings import Settings
from essc.service import states
from essc.service.config import ServiceConfig
from essc.service.runtime import Runtime

from .conftest import DEMO, REDIS
from .workers import start_worker, stop, unsettled, wait_until, worker_env


@pytest.fixture
def redis_url(redis_client):
    return REDIS, redis_client.test_name


def test_postgres_redis_two_worker_processes(tmp_path, mock, mock_server, pg_url, redis_url):
    url, queue_name = redis_url
    env = worker_env(tmp_path, mock_server.url, ESSC_DATABASE_URL=pg_url, ESSC_QUEUE_URL=url,
                     ESSC_QUEUE_NAME=queue_name, ESSC_FLOW_THREADS=2)  # each process takes 2 at a time
    rt = Runtime(ServiceConfig.from_env(env=env), settings=Settings(base_url=mock_server.url))
    assert rt.store.engine.dialect.name == "postgresql" and type(rt.huey).__name__ == "RedisHuey"
    cities = ("110000", "310000", "650100")
    people = []
    for city in cities:
        mock.set_city(city, mode="delayed", sync_delay_s=300)
        mock.fault(city=city, operation="read_card", kind="latency", latency_ms=150)
        people += [(city, c) for c in mock.citizens(city, "normal")]
    for city, c in people:
        act = rt.service.submit(city=city, id_number=c["id_number"], name=c["name"], consent=True, channel="test")
        assert act["status"] == states.PENDING_SYNC
    mock.advance(300)
    workers = [start_worker(env, tmp_path / f"w{i}.log") for i in (1, 2)]
    try:
        wait_until(lambda: unsettled(rt.store) == 0, timeout=90, interval=0.2)
    finally:
        for w in workers:
            stop(w)
    try:
        assert rt.store.counts() == {states.AWAITING_VERIFICATION: len(people)}
        actors = set()
        for city, c in people:
            row = rt.store.find(rt.service.sealer.citizen_key(c["id_number"]), city)
            actors |= {e["actor"].split(":")[1] for e in rt.store.audit(row["id"]) if e["event"] == "card_read"}
            act, credential = rt.service.verify(row["id"], channel="test", **DEMO)
            assert credential and act["status"] == states.ACTIVATED
        assert len(actors) == 2, f"both worker processes should have read cards, saw pids {actors}"
        assert rt.store.counts() == {states.ACTIVATED: len(people)}
    finally:
        rt.store.engine.dispose()
