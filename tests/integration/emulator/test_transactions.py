"""Transactions through pyodbc and Microsoft's driver: TM requests and T-SQL BEGIN TRAN."""

from __future__ import annotations

import socket
import time
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def connect(emu, driver, *, autocommit):
    token = emu.identity.issue_token()
    return closing(pyodbc.connect(
        odbc_string(emu, driver), autocommit=autocommit, timeout=15,
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}))


def count(conn, table):
    return conn.cursor().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def wait_until(predicate, timeout=120.0):  # a bound for a hang; a busy machine never hits it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def table(emu, driver_path, request):
    name = f"dbo.tx_{request.node.name.replace('[', '_').replace(']', '')}"
    with connect(emu, driver_path, autocommit=True) as conn:
        conn.cursor().execute(f"CREATE TABLE {name} (id int NOT NULL PRIMARY KEY, v nvarchar(20))")
    return name


def test_commit_persists(emu, driver_path, table):
    commits = emu.metrics()["commits"]
    with connect(emu, driver_path, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table} VALUES (1, N'one'), (2, N'two')")
        conn.commit()
    with connect(emu, driver_path, autocommit=True) as other:
        assert count(other, table) == 2
    assert emu.metrics()["commits"] > commits


def test_rollback_discards(emu, driver_path, table):
    rollbacks = emu.metrics()["rollbacks"]
    with connect(emu, driver_path, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table} VALUES (1, N'keep')")
        conn.commit()
        cur.execute(f"INSERT INTO {table} VALUES (2, N'discard')")
        cur.execute(f"UPDATE {table} SET v = N'changed' WHERE id = 1")
        assert count(conn, table) == 2  # the session sees its own writes
        conn.rollback()
        assert [tuple(r) for r in cur.execute(f"SELECT id, v FROM {table}")] == [(1, "keep")]
        # the connection goes on in a new transaction after rollback
        cur.execute(f"INSERT INTO {table} VALUES (3, N'three')")
        conn.commit()
    with connect(emu, driver_path, autocommit=True) as other:
        rows = other.cursor().execute(f"SELECT id, v FROM {table} ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(1, "keep"), (3, "three")]
    assert emu.metrics()["rollbacks"] > rollbacks


def test_uncommitted_rows_are_invisible_to_other_sessions(emu, driver_path, table):
    with connect(emu, driver_path, autocommit=False) as writer, \
            connect(emu, driver_path, autocommit=True) as reader:
        writer.cursor().execute(f"INSERT INTO {table} VALUES (1, N'pending')")
        assert count(writer, table) == 1
        assert count(reader, table) == 0
        spid = writer.cursor().execute("SELECT @@SPID").fetchone()[0]
        info = {s["spid"]: s for s in emu.tds.sessions_info()}
        assert info[spid]["in_transaction"] is True
        writer.commit()
        assert count(reader, table) == 1


def test_dropped_connection_rolls_back(emu, driver_path, table):
    with connect(emu, driver_path, autocommit=True) as reader, \
            connect(emu, driver_path, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table} VALUES (1, N'lost')")
        spid = cur.execute("SELECT @@SPID").fetchone()[0]
        # Drop the TCP connection under the session: it dies mid-transaction.
        session = next(s for s in emu.tds._sessions.values() if s.spid == spid)
        session.sock.shutdown(socket.SHUT_RDWR)
        assert wait_until(lambda: spid not in {s["spid"] for s in emu.tds.sessions_info()})
        assert count(reader, table) == 0
        # the key is free again: nothing of the dead transaction is left behind
        reader.cursor().execute(f"INSERT INTO {table} VALUES (1, N'free again')")
        assert count(reader, table) == 1


def test_client_close_without_commit_rolls_back(emu, driver_path, table):
    with connect(emu, driver_path, autocommit=False) as conn:
        conn.cursor().execute(f"INSERT INTO {table} VALUES (1, N'never committed')")
    with connect(emu, driver_path, autocommit=True) as other:
        assert count(other, table) == 0


def test_tsql_begin_commit_and_rollback_in_batches(emu, driver_path, table):
    with connect(emu, driver_path, autocommit=True) as conn, \
            connect(emu, driver_path, autocommit=True) as other:
        cur = conn.cursor()
        cur.execute(f"BEGIN TRAN; INSERT INTO {table} VALUES (1, N'a'); "
                    f"INSERT INTO {table} VALUES (2, N'b');")
        assert cur.execute("SELECT @@TRANCOUNT").fetchone()[0] == 1
        assert count(other, table) == 0
        cur.execute("COMMIT TRAN")
        assert cur.execute("SELECT @@TRANCOUNT").fetchone()[0] == 0
        assert count(other, table) == 2
        cur.execute(f"BEGIN TRANSACTION; DELETE FROM {table} WHERE id = 1; "
                    "ROLLBACK TRANSACTION;")
        assert count(other, table) == 2
        cur.execute(f"SET NOCOUNT ON; BEGIN TRAN; INSERT INTO {table} VALUES (3, N'c'); "
                    "COMMIT;")
        assert count(other, table) == 3
        # autocommit still works after the explicit transactions
        cur.execute(f"INSERT INTO {table} VALUES (4, N'd')")
        assert count(other, table) == 4


def test_error_in_transaction_leaves_connection_usable(emu, driver_path, table):
    with connect(emu, driver_path, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table} VALUES (1, N'x')")
        with pytest.raises(pyodbc.IntegrityError, match="2627"):
            cur.execute(f"INSERT INTO {table} VALUES (1, N'dup')")
        conn.rollback()
        cur.execute(f"INSERT INTO {table} VALUES (5, N'y')")
        conn.commit()
        assert [tuple(r) for r in cur.execute(f"SELECT id FROM {table}").fetchall()] == [(5,)]
