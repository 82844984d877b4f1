"""The store's hot path on the DBAPI connection (service/sql.py), on SQLite and PostgreSQL:
values round trip as SQLAlchemy's types did (JSON columns, rows SQLAlchemy wrote), transactions
commit or roll back whole, a duplicate is still an IntegrityError, and every statement and commit
is seen by the store's hook."""
import json

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from essc.service import states
from essc.service.sql import Statement
from essc.service.store import A, Store

CREDENTIAL = {"card": {"no": "A1234****", "name": "张*"}, "levels": [1, 2], "ok": True, "ratio": 0.5}
ERROR = {"code": "UPSTREAM_UNAVAILABLE", "message": "城市系统暂不可用", "retry": None}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else \
        f"sqlite:///{tmp_path / 'db.sqlite3'}"
    store = Store(url)
    yield store
    store.engine.dispose()


def created(store, key="k1", owner="w1", channel="bank"):
    act, outcome = store.create(citizen_key=key, city="330100", channel=channel, id_hint="1101**********1234",
                                sealed="sealed", owner=owner, lease_s=60)
    assert outcome == "created"
    return act


def stored(store, act_id, column):
    """The column as the database holds it (JSON as text)."""
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT CAST({column} AS TEXT) FROM activations WHERE id = :i"),
                            {"i": act_id}).scalar()


def test_rows_have_the_types_sqlalchemy_gave(store):
    act = created(store)
    assert act == store.get(act["id"])
    claimed = store.transition(act["id"], "w1", states.AWAITING_VERIFICATION, "card_read", release=True,
                               card_status="normal", next_attempt_at=None)
    assert claimed == store.get(act["id"])
    assert claimed["next_attempt_at"] is None and claimed["lease_owner"] is None and claimed["credential"] is None
    assert isinstance(claimed["updated_at"], float) and isinstance(claimed["runs"], int)
    assert "callback_marker" not in claimed


def test_json_round_trips_and_is_stored_as_sqlalchemy_stores_it(store):
    act = created(store)
    failed = store.transition(act["id"], "w1", states.PENDING_UPSTREAM, states.PENDING_UPSTREAM, error=ERROR)
    assert failed["error"] == ERROR and store.get(act["id"])["error"] == ERROR
    assert json.loads(stored(store, act["id"], "error")) == ERROR
    done = store.transition(act["id"], "w1", states.ACTIVATED, "activated", release=True, credential=CREDENTIAL,
                            error=None)
    assert done["credential"] == CREDENTIAL and done["error"] is None
    assert store.get(act["id"])["credential"] == CREDENTIAL and store.get(act["id"])["error"] is None
    assert stored(store, act["id"], "error") == "null"  # JSON null, as SQLAlchemy's JSON type writes None
    # a credential is written once
    assert store.transition(act["id"], "w1", states.ACTIVATED, "again", credential={"other": 1}) is None


def test_the_hot_reads_give_what_sqlalchemy_reads(store):
    act = created(store)
    store.transition(act["id"], "w1", states.PENDING_UPSTREAM, "pending", detail="城市 busy", error=ERROR)
    with store.engine.connect() as conn:
        row = dict(conn.execute(A.select().where(A.c.id == act["id"])).mappings().one())
        events = [dict(e) for e in conn.execute(text(
            "SELECT * FROM audit_events WHERE activation_id = :i ORDER BY id"), {"i": act["id"]}).mappings()]
    assert store.get(act["id"]) == row and row["error"] == ERROR
    assert store.audit(act["id"]) == events and [e["event"] for e in events] == [
        "consent_given", "city_chosen", "pending"]
    assert store.get("0" * 32) is None and store.audit("0" * 32) == []


def test_a_row_written_by_sqlalchemy_reads_the_same(store):
    act = created(store)
    with store.engine.begin() as conn:  # as the store wrote rows before (SQLAlchemy's JSON type)
        conn.execute(update(A).where(A.c.id == act["id"]).values(
            status=states.AWAITING_VERIFICATION, credential=CREDENTIAL, error=ERROR, lease_owner=None,
            lease_until=None))
    row = store.claim_verification(act["id"], "w2", 60, channel="bank")
    assert row is not None and row["credential"] == CREDENTIAL and row["error"] == ERROR
    assert row == store.get(act["id"])


def test_a_duplicate_create_is_found_or_restarted(store):
    act = created(store)
    again, outcome = store.create(citizen_key="k1", city="330100", channel="bank", id_hint="x", sealed="new",
                                  owner="w2", lease_s=60)
    assert outcome == "restarted" and again["id"] == act["id"] and again["sealed"] == "new"
    assert again["lease_owner"] == "w2" and again["runs"] == 2
    store.transition(act["id"], "w2", states.VERIFIED, "identity_verified", verified="ticket")
    found, outcome = store.create(citizen_key="k1", city="330100", channel="bank", id_hint="x", sealed="newer")
    assert outcome == "found" and found["sealed"] == "new"
    assert [e["event"] for e in store.audit(act["id"])] == [
        "consent_given", "city_chosen", "resubmitted", "identity_verified"]
    with pytest.raises(IntegrityError), store.sql.transaction() as tx:  # the DBAPI's error, as SQLAlchemy's
        tx.execute(store._hot.create, {**act, "id": "other"})


def test_claim_check_on_a_held_citizen_claims_nothing(store):
    act = created(store)
    store.transition(act["id"], "w1", states.AWAITING_VERIFICATION, "card_read", release=True)
    hold = store.identity_begin("k1", "330100", 60)
    assert hold is not None
    row, held = store.claim_check(act["id"], "w2", 60, channel="bank")
    assert not held and (row["id"], row["citizen_key"], row["city"]) == (act["id"], "k1", "330100")  # whose ...
    now = store.get(act["id"])
    assert now["lease_owner"] is None and now["lease_until"] is None  # ... but not claimed
    assert store.identity("k1", "330100")["busy_until"] == hold["busy_until"]
    store.identity_end("k1", "330100", passed=None, max_failures=3, lockout_s=60)
    row, held = store.claim_check(act["id"], "w2", 60, channel="bank")
    assert held and store.get(act["id"])["lease_owner"] == "w2"
    assert store.claim_check(act["id"], "w3", 60, channel="bank") == (None, False)


def test_a_transaction_rolls_back_whole_and_the_hook_sees_what_ran(store):
    seen = []
    store.sql.observe(lambda kind, sql: seen.append((kind, sql.split(None, 1)[0] if sql else "")))
    act = created(store)
    if store.sql.server:  # the activation and its two audit events in one statement
        assert seen == [("execute", "WITH"), ("commit", "")]
    else:
        assert seen == [("execute", "INSERT"), ("execute", "INSERT"), ("commit", "")]
    seen.clear()
    with pytest.raises(RuntimeError), store.sql.transaction() as tx:
        tx.execute(store._hot.release, {"act_id": act["id"], "owner": "w1"})
        raise RuntimeError("undo")
    assert seen == [("execute", "UPDATE")]  # no commit
    assert store.get(act["id"])["lease_owner"] == "w1"
    assert seen[1:] == [("execute", "SELECT")]  # a read: nothing to commit
    store.release(act["id"], "w1")
    assert store.get(act["id"])["lease_owner"] is None


def test_a_transition_and_its_audit_event_are_written_together_or_not_at_all(store):
    """On a database server a transition, its audit event and the end of a passed identity check
    are one statement; on SQLite one transaction. Either way: all or nothing, in order."""
    act = created(store)
    assert [(e["event"], e["detail"], e["actor"]) for e in store.audit(act["id"])] == [
        ("consent_given", None, "bank"), ("city_chosen", "city 330100", "bank")]
    with pytest.raises(IntegrityError):  # the audit event cannot be written (no event name) ...
        store.transition(act["id"], "w1", states.AWAITING_VERIFICATION, None, card_status="normal")
    assert store.get(act["id"]) == act  # ... so the activation did not change either
    assert len(store.audit(act["id"])) == 2
    moved = store.transition(act["id"], "w1", states.AWAITING_VERIFICATION, "card_read", detail="d",
                             card_status="normal")
    assert moved == store.get(act["id"]) and moved["status"] == states.AWAITING_VERIFICATION
    assert store.audit(act["id"])[-1] | {"id": 0} == {
        "id": 0, "activation_id": act["id"], "at": moved["updated_at"], "event": "card_read",
        "status": states.AWAITING_VERIFICATION, "detail": "d", "actor": "w1"}
    # the end of a passed check is recorded with the transition, and also when it is refused
    for owner, expected in (("someone else", None), ("w1", states.ACTIVATED)):
        assert store.identity_begin("k1", "330100", 60) is not None
        store.identity_end("k1", "330100", passed=False, max_failures=5, lockout_s=60)
        assert store.identity_begin("k1", "330100", 60) is not None
        done = store.transition(act["id"], owner, states.ACTIVATED, "activated", check_passed=("k1", "330100"),
                                credential=CREDENTIAL)
        assert (done or {}).get("status") == expected
        assert store.identity("k1", "330100") | {"citizen_key": 0} == {
            "citizen_key": 0, "city": "330100", "failures": 0, "busy_until": None, "locked_until": None}
    assert [e["event"] for e in store.audit(act["id"])][2:] == ["card_read", "activated"]


def test_racing_identity_checks_claim_once_and_hold_the_citizen_once(store):
    """Channels' identity checks at the same moment: of 6 for one activation exactly one claims
    it; of checks for two activations of one citizen + city (two channels) one holds the citizen,
    and the other's activation stays unclaimed."""
    import threading

    def race(calls):
        start, results = threading.Barrier(len(calls)), [None] * len(calls)

        def run(i, call):
            start.wait()
            results[i] = call()

        threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    held = [store.engine.raw_connection() for _ in range(6)]  # one open connection for each thread
    for conn in held:
        conn.close()
    act = created(store, owner=None)
    with store.writing() as conn:
        conn.execute(update(A).where(A.c.id == act["id"]).values(status=states.AWAITING_VERIFICATION))
    results = race([lambda i=i: store.claim_check(act["id"], f"w{i}", 60, channel="bank") for i in range(6)])
    winners = [r for r in results if r[1]]
    assert len(winners) == 1 and results.count((None, False)) == 5
    assert store.get(act["id"])["lease_owner"] == winners[0][0]["lease_owner"]

    other = created(store, key="k2", owner=None, channel="wallet")
    mine = created(store, key="k2", owner=None, channel="bank")
    with store.writing() as conn:
        conn.execute(update(A).where(A.c.id.in_([other["id"], mine["id"]]))
                     .values(status=states.AWAITING_VERIFICATION))
    results = race([lambda: store.claim_check(other["id"], "x", 60, channel="wallet"),
                    lambda: store.claim_check(mine["id"], "y", 60, channel="bank")])
    assert sorted(held for _, held in results) == [False, True]
    (loser, _), = [r for r in results if not r[1]]
    assert loser["citizen_key"] == "k2" and store.get(loser["id"])["lease_owner"] is None


def test_a_one_statement_transaction_refuses_a_second_statement(store):
    act = created(store)
    with pytest.raises(RuntimeError, match="second statement"), store.sql.transaction(single=True) as tx:
        tx.execute(store._hot.release, {"act_id": act["id"], "owner": "w1"})
        tx.execute(store._hot.release, {"act_id": act["id"], "owner": "w1"})


def test_identity_end_counts_failures_and_locks(store):
    store.identity_begin("k1", "330100", 60)
    row = store.identity_end("k1", "330100", passed=False, max_failures=2, lockout_s=600)
    assert row["failures"] == 1 and row["locked_until"] is None and row["busy_until"] is None
    store.identity_begin("k1", "330100", 60)
    row = store.identity_end("k1", "330100", passed=False, max_failures=2, lockout_s=600)
    assert row["failures"] == 0 and isinstance(row["locked_until"], float)
    assert store.identity_begin("k1", "330100", 60) is None  # locked out
    assert row == store.identity("k1", "330100")


def test_statements_of_one_parameter_or_none(store):
    act = created(store)
    one = Statement(text("SELECT count(*) AS n FROM activations WHERE id = :act_id"), store.engine.dialect)
    none = Statement(text("SELECT count(*) AS n FROM activations"), store.engine.dialect)
    with store.sql.transaction() as tx:
        assert tx.first(one, {"act_id": act["id"], "unused": 1}) == {"n": 1}
        assert tx.first(one, {"act_id": "none"}) == {"n": 0}
        assert tx.first(none, {}) == {"n": 1}


def test_the_store_goes_on_after_postgresql_drops_its_connection(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a server's connection")
    act = created(store)
    invalidated = []
    event.listen(store.engine.pool, "invalidate", lambda dbapi_conn, record, exc: invalidated.append(exc))
    drop = Statement(text("SELECT pg_terminate_backend(pg_backend_pid())"), store.engine.dialect)
    with pytest.raises(OperationalError), store.sql.transaction() as tx:
        tx.first(drop, {})
    assert len(invalidated) == 1  # not given back to the pool
    store.release(act["id"], "w1")
    assert store.get(act["id"])["lease_owner"] is None


def test_after_postgresql_restarts_only_one_transaction_fails(store, pg_url):
    """No ping before each checkout: the pool holds connections the server dropped (as a restart
    does); the first transaction to meet one fails, typed, and takes the other pooled ones with
    it, so the next transaction works on a new connection."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a server's connections")
    act = created(store)
    held = [store.engine.raw_connection() for _ in range(3)]  # three connections in the pool
    pids = []
    for conn in held:
        cursor = conn.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pids.append(cursor.fetchone()[0])
        conn.close()
    from sqlalchemy import create_engine

    admin = create_engine(pg_url)
    with admin.connect() as conn:  # the server drops them all
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    admin.dispose()
    with pytest.raises(OperationalError):
        store.claim(act["id"], "w2", 60)
    store.release(act["id"], "w1")  # a new connection
    assert store.claim(act["id"], "w2", 60)["lease_owner"] == "w2"


def test_a_database_server_keeps_the_pools_connections_open(pg_url):
    """PostgreSQL: as many connections as ``pool_size`` are opened and kept, however many threads
    write; a transaction beyond them waits for one. An overflow connection would be closed when
    given back to a full pool and opened again for the next burst (a server process and a login
    each time)."""
    import threading

    from essc.service.config import ServiceConfig

    assert ServiceConfig.from_env({"ESSC_DATABASE_POOL_SIZE": "3"}).database_pool_size == 3
    assert ServiceConfig().database_pool_size == 10
    store = Store(pg_url, pool_size=3)
    kept = store.engine.pool.checkedin()  # the one that checked the schema
    opened = []
    event.listen(store.engine, "connect", lambda *_: opened.append(1))
    start = threading.Barrier(8)

    def writes():
        start.wait()
        for _ in range(15):
            with store.engine.begin() as conn:
                conn.execute(text("SELECT pg_sleep(0.002)"))

    try:
        threads = [threading.Thread(target=writes) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert kept + len(opened) == store.engine.pool.checkedin() <= 3, (kept, len(opened))  # all kept
    finally:
        store.engine.dispose()
    with pytest.raises(ValueError, match="ESSC_DATABASE_POOL_SIZE"):
        Store(pg_url, pool_size=0)


def test_on_a_database_server_a_write_or_a_read_is_one_statement_without_begin_or_rollback(pg_url, tmp_path):
    """PostgreSQL: psycopg sends BEGIN before a transaction's first statement and the pool a
    ROLLBACK when a connection comes back, each a round trip: the hot path's writes and the
    activation reads (long-polls re-read) run in autocommit mode, one statement each. Watched in
    libpq's own trace of what goes to the server."""
    store = Store(pg_url, pool_size=1)  # one connection: every statement below goes through it
    try:
        with store.reading.connect() as conn:
            pgconn = conn.connection.dbapi_connection.pgconn
        trace = (tmp_path / "libpq.trace").open("w")
        pgconn.trace(trace.fileno())
        act = created(store)
        store.transition(act["id"], "w1", states.AWAITING_VERIFICATION, "card_read", release=True)
        assert store.get(act["id"])["status"] == states.AWAITING_VERIFICATION
        assert len(store.audit(act["id"])) == 3
        pgconn.untrace()
        trace.close()
        sent = [line for line in (tmp_path / "libpq.trace").read_text().splitlines() if "\tF\t" in line]
        queries = [line for line in sent if "\tParse\t" in line or "\tQuery\t" in line]
        assert len(queries) == 4, queries  # create, transition, get, audit
        assert not [q for q in queries if "BEGIN" in q or "ROLLBACK" in q or "COMMIT" in q], queries
    finally:
        store.engine.dispose()
