"""Parameter arrays (one sp_execute per row in one RPC message) from real clients."""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import closing
from decimal import Decimal

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


# pyodbc keeps the GIL during fast_executemany, so these tests use the emulator in a child
# process (the emu_proc fixture); an in-process emulator could not answer.
def connect(emu, driver, autocommit=True):
    conn = pyodbc.connect(
        odbc_string(emu, driver),
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(emu.issue_token())},
        timeout=15, autocommit=autocommit)
    return closing(conn)


def test_fast_executemany_inserts_every_row_exactly(emu_proc, driver_path):
    rows = [(i, i * 0.25, f"naïve ☃ {i}", Decimal(i) / 100, dt.datetime(2024, 1, 1, 0, 0, i % 60),
             uuid.UUID(int=i)) for i in range(5000)]
    with connect(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pa_exact (i int, f float, s nvarchar(40), d decimal(12,2),"
                    " t datetime2(3), g uniqueidentifier)")
        cur.fast_executemany = True
        before = emu_proc.metrics()["rpc_calls"]
        cur.executemany("INSERT INTO dbo.pa_exact VALUES (?, ?, ?, ?, ?, ?)", rows)
        assert emu_proc.metrics()["rpc_calls"] - before >= len(rows)  # one call per row
        back = cur.execute("SELECT i, f, s, d, t, g FROM dbo.pa_exact ORDER BY i").fetchall()
    assert [(*tuple(r[:5]), uuid.UUID(str(r[5]))) for r in back] == rows


def test_error_in_one_call_stops_only_that_call(emu_proc, driver_path):
    with connect(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pa_err (id int PRIMARY KEY, v nvarchar(5) NOT NULL)")
        cur.execute("INSERT INTO dbo.pa_err VALUES (3, N'old')")
        cur.fast_executemany = True
        rows = [(1, "a"), (2, "b"), (3, "dup"), (4, "d"), (5, "e")]
        with pytest.raises(pyodbc.IntegrityError) as info:
            cur.executemany("INSERT INTO dbo.pa_err VALUES (?, ?)", rows)
        assert "2627" in str(info.value)
        got = cur.execute("SELECT id, v FROM dbo.pa_err ORDER BY id").fetchall()
    # SQL Server runs each sp_execute on its own: the duplicate fails, later rows still land.
    assert [tuple(r) for r in got] == [(1, "a"), (2, "b"), (3, "old"), (4, "d"), (5, "e")]


def test_parameter_array_in_a_rolled_back_transaction_leaves_nothing(emu_proc, driver_path):
    with connect(emu_proc, driver_path, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pa_tx (i int)")
        conn.commit()
        cur.fast_executemany = True
        cur.executemany("INSERT INTO dbo.pa_tx VALUES (?)", [(i,) for i in range(1000)])
        assert cur.execute("SELECT COUNT(*) FROM dbo.pa_tx").fetchone()[0] == 1000
        conn.rollback()
        assert cur.execute("SELECT COUNT(*) FROM dbo.pa_tx").fetchone()[0] == 0


def test_turbodbc_executemanycolumns_matches_source(emu_proc, driver_path):
    turbodbc = pytest.importorskip("turbodbc")
    pa = pytest.importorskip("pyarrow")
    n = 20000
    table = pa.table({
        "a": pa.array(range(n), pa.int64()),
        "b": pa.array([i * 0.5 for i in range(n)], pa.float64()),
        "c": pa.array([None if i % 7 == 0 else f"row {i} ✓" for i in range(n)]),
        "d": pa.array([dt.datetime(2020, 1, 1) + dt.timedelta(microseconds=i * 1001)
                       for i in range(n)], pa.timestamp("us")),
        "e": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
    })
    creds = emu_proc.credentials
    conn = turbodbc.connect(
        connection_string=odbc_string(emu_proc, driver_path, UID=creds.sql_login,
                                      PWD=creds.sql_password),
        turbodbc_options=turbodbc.make_options(autocommit=False))
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pa_turbo (a bigint, b float, c nvarchar(40), "
                    "d datetime2(6), e bit)")
        cur.executemanycolumns("INSERT INTO dbo.pa_turbo VALUES (?, ?, ?, ?, ?)", table)
        conn.commit()
        cur.execute("SELECT a, b, c, d, e FROM dbo.pa_turbo ORDER BY a")
        back = cur.fetchallarrow()
    finally:
        conn.close()
    assert back.num_rows == n
    for name in table.column_names:
        got = back.column(name).cast(table.schema.field(name).type)
        assert got.equals(table.column(name)), name


def test_described_parameter_types_follow_their_position(emu_proc, driver_path):
    """sp_describe_undeclared_parameters answers by ordinal in text order, so a parameter
    inside CAST (described as nvarchar) does not shift the others' types."""
    with connect(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pa_order (big decimal(20,0), s nvarchar(10), f float)")
        cur.fast_executemany = True
        rows = [("18446744073709551615", "x", 1.5), ("0", "yz", -2.25)]
        cur.executemany("INSERT INTO dbo.pa_order VALUES (CAST(? AS nvarchar(22)), ?, ?)", rows)
        got = cur.execute("SELECT big, s, f FROM dbo.pa_order ORDER BY f").fetchall()
    assert [(str(r[0]), r[1], r[2]) for r in got] == [("0", "yz", -2.25),
                                                      ("18446744073709551615", "x", 1.5)]
