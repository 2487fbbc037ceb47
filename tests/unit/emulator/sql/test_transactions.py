"""Transactions, isolation between sessions, concurrency, execute_many and metrics."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from azsql_emulator.sql import SessionUser

WRITER = SessionUser("w", "w@t", frozenset({"db_owner"}), 0)


def _open(engine, spid: int):
    return engine.open_session("appdb", SessionUser("w", "w@t", frozenset({"db_owner"}), spid))


@pytest.fixture
def table(db):
    db.run("CREATE TABLE dbo.t (id int IDENTITY(1,1) PRIMARY KEY, k int NOT NULL, "
           "v nvarchar(10) NULL)")
    return db


def test_uncommitted_rows_are_invisible_then_committed(engine, table) -> None:
    a, b = _open(engine, 60), _open(engine, 61)
    a.begin()
    assert a.in_transaction
    a.execute("INSERT INTO t (k) VALUES (1)")
    assert b.execute("SELECT COUNT(*) FROM t")[0].rows == [(0,)]
    assert a.execute("SELECT COUNT(*) FROM t")[0].rows == [(1,)]
    a.commit()
    assert not a.in_transaction
    assert b.execute("SELECT COUNT(*) FROM t")[0].rows == [(1,)]
    a.close()
    b.close()


def test_close_rolls_back(engine, table) -> None:
    a = _open(engine, 60)
    a.execute("BEGIN TRAN; INSERT INTO t (k) VALUES (1)")
    a.close()
    assert table.rows("SELECT COUNT(*) FROM t") == [(0,)]
    assert engine.metrics()["rollbacks"] == 1


def test_tsql_transaction_statements_and_trancount(table) -> None:
    r = table.run("BEGIN TRAN; BEGIN TRANSACTION; SELECT @@TRANCOUNT; COMMIT; "
                  "SELECT @@TRANCOUNT; INSERT INTO t (k) VALUES (1); ROLLBACK; SELECT @@TRANCOUNT")
    assert [x.rows for x in r if x.rows] == [[(2,)], [(1,)], [(0,)]]
    assert table.rows("SELECT COUNT(*) FROM t") == [(0,)]
    assert table.error("ROLLBACK").number == 3903


def test_ddl_in_rolled_back_transaction_disappears(table) -> None:
    table.run("BEGIN TRAN; CREATE TABLE gone (a int); INSERT INTO gone VALUES (1); ROLLBACK")
    assert table.error("SELECT * FROM gone").number == 208


def test_32_threads_insert_concurrently(engine, table) -> None:
    threads, per_thread, errors = 32, 50, []

    def work(n: int) -> None:
        s = _open(engine, 100 + n)
        try:
            for i in range(per_thread):
                if i % 10 == 0:
                    s.begin()
                for r in s.execute("INSERT INTO t (k, v) VALUES (@P1, @P2)",
                                   {"@P1": n, "@P2": str(i)}):
                    if r.error:
                        errors.append(r.error)
                if i % 10 == 9:
                    s.commit()
            s.execute_many("INSERT INTO t (k) VALUES (@P1)", [(n,)] * 100)
        finally:
            s.close()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    total = threads * (per_thread + 100)
    assert table.rows("SELECT COUNT(*), COUNT(DISTINCT id) FROM t") == [(total, total)]
    assert engine.metrics()["rows_inserted"]["appdb.dbo.t"] == total
    assert engine.metrics()["commits"] == threads * per_thread // 10


def test_execute_many_reports_per_row_errors(table) -> None:
    s = table.session
    errors = s.execute_many("INSERT INTO t (k, v) VALUES (@P1, @P2)",
                            [(1, "ok"), (None, "null"), (3, "much too long"), (4, "ok")])
    assert errors[0] is None and errors[3] is None
    assert (errors[1].number, errors[2].number) == (515, 2628)
    assert table.rows("SELECT k FROM t ORDER BY k") == [(1,), (4,)]
    assert table.rows("SELECT COUNT(*) FROM t") == [(2,)]


def test_execute_many_detects_duplicate_keys(db) -> None:
    db.run("CREATE TABLE u (id int PRIMARY KEY, v int); INSERT INTO u VALUES (1, 0)")
    errors = db.session.execute_many("INSERT INTO u (id, v) VALUES (@P1, 7)",
                                     [(1,), (2,), (2,), (3,)])
    assert [e.number if e else None for e in errors] == [2627, None, 2627, None]
    assert db.rows("SELECT id, v FROM u ORDER BY id") == [(1, 0), (2, 7), (3, 7)]


def test_metrics_count_only_committed_rows(engine, table) -> None:
    table.run("BEGIN TRAN; INSERT INTO t (k) VALUES (1), (2); ROLLBACK")
    table.run("BEGIN TRAN; INSERT INTO t (k) VALUES (3); COMMIT; INSERT INTO t (k) VALUES (4)")
    m = engine.metrics()
    assert m == {"rows_inserted": {"appdb.dbo.t": 2}, "commits": 1, "rollbacks": 1}


def test_execute_many_takes_text_casts_and_pieces_in_one_pass(db) -> None:
    db.run("CREATE TABLE c (id int NOT NULL, at datetime2(3) NULL, doc nvarchar(max) NULL, "
           "code nvarchar(5) NULL)")
    sql = ("INSERT INTO c (id, at, doc, code) VALUES (@P1, CAST(@P2 AS nvarchar(23)), "
           "(CAST(@P3 AS nvarchar(max)) + CAST(@P4 AS nvarchar(max))), "
           "CAST(@P5 AS nvarchar(3)))")
    errors = db.session.execute_many(sql, [
        (1, "2024-01-02 03:04:05.678", "ab", "cd", "xyzzy"),
        (2, None, "😀", "", "😀😀"),  # an astral character is two UTF-16 units
        (3, "2024-01-02", None, "lost", None),  # NULL + text is NULL
    ])
    assert errors == [None, None, None]
    assert db.rows("SELECT id, at, doc, code FROM c ORDER BY id") == [
        (1, dt.datetime(2024, 1, 2, 3, 4, 5, 678000), "abcd", "xyz"),
        (2, None, "😀", "😀"),
        (3, dt.datetime(2024, 1, 2), None, None)]
