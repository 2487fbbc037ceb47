"""Parameter arrays of every supported type, from pyodbc and turbodbc, read back exactly.

What turbodbc 5.3.0 ``executemanycolumns`` sends through Microsoft's ODBC Driver 18
(seen in the emulator's DEBUG log and its ``/metrics``):

- ``cursor.prepare`` calls ``SQLDescribeParam``, so the driver sends
  ``sp_describe_undeclared_parameters`` first (turbodbc does NOT skip it). turbodbc turns
  each described type into its own buffer type; a described type it has no buffer for
  (varbinary, uniqueidentifier, time, datetimeoffset) makes ``prepare`` raise
  ``Unsupported type identifier`` on the client: nothing reaches the server. Loaders
  must send those as strings through ``CAST(? AS type)`` (described as nvarchar).
- Then ``sp_prepare`` with a parameter list taken from the Arrow types: int8-int64 and
  uint8-uint32 as ``bigint`` (INTN 8), bool ``bit`` (BITN), double ``float`` (FLTN 8),
  string ``nvarchar(n)`` (NVARCHAR, n grown from the longest value in the batch, PLP
  ``nvarchar(max)`` beyond 4000), date32 ``date`` (DATEN), timestamp[us] and
  timestamp[ns] ``datetime2`` (DATETIME2N; the driver refuses sub-microsecond
  fractions with 22008, so ns values must be whole microseconds).
- Then ONE RPC message per buffered batch (``parameter_sets_to_buffer``, default 1000
  rows) holding one ``sp_execute`` call per row; ``sp_unprepare`` at the end.
- Caveats of turbodbc itself: Arrow string/binary columns are copied into a buffer of the
  *described* type, so a string aimed at a float or decimal column arrives as garbage
  (and decimal(p>18, s>0) is described as float after turbodbc shrinks its initial
  string size); binary data is sent as text (only valid UTF-8 survives). Arrow ``null``
  columns fall through to the int8 converter in 5.3.0 (a missing ``break``) and may crash
  the process when other columns are present, so they are not used here. Strings are
  bound as nvarchar(n) with n grown from the longest value; a 3300-character value
  already failed with HY104 "Invalid precision value" in the driver (1000 worked).
- Python's datetime (what pyodbc and turbodbc bind) stops at microseconds; the 100 ns
  digit the emulator keeps is tested in ``test_hundred_nanoseconds.py``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import closing
from decimal import Decimal

import pytest
from support import (
    SQL_COPT_SS_ACCESS_TOKEN,
    SQL_SS_TIMESTAMPOFFSET,
    odbc_string,
    offset_text,
    token_struct,
)

pyodbc = pytest.importorskip("pyodbc")
# 100,000 rows of every type: up to 3 minutes on a loaded 2-core machine; 1200 s (not the
# suite's 300 s per test) is a bound for a hang only
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

N = 100_000


def connect(emu, driver, autocommit=True):
    conn = pyodbc.connect(
        odbc_string(emu, driver),
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(emu.issue_token())},
        timeout=30, autocommit=autocommit)
    return closing(conn)


def turbo_connect(emu, driver, autocommit=True):
    turbodbc = pytest.importorskip("turbodbc")
    creds = emu.credentials
    return turbodbc.connect(
        connection_string=odbc_string(emu, driver, UID=creds.sql_login, PWD=creds.sql_password),
        turbodbc_options=turbodbc.make_options(autocommit=autocommit))


def nul(i, k, value):
    """NULL in every k-th row (a different phase per column), else value."""
    return None if i % k == k - 1 else value


EPOCH = dt.datetime(2000, 1, 1)
TZ_OFFSETS = ["+05:30", "-08:00", "+00:00", "+14:00", "-14:00"]

# (column, SQL type): the target table of the pyodbc load.
PYODBC_COLUMNS = [
    ("c_tiny", "tinyint"), ("c_small", "smallint"), ("c_int", "int"), ("c_big", "bigint"),
    ("c_bit", "bit"), ("c_real", "real"), ("c_float", "float"),
    ("c_dec", "decimal(38,10)"), ("c_num", "numeric(18,4)"), ("c_money", "money"),
    ("c_smoney", "smallmoney"), ("c_vc", "varchar(40)"), ("c_nvc", "nvarchar(40)"),
    ("c_nmax", "nvarchar(max)"), ("c_vb", "varbinary(40)"), ("c_vbmax", "varbinary(max)"),
    ("c_date", "date"), ("c_time", "time(7)"), ("c_dt2", "datetime2(7)"),
    ("c_dto", "datetimeoffset(7)"), ("c_dt", "datetime"), ("c_guid", "uniqueidentifier"),
]


def dto_text(raw: bytes | None) -> str | None:
    """SQL_SS_TIMESTAMPOFFSET_STRUCT as 'YYYY-MM-DD hh:mm:ss.fffffff +hh:mm' (100 ns)."""
    return offset_text(raw, digits=7)


def pyodbc_row(i):
    big_text = "☃" * (4500 + i % 7) if i % 997 == 0 else f"max {i} ✓ naïve"
    dto = (f"{2000 + i % 50:04d}-{1 + i % 12:02d}-{1 + i % 28:02d} "
           f"{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{(i * 7919) % 1_000_000 * 10:07d} "
           f"{TZ_OFFSETS[i % 5]}")
    return (
        i,
        nul(i, 3, i % 256), nul(i, 4, (i % 65536) - 32768), nul(i, 5, i * 21_001 - 2**31 + 7),
        nul(i, 6, i * 92_233_720_368_547 - 2**62), nul(i, 7, i % 2 == 0),
        nul(i, 8, (i % 4096) * 0.25), nul(i, 9, i * 1.000_000_1e-3 - 17.5),
        nul(i, 10, Decimal(f"{i * 98765432109876}.{i % 10**10:010d}") * (-1 if i % 2 else 1)),
        nul(i, 11, Decimal(f"{i}.{i % 10000:04d}")),
        nul(i, 12, Decimal(f"{i * 9_000_000_001 - 450_000_000_000_000}.{i % 10000:04d}")),
        nul(i, 13, Decimal(f"{i % 200_000 - 100_000}.{i % 10000:04d}")),
        nul(i, 14, f"ascii {i}"), nul(i, 15, f"ünïcödé {i} ☃ 日本"),
        nul(i, 16, big_text),
        nul(i, 17, i.to_bytes(8, "little") + b"\x00\xff"),
        nul(i, 18, bytes([i % 256]) * (9000 if i % 991 == 0 else 1 + i % 50)),
        nul(i, 19, dt.date(1, 1, 1) + dt.timedelta(days=i * 36)),
        nul(i, 20, dt.time(i % 24, i % 60, (i * 13) % 60, (i * 7919) % 1_000_000)),
        nul(i, 21, EPOCH + dt.timedelta(seconds=i * 3677, microseconds=i * 7919 % 1_000_000)),
        nul(i, 22, dto),
        nul(i, 23, EPOCH + dt.timedelta(seconds=i * 613, milliseconds=(i % 100) * 10)),
        nul(i, 24, uuid.UUID(int=(i * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % 2**128)),
    )


def test_pyodbc_fast_executemany_every_type_exact(emu_proc, driver_path):
    rows = [pyodbc_row(i) for i in range(N)]
    columns = ", ".join(f"{name} {sqltype}" for name, sqltype in PYODBC_COLUMNS)
    names = [name for name, _ in PYODBC_COLUMNS]
    with connect(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE dbo.pat_pyodbc (k int PRIMARY KEY, {columns})")
        cur.fast_executemany = True
        cur.executemany(f"INSERT INTO dbo.pat_pyodbc (k, {', '.join(names)}) VALUES "
                        f"(?, {', '.join('?' * len(names))})", rows)
        conn.add_output_converter(SQL_SS_TIMESTAMPOFFSET, dto_text)
        back = cur.execute(f"SELECT k, {', '.join(names)} FROM dbo.pat_pyodbc ORDER BY k"
                           ).fetchall()
    assert len(back) == N
    guid = len(names)  # index of c_guid in a row
    for want, got in zip(rows, back, strict=True):
        got = tuple(got)
        got = (*got[:guid], None if got[guid] is None else uuid.UUID(got[guid]))
        assert got == want


# Arrow type -> (SQL type of the target column, how the statement takes the value)
def arrow_table(n):
    pa = pytest.importorskip("pyarrow")
    i = list(range(n))

    def col(values, typ=None):
        return pa.array(values, typ)

    return pa.table({
        "k": col(i, pa.int32()),
        "i8": col([nul(x, 3, x % 256 - 128) for x in i], pa.int8()),
        "i16": col([nul(x, 4, x % 65536 - 32768) for x in i], pa.int16()),
        "i32": col([nul(x, 5, x * 21_001 - 2**31 + 7) for x in i], pa.int32()),
        "i64": col([nul(x, 6, x * 92_233_720_368_547 - 2**62) for x in i], pa.int64()),
        "u8": col([nul(x, 7, x % 256) for x in i], pa.uint8()),
        "u16": col([nul(x, 8, x % 65536) for x in i], pa.uint16()),
        "u32": col([nul(x, 9, (x * 42_949) % 2**32) for x in i], pa.uint32()),
        "b": col([nul(x, 10, x % 3 == 0) for x in i], pa.bool_()),
        "f": col([nul(x, 11, x * 1.000_000_1e-3 - 17.5) for x in i], pa.float64()),
        "s": col([nul(x, 12, f"ünïcödé {x} ☃ 日本") for x in i], pa.string()),
        "smax": col([nul(x, 13, "x" * 1000 if x % 997 == 0 else f"max {x}") for x in i],
                    pa.string()),
        "bin": col([nul(x, 14, f"bytes {x}".encode()) for x in i], pa.binary()),
        "d": col([nul(x, 15, dt.date(1400, 1, 1) + dt.timedelta(days=x * 31)) for x in i],
                 pa.date32()),
        "tus": col([nul(x, 16, EPOCH + dt.timedelta(seconds=x * 3677,
                                                    microseconds=x * 7919 % 1_000_000))
                    for x in i], pa.timestamp("us")),
        "tns": col([nul(x, 17, EPOCH + dt.timedelta(seconds=x * 17,
                                                    microseconds=x * 31 % 1_000_000))
                    for x in i], pa.timestamp("us")).cast(pa.timestamp("ns")),
        "tdt": col([nul(x, 18, EPOCH + dt.timedelta(seconds=x * 613,
                                                    milliseconds=(x % 100) * 10))
                    for x in i], pa.timestamp("us")),
    })


# column -> SQL type for the turbodbc/pyodbc comparison tables
ARROW_SQL = {"k": "int PRIMARY KEY", "i8": "smallint", "i16": "smallint", "i32": "int",
             "i64": "bigint", "u8": "tinyint", "u16": "int", "u32": "bigint", "b": "bit",
             "f": "float", "s": "nvarchar(40)", "smax": "nvarchar(max)", "bin": "varchar(40)",
             "d": "date", "tus": "datetime2(7)", "tns": "datetime2(7)", "tdt": "datetime"}


def expected_rows(table):
    """The table's rows as Python values the way pyodbc reads them back."""
    pa = pytest.importorskip("pyarrow")
    cols = []
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us"))
        values = column.to_pylist()
        if name == "bin":
            values = [None if v is None else v.decode() for v in values]
        cols.append(values)
    return list(zip(*cols, strict=True))


def test_turbodbc_executemanycolumns_every_bound_arrow_type_exact(emu_proc, driver_path):
    table = arrow_table(N)
    names = table.column_names
    conn = turbo_connect(emu_proc, driver_path)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pat_turbo ("
                    + ", ".join(f"{n} {ARROW_SQL[n]}" for n in names) + ")")
        cur.executemanycolumns(f"INSERT INTO dbo.pat_turbo VALUES ({', '.join('?' * len(names))})",
                               table)
    finally:
        conn.close()
    with connect(emu_proc, driver_path) as check:
        back = check.cursor().execute(
            f"SELECT {', '.join(names)} FROM dbo.pat_turbo ORDER BY k").fetchall()
    want = expected_rows(table)
    assert len(back) == N
    for w, g in zip(want, back, strict=True):
        assert tuple(g) == w


def test_turbodbc_inserts_what_pyodbc_inserts_for_the_same_rows(emu_proc, driver_path):
    table = arrow_table(20_000)
    names = table.column_names
    create = ", ".join(f"{n} {ARROW_SQL[n]}" for n in names)
    insert = f"({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    conn = turbo_connect(emu_proc, driver_path)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE dbo.pat_same_t ({create})")
        cur.executemanycolumns(f"INSERT INTO dbo.pat_same_t {insert}", table)
    finally:
        conn.close()
    with connect(emu_proc, driver_path) as pconn:
        cur = pconn.cursor()
        cur.execute(f"CREATE TABLE dbo.pat_same_p ({create})")
        cur.fast_executemany = True
        cur.executemany(f"INSERT INTO dbo.pat_same_p {insert}", expected_rows(table))
        select = f"SELECT {', '.join(names)} FROM dbo.pat_same_{{}} ORDER BY k"
        from_turbo = [tuple(r) for r in cur.execute(select.format("t")).fetchall()]
        from_pyodbc = [tuple(r) for r in cur.execute(select.format("p")).fetchall()]
        # and the same in the engine's own terms: no row of one is missing from the other
        diff = cur.execute("SELECT COUNT(*) FROM (SELECT * FROM dbo.pat_same_t EXCEPT "
                           "SELECT * FROM dbo.pat_same_p) AS x").fetchone()[0]
    assert len(from_turbo) == 20_000
    assert from_turbo == from_pyodbc
    assert diff == 0


def cast_table(n):
    """SQL types turbodbc cannot bind, sent as strings the way a loader would."""
    pa = pytest.importorskip("pyarrow")
    i = list(range(n))
    return pa.table({
        "k": pa.array(i, pa.int32()),
        "dec": pa.array([nul(x, 3, f"{'-' if x % 2 else ''}{x * 98765432109876}."
                                   f"{x % 10**10:010d}") for x in i]),
        "num": pa.array([nul(x, 4, f"{x}.{x % 10000:04d}") for x in i]),
        "mon": pa.array([nul(x, 5, f"{x * 9_000_000_001 - 450_000_000_000_000}."
                                   f"{x % 10000:04d}") for x in i]),
        "g": pa.array([nul(x, 6, str(uuid.UUID(int=(x * 0x9E3779B97F4A7C15) % 2**128)))
                       for x in i]),
        "tm": pa.array([nul(x, 7, f"{x % 24:02d}:{x % 60:02d}:{(x * 13) % 60:02d}."
                                  f"{(x * 7919) % 1_000_000 * 10:07d}") for x in i]),
        "dto": pa.array([nul(x, 8, f"{2000 + x % 50:04d}-{1 + x % 12:02d}-{1 + x % 28:02d} "
                                   f"{x % 24:02d}:{x % 60:02d}:{(x * 7) % 60:02d}."
                                   f"{(x * 7919) % 1_000_000 * 10:07d} {TZ_OFFSETS[x % 5]}")
                         for x in i]),
    })


CAST_SQL = {"dec": "decimal(38,10)", "num": "numeric(18,4)", "mon": "money",
            "g": "uniqueidentifier", "tm": "time(7)", "dto": "datetimeoffset(7)"}


def test_turbodbc_strings_into_types_it_cannot_bind_exact(emu_proc, driver_path):
    n = 20_000
    table = cast_table(n)
    names = list(CAST_SQL)
    conn = turbo_connect(emu_proc, driver_path)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.pat_cast (k int PRIMARY KEY, "
                    + ", ".join(f"{c} {t}" for c, t in CAST_SQL.items()) + ")")
        casts = ", ".join(f"CAST(? AS {CAST_SQL[c]})" for c in names)
        cur.executemanycolumns(f"INSERT INTO dbo.pat_cast VALUES (?, {casts})", table)
    finally:
        conn.close()
    with connect(emu_proc, driver_path) as check:
        check.add_output_converter(SQL_SS_TIMESTAMPOFFSET, dto_text)
        back = check.cursor().execute(
            f"SELECT k, {', '.join(names)} FROM dbo.pat_cast ORDER BY k").fetchall()
    want = table.to_pylist()
    assert len(back) == n
    parse = {"dec": Decimal, "num": Decimal, "mon": Decimal, "g": str.upper,
             "tm": dt.time.fromisoformat, "dto": str}
    for w, g in zip(want, back, strict=True):
        got = dict(zip(["k", *names], g, strict=True))
        expect = {c: (v if v is None or c == "k" else parse[c](v)) for c, v in w.items()}
        assert got == expect


@pytest.mark.parametrize("sqltype", ["varbinary(10)", "uniqueidentifier", "time(7)",
                                     "datetimeoffset(7)"])
def test_turbodbc_refuses_described_types_it_has_no_buffer_for(emu_proc, driver_path, sqltype):
    pa = pytest.importorskip("pyarrow")
    name = "pat_refuse_" + sqltype.split("(")[0]
    conn = turbo_connect(emu_proc, driver_path)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE dbo.{name} (v {sqltype})")
        with pytest.raises(Exception, match="Unsupported type identifier"):
            cur.executemanycolumns(f"INSERT INTO dbo.{name} VALUES (?)",
                                   pa.table({"v": pa.array(["x"])}))
        cur.execute(f"SELECT COUNT(*) FROM dbo.{name}")
        assert cur.fetchone()[0] == 0
    finally:
        conn.close()


@pytest.mark.parametrize(("sqltype", "value", "number"), [
    ("nvarchar(5)", "toolong", 2628), ("tinyint", 300, 220), ("int NOT NULL", None, 515)])
def test_turbodbc_error_in_one_row_of_the_array(emu_proc, driver_path, sqltype, value, number):
    """Each sp_execute is its own statement (autocommit): the bad row fails with the real
    number, every other row of the array lands."""
    pa = pytest.importorskip("pyarrow")
    name = f"pat_rowerr_{number}"
    typ = pa.string() if isinstance(value, str) else pa.int64()
    good = "ok" if isinstance(value, str) else 7
    values = [good, good, value, good, good]
    conn = turbo_connect(emu_proc, driver_path)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE dbo.{name} (k int, v {sqltype})")
        with pytest.raises(Exception) as info:
            cur.executemanycolumns(f"INSERT INTO dbo.{name} VALUES (?, ?)", pa.table(
                {"k": pa.array(range(5), pa.int64()), "v": pa.array(values, typ)}))
        assert f"native error code: {number}" in str(info.value)
        if number == 2628:
            assert "'v'" in str(info.value) and "'toolo'" in str(info.value)
        cur.execute(f"SELECT k FROM dbo.{name} ORDER BY k")
        assert [r[0] for r in cur.fetchall()] == [0, 1, 3, 4]
    finally:
        conn.close()
