"""One SQLite writer at a time across threads and processes (service/writers.py).

The engines here have SQLite's busy timeout at 0: a writer that met another one's transaction
would fail at once with "database is locked" instead of sleeping in the busy handler, so each
test fails if the writer lock does not hold the second writer back."""
import fcntl
import multiprocessing
import os
import signal
import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, func, insert, select

from essc.service.writers import WriterLock, writer_lock, writing

GUARD_S = 60  # only a failure waits this long (a writer blocked for ever)

META = MetaData()
ROWS = Table("rows", META, Column("id", Integer, primary_key=True), Column("who", String(20)))


def _engine(path):
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    return engine


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "db.sqlite3"
    engine = _engine(path)
    META.create_all(engine)
    yield path, engine
    engine.dispose()


def _count(engine, who=None):
    query = select(func.count()).select_from(ROWS)
    if who is not None:
        query = query.where(ROWS.c.who == who)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def _hold(path, holding, release):
    """Child process: open its own engine, write a row in a transaction it keeps open until told."""
    engine = _engine(path)
    with writing(engine) as conn:
        conn.execute(insert(ROWS).values(who="child"))
        holding.set()
        release.wait(GUARD_S)
    os._exit(0)


def _holder(path):
    """A forked child holding the writer lock and an open write transaction (``_hold``), once it
    holds them; it commits when the returned event is set."""
    ctx = multiprocessing.get_context("fork")
    holding, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(path, holding, release))
    child.start()
    assert holding.wait(GUARD_S), "the child never took the lock"
    return child, release


def _writer_thread(engine, results):
    def run():
        try:
            with writing(engine) as conn:
                conn.execute(insert(ROWS).values(who="parent"))
            results.append("ok")
        except Exception as err:  # noqa: BLE001 - the test reports it
            results.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_writer_in_another_process_is_waited_for_not_met(db):
    path, engine = db
    child, release = _holder(path)
    try:
        results: list = []
        thread = _writer_thread(engine, results)
        release.set()  # the parent's writer goes once the child committed
        thread.join(GUARD_S)
        assert results == ["ok"], results  # without the lock: OperationalError "database is locked"
    finally:
        release.set()
        child.join(GUARD_S)
    assert child.exitcode == 0
    assert (_count(engine, "child"), _count(engine, "parent")) == (1, 1)


def test_a_killed_writer_lets_the_others_go_and_its_transaction_is_gone(db):
    path, engine = db
    child, _ = _holder(path)
    os.kill(child.pid, signal.SIGKILL)  # while it holds the lock and an open write transaction
    child.join(GUARD_S)
    assert child.exitcode == -signal.SIGKILL
    results: list = []
    _writer_thread(engine, results).join(GUARD_S)
    assert results == ["ok"]
    assert (_count(engine, "child"), _count(engine, "parent")) == (0, 1)


def test_many_writers_in_two_processes_all_commit(db):
    path, engine = db
    engine.dispose()

    def burst(who):
        errors: list = []

        def run():
            for _ in range(50):
                try:
                    with writing(engine) as conn:
                        conn.execute(insert(ROWS).values(who=who))
                except Exception as err:  # noqa: BLE001
                    errors.append(err)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(GUARD_S)
        return errors

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        engine.dispose(close=False)  # the parent's pooled connections are not ours
        os._exit(1 if burst("child") else 0)
    errors = burst("parent")
    _, status = os.waitpid(pid, 0)
    assert errors == []
    assert os.waitstatus_to_exitcode(status) == 0
    assert (_count(engine, "parent"), _count(engine, "child")) == (200, 200)


def _held_by_someone(lock_file) -> bool:
    """Is the writer lock file flocked (by anyone: this probe is its own open file)?"""
    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_taken_again_in_its_thread_is_held_until_the_outer_exit(db):
    _, engine = db
    lock = writer_lock(engine)
    with lock:
        with lock:  # a helper that writes, called by a writer: no deadlock
            assert _held_by_someone(lock.path)
        assert _held_by_someone(lock.path)  # the inner exit kept it
    assert not _held_by_someone(lock.path)


def test_one_lock_per_engine_a_file_beside_the_database(db, tmp_path):
    path, engine = db
    lock = writer_lock(engine)
    assert lock is writer_lock(engine)
    assert isinstance(lock, WriterLock)
    assert lock.path == path.with_name("db.sqlite3-writer.lock")
    memory = writer_lock(create_engine("sqlite://"))
    assert isinstance(memory, WriterLock) and memory.path is None  # threads only: one process
    with memory:
        pass


def test_no_lock_for_a_server_that_locks_rows(pg_url):
    engine = create_engine(pg_url)
    try:
        assert not isinstance(writer_lock(engine), WriterLock)
    finally:
        engine.dispose()
