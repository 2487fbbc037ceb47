"""Parameter arrays inserted column-wise (native decode_columns + sql.column_insert), from
real clients: the rows read back exactly, ``/metrics`` shows which path stored them, and
an array with a bad row goes row by row so that only that call fails, with its number."""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from decimal import Decimal

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pa = pytest.importorskip("pyarrow")
turbodbc = pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration

COLUMNS = ("k bigint NOT NULL, i int, f float, d1 decimal(18,4), d2 numeric(38,10), "
           "s1 nvarchar(40), s2 varchar(30), t datetime2(6), t2 datetime2(2), day date, ok bit")
INSERT = ("INSERT INTO dbo.{name} VALUES (?, ?, ?, CAST(? AS nvarchar(20)), "
          "CAST(? AS nvarchar(40)), ?, ?, ?, ?, ?, ?)")
BASE = dt.datetime(1999, 12, 31, 23, 59, 58)


def turbo(emu, driver):
    creds = emu.credentials
    return turbodbc.connect(
        connection_string=odbc_string(emu, driver, UID=creds.sql_login, PWD=creds.sql_password),
        turbodbc_options=turbodbc.make_options(autocommit=True, parameter_sets_to_buffer=5000))


def pyodbc_conn(emu, driver):
    return closing(pyodbc.connect(
        odbc_string(emu, driver),
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(emu.issue_token())},
        timeout=30, autocommit=True))


def source(n: int) -> dict[str, list]:
    def nul(i, k, v):
        return None if i % k == k - 1 else v
    return {
        "k": list(range(n)),
        "i": [nul(i, 7, (-1) ** i * i * 21_467) for i in range(n)],
        "f": [nul(i, 5, i / 7) for i in range(n)],
        "d1": [nul(i, 3, f"{'-' if i % 2 else ''}{i * 1_234_567 % 10**14}.{i % 9999:04d}")
               for i in range(n)],
        "d2": [nul(i, 4, f"{i * 98_765_432_109 % 10**27}.{i % 10**9:09d}5") for i in range(n)],
        "s1": [nul(i, 6, f"ünï {i} 😀" * (i % 3)) for i in range(n)],
        "s2": [nul(i, 8, f"row {i}") for i in range(n)],
        "t": [nul(i, 9, BASE + dt.timedelta(microseconds=i * 1_234_567)) for i in range(n)],
        "t2": [nul(i, 10, BASE + dt.timedelta(microseconds=i * 7_654_321)) for i in range(n)],
        "day": [nul(i, 11, dt.date(1400, 1, 1) + dt.timedelta(days=i * 97)) for i in range(n)],
        "ok": [nul(i, 12, i % 2 == 0) for i in range(n)],
    }


def arrow(cols: dict[str, list]) -> pa.Table:
    return pa.table({
        "k": pa.array(cols["k"], pa.int64()), "i": pa.array(cols["i"], pa.int64()),
        "f": pa.array(cols["f"], pa.float64()), "d1": pa.array(cols["d1"], pa.string()),
        "d2": pa.array(cols["d2"], pa.string()), "s1": pa.array(cols["s1"], pa.string()),
        "s2": pa.array(cols["s2"], pa.string()), "t": pa.array(cols["t"], pa.timestamp("us")),
        "t2": pa.array(cols["t2"], pa.timestamp("us")), "day": pa.array(cols["day"], pa.date32()),
        "ok": pa.array(cols["ok"], pa.bool_())})


def expected_row(cols: dict[str, list], i: int) -> tuple:
    def dec(text, places):
        return None if text is None else Decimal(text).quantize(Decimal(1).scaleb(-places),
                                                                "ROUND_HALF_UP")
    t2 = cols["t2"][i]
    if t2 is not None:  # datetime2(2): half-up to 10 ms
        micros = (t2.microsecond + 5000) // 10_000 * 10_000
        t2 = t2.replace(microsecond=0) + dt.timedelta(microseconds=micros)
    return (cols["k"][i], cols["i"][i], cols["f"][i], dec(cols["d1"][i], 4),
            dec(cols["d2"][i], 10), cols["s1"][i], cols["s2"][i], cols["t"][i], t2,
            cols["day"][i], cols["ok"][i])


def read_back(emu, driver, name: str) -> list[tuple]:
    with pyodbc_conn(emu, driver) as conn:
        return [tuple(r) for r in conn.cursor().execute(
            f"SELECT * FROM dbo.{name} ORDER BY k").fetchall()]


def test_turbodbc_arrays_go_column_wise_and_read_back_exactly(emu_proc, driver_path):
    n = 12_000
    cols = source(n)
    conn = turbo(emu_proc, driver_path)
    before = emu_proc.metrics()["columnar_rows"]
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE dbo.col_exact ({COLUMNS})")
        cur.executemanycolumns(INSERT.format(name="col_exact"), arrow(cols))
    finally:
        conn.close()
    assert emu_proc.metrics()["columnar_rows"] - before == n
    back = read_back(emu_proc, driver_path, "col_exact")
    assert back == [expected_row(cols, i) for i in range(n)]


@pytest.mark.parametrize(("column", "bad", "number"), [
    ("d1", "12x", 8114), ("s1", "x" * 41, 2628), ("i", 2**31, 8115)])
def test_a_bad_row_sends_its_array_row_by_row(emu_proc, driver_path, column, bad, number):
    n = 50
    cols = source(n)
    cols[column][17] = bad
    name = f"col_bad_{column}"
    conn = turbo(emu_proc, driver_path)
    before = emu_proc.metrics()["columnar_rows"]
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE dbo.{name} ({COLUMNS})")
        with pytest.raises(Exception) as info:
            cur.executemanycolumns(INSERT.format(name=name), arrow(cols))
        assert f"native error code: {number}" in str(info.value)
    finally:
        conn.close()
    assert emu_proc.metrics()["columnar_rows"] == before
    back = read_back(emu_proc, driver_path, name)
    assert back == [expected_row(cols, i) for i in range(n) if i != 17]


def test_pyodbc_fast_executemany_goes_column_wise(emu_proc, driver_path):
    rows = [(i, None if i % 5 == 4 else Decimal(i * 37) / 1000, f"😀 {i}" if i % 3 else None,
             dt.datetime(2024, 2, 29, 12, 0, 0, i * 10), dt.date(2000, 1, 1 + i % 28))
            for i in range(3000)]
    before = emu_proc.metrics()["columnar_rows"]
    with pyodbc_conn(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.col_pyodbc (k int, d decimal(12,3), s nvarchar(20), "
                    "t datetime2(7), day date)")
        cur.fast_executemany = True
        cur.executemany("INSERT INTO dbo.col_pyodbc VALUES (?, ?, ?, ?, ?)", rows)
        back = [tuple(r) for r in cur.execute(
            "SELECT * FROM dbo.col_pyodbc ORDER BY k").fetchall()]
    assert back == rows
    assert emu_proc.metrics()["columnar_rows"] - before == len(rows)


def test_primary_key_tables_go_column_wise_until_a_key_repeats(emu_proc, driver_path):
    conn = turbo(emu_proc, driver_path)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.col_pk (k bigint PRIMARY KEY, s nvarchar(10))")
        before = emu_proc.metrics()["columnar_rows"]
        cur.executemanycolumns("INSERT INTO dbo.col_pk VALUES (?, ?)", pa.table({
            "k": pa.array(range(100), pa.int64()), "s": pa.array([f"r{i}" for i in range(100)])}))
        assert emu_proc.metrics()["columnar_rows"] - before == 100
        with pytest.raises(Exception) as info:  # 42 is stored already
            cur.executemanycolumns("INSERT INTO dbo.col_pk VALUES (?, ?)", pa.table({
                "k": pa.array([100, 42, 101], pa.int64()), "s": pa.array(["a", "b", "c"])}))
        assert "native error code: 2627" in str(info.value)
        assert emu_proc.metrics()["columnar_rows"] - before == 100
        cur.execute("SELECT COUNT(*), MAX(k) FROM dbo.col_pk")
        assert list(cur.fetchone()) == [102, 101]
    finally:
        conn.close()
