"""The writer thread of the store's hot path on an SQLite file (service/sql.py, Runner.write):
every thread's write lands, each caller gets its own outcome, a failing write is rolled back
alone, a write inside a write does not wait for itself, a forked process writes through its
own thread, and closing lets the queued writes finish."""
import os
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from essc.service import states
from essc.service.nonces import SqlNonceStore
from essc.service.store import Store

GUARD_S = 60  # only a failure waits this long (a writer blocked for ever)


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    yield store
    store.sql.close()
    store.engine.dispose()


def _create(store, key, owner="w1"):
    return store.create(citizen_key=key, city="330100", channel="bank", id_hint="1101**********1234",
                        sealed="sealed", owner=owner, lease_s=60)


def _rows(store, sql):
    with store.engine.connect() as conn:
        return conn.execute(text(sql)).all()


def _in_threads(n, target):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD_S)
    assert not any(t.is_alive() for t in threads), "a writer never came back"


def test_writes_of_many_threads_all_land_each_caller_getting_its_own_row(store):
    assert store.sql.batching
    ran_in: set[str] = set()
    got: dict[int, dict] = {}

    def citizen(i):
        act, outcome = _create(store, f"k{i}", owner=f"w{i}")
        assert outcome == "created"
        moved = store.transition(act["id"], f"w{i}", states.AWAITING_VERIFICATION, "card_read", release=True,
                                 card_status="normal")
        ran_in.add(store.sql.write(lambda tx: threading.current_thread().name))
        got[i] = moved

    _in_threads(24, citizen)
    assert ran_in == {"essc-sqlite-writer"}  # not the callers' threads
    assert sorted(got) == list(range(24))
    for i, act in got.items():  # each caller got the row of its own activation, after its own transition
        assert act["citizen_key"] == f"k{i}" and act["status"] == states.AWAITING_VERIFICATION
        assert act["lease_owner"] is None
    assert _rows(store, "SELECT count(*) FROM activations") == [(24,)]
    assert _rows(store, "SELECT count(*) FROM audit_events WHERE event = 'card_read'") == [(24,)]


def test_the_nonces_and_the_activations_of_one_database_share_its_writer_thread(store):
    nonces = SqlNonceStore(store.engine)
    writers = {store.sql.write(lambda tx: threading.get_ident()),
               nonces._sql.write(lambda tx: threading.get_ident())}
    assert len(writers) == 1 and threading.get_ident() not in writers
    claimed: list[bool] = []
    _in_threads(16, lambda i: claimed.append(nonces.claim("bank", f"n{i % 8}", 2e9, 1e9)))
    assert sorted(claimed) == [False] * 8 + [True] * 8  # each nonce once: the replays refused
    assert nonces.count() == 8


def test_a_failing_write_is_rolled_back_alone_and_its_caller_gets_the_error(store):
    act, _ = _create(store, "dup")
    gate, entered = threading.Event(), threading.Event()

    def blocker(tx):  # holds the writer thread until the other writes are queued behind it
        entered.set()
        gate.wait(GUARD_S)

    outcomes: dict[int, object] = {}

    def writer(i):
        if i == 0:
            store.sql.write(blocker)
            return
        entered.wait(GUARD_S)
        try:
            if i == 3:  # two statements, the second one fails: the first must not stay either
                def half(tx):
                    tx.execute(store._hot.release, {"act_id": act["id"], "owner": "w1"})
                    raise RuntimeError("the second statement failed")
                store.sql.write(half)
            elif i == 5:  # the same citizen, city and channel: a duplicate row
                store.sql.write(lambda tx: tx.execute(store._hot.create, {**act, "id": "other"}))
            else:
                outcomes[i] = _create(store, f"k{i}")[1]
                return
        except Exception as err:  # noqa: BLE001 - the test looks at which
            outcomes[i] = err

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    entered.wait(GUARD_S)
    gate.set()
    for t in threads:
        t.join(GUARD_S)
    assert isinstance(outcomes.pop(3), RuntimeError)
    assert isinstance(outcomes.pop(5), IntegrityError)
    assert outcomes == {i: "created" for i in (1, 2, 4, 6, 7)}
    # the failed write's release is gone with it
    assert _rows(store, f"SELECT lease_owner FROM activations WHERE id = '{act['id']}'") == [("w1",)]
    assert _rows(store, "SELECT count(*) FROM activations") == [(6,)]


def test_a_write_made_inside_a_write_runs_in_place(store):
    done = threading.Event()

    def nested():
        with store.sql.transaction():  # this thread holds the writer lock
            _create(store, "inner")  # through Runner.write: must not queue for the lock it holds
        done.set()

    threading.Thread(target=nested, daemon=True).start()
    assert done.wait(GUARD_S), "a write inside a write waited for itself"
    assert _rows(store, "SELECT citizen_key FROM activations") == [("inner",)]


def test_a_forked_process_writes_through_a_writer_thread_of_its_own(store):
    _create(store, "parent")  # the parent's writer thread runs
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        code = 1
        try:
            store.engine.dispose(close=False)  # the parent's pooled connections are not the child's
            _create(store, "child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _create(store, "parent again")
    assert sorted(_rows(store, "SELECT citizen_key FROM activations")) == [("child",), ("parent",),
                                                                          ("parent again",)]


def test_closing_lets_the_queued_writes_finish_then_writes_start_a_new_thread(store):
    gate, entered = threading.Event(), threading.Event()
    store.sql.write(lambda tx: None)  # the thread runs
    results: list = []
    first = threading.Thread(target=lambda: store.sql.write(lambda tx: (entered.set(), gate.wait(GUARD_S))))
    first.start()
    entered.wait(GUARD_S)
    queued = [threading.Thread(target=lambda i=i: results.append(_create(store, f"q{i}")[1])) for i in range(3)]
    for t in queued:
        t.start()
    closer = threading.Thread(target=store.sql.close)
    closer.start()
    gate.set()
    for t in (first, *queued, closer):
        t.join(GUARD_S)
    assert results == ["created"] * 3
    assert _create(store, "after")[1] == "created"


def test_a_writer_lock_that_cannot_be_taken_is_the_callers_error_not_a_hang(store, monkeypatch):
    _create(store, "before")
    lock_type = type(store._write_lock)
    original = lock_type.__enter__

    def broken(self):
        raise OSError(5, "the lock file cannot be locked")

    monkeypatch.setattr(lock_type, "__enter__", broken)
    outcome: list = []
    caller = threading.Thread(target=lambda: outcome.append(pytest.raises(OSError, _create, store, "during")))
    caller.start()
    caller.join(GUARD_S)
    assert not caller.is_alive(), "the write waited for ever"
    assert "cannot be locked" in str(outcome[0].value)
    monkeypatch.setattr(lock_type, "__enter__", original)
    assert _create(store, "after")[1] == "created"  # the writer thread is still there


def test_writes_racing_a_close_are_all_done(store):
    store.sql.write(lambda tx: None)  # the thread runs
    finished: list[int] = []

    def writer(i):
        for j in range(20):
            _create(store, f"r{i}-{j}")
        finished.append(i)

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    for _ in range(20):  # stops met by writes queued behind them: those are run, not left waiting
        store.sql.close()
    for t in threads:
        t.join(GUARD_S)
    assert sorted(finished) == list(range(6)), "a write queued behind a stop was never run"
    assert _rows(store, "SELECT count(*) FROM activations") == [(120,)]
