"""Every SQL Server type round-trips through CREATE / INSERT literal / SELECT with pyodbc.

Microsoft's ODBC Driver 18 decodes what the emulator puts on the wire, so a wrong
TYPE_INFO, a wrong scale or a wrong PLP chunk shows up as a wrong Python value here.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from contextlib import closing
from decimal import Decimal

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

SQL_SS_TIMESTAMPOFFSET = -155  # pyodbc has no built-in converter for datetimeoffset

LONG_ASCII = "".join(chr(ord("a") + i % 26) for i in range(12_000))
LONG_UNICODE = "é😀☃" * 3_000  # 12,000 UTF-16 code units as nvarchar: 24,000 bytes of PLP
LONG_BINARY = bytes(range(256)) * 40  # 10,240 bytes


def _datetimeoffset(raw: bytes) -> dt.datetime:
    year, month, day, hour, minute, second, nanos, tz_h, tz_m = struct.unpack("<6hI2h", raw)
    tz = dt.timezone(dt.timedelta(hours=tz_h, minutes=tz_m))
    return dt.datetime(year, month, day, hour, minute, second, nanos // 1000, tz)


def _hexlit(data: bytes) -> str:
    return "0x" + data.hex()


# (name, declared type, T-SQL literal, expected Python value, description type code)
CASES: list[tuple[str, str, str, object, type]] = [
    ("c_bit", "bit", "1", True, bool),
    ("c_bit0", "bit", "0", False, bool),
    ("c_tinyint", "tinyint", "255", 255, int),
    ("c_smallint", "smallint", "-32768", -32768, int),
    ("c_int", "int", "-2147483648", -2147483648, int),
    ("c_bigint", "bigint", "9223372036854775807", 9223372036854775807, int),
    ("c_real", "real", "1.5", 1.5, float),
    ("c_float", "float", "3.141592653589793", 3.141592653589793, float),
    ("c_float_neg", "float", "-1.0E+300", -1.0e300, float),
    ("c_dec38", "decimal(38,10)", "1234567890123456789012345678.0123456789",
     Decimal("1234567890123456789012345678.0123456789"), Decimal),
    ("c_dec38_neg", "decimal(38,10)", "-0.0000000001", Decimal("-0.0000000001"), Decimal),
    ("c_dec", "decimal(10,3)", "-1234567.891", Decimal("-1234567.891"), Decimal),
    ("c_numeric", "numeric(18,4)", "12345678901234.5678", Decimal("12345678901234.5678"),
     Decimal),
    ("c_money", "money", "922337203685477.5807", Decimal("922337203685477.5807"), Decimal),
    ("c_money_neg", "money", "-922337203685477.5808", Decimal("-922337203685477.5808"), Decimal),
    ("c_smallmoney", "smallmoney", "-214748.3648", Decimal("-214748.3648"), Decimal),
    ("c_char", "char(5)", "'ab'", "ab   ", str),
    ("c_varchar", "varchar(50)", "'hello, world'", "hello, world", str),
    ("c_varchar_empty", "varchar(10)", "''", "", str),
    ("c_varchar_max", "varchar(max)", f"'{LONG_ASCII}'", LONG_ASCII, str),
    ("c_nchar", "nchar(4)", "N'ab'", "ab  ", str),
    ("c_nvarchar", "nvarchar(50)", "N'héllo 😀 ☃ 𝄞'", "héllo 😀 ☃ 𝄞", str),
    ("c_nvarchar_max", "nvarchar(max)", f"N'{LONG_UNICODE}'", LONG_UNICODE, str),
    ("c_varbinary", "varbinary(20)", "0x0102FF00", b"\x01\x02\xff\x00", bytearray),
    ("c_varbinary_max", "varbinary(max)", _hexlit(LONG_BINARY), LONG_BINARY, bytearray),
    ("c_date", "date", "'2024-02-29'", dt.date(2024, 2, 29), dt.date),
    ("c_date_min", "date", "'0001-01-01'", dt.date(1, 1, 1), dt.date),
    ("c_time0", "time(0)", "'23:59:59'", dt.time(23, 59, 59), dt.time),
    ("c_time3", "time(3)", "'12:34:56.789'", dt.time(12, 34, 56, 789000), dt.time),
    ("c_time7", "time(7)", "'01:02:03.123456'", dt.time(1, 2, 3, 123456), dt.time),
    ("c_time7_end", "time(7)", "'23:59:59.9999999'", dt.time(23, 59, 59, 999999), dt.time),
    ("c_datetime", "datetime", "'2024-01-02 03:04:05.997'",
     dt.datetime(2024, 1, 2, 3, 4, 5, 997000), dt.datetime),
    ("c_datetime_min", "datetime", "'1753-01-01 00:00:00'", dt.datetime(1753, 1, 1),
     dt.datetime),
    ("c_smalldatetime", "smalldatetime", "'2024-01-02 03:04:00'",
     dt.datetime(2024, 1, 2, 3, 4), dt.datetime),
    ("c_datetime2", "datetime2(7)", "'2024-06-01 12:00:00.123456'",
     dt.datetime(2024, 6, 1, 12, 0, 0, 123456), dt.datetime),
    ("c_datetime2_min", "datetime2(7)", "'0001-01-01 00:00:00'", dt.datetime(1, 1, 1),
     dt.datetime),
    ("c_datetime2_max", "datetime2(7)", "'9999-12-31 23:59:59.9999999'",
     dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime),
    ("c_datetime2_0", "datetime2(0)", "'2024-06-01 12:00:01'", dt.datetime(2024, 6, 1, 12, 0, 1),
     dt.datetime),
    ("c_datetime2_3", "datetime2(3)", "'2024-06-01 12:00:01.250'",
     dt.datetime(2024, 6, 1, 12, 0, 1, 250000), dt.datetime),
    ("c_dto", "datetimeoffset(7)", "'2024-06-01 12:00:00.123456 +05:30'",
     dt.datetime(2024, 6, 1, 12, 0, 0, 123456,
                 dt.timezone(dt.timedelta(hours=5, minutes=30))), dt.datetime),
    ("c_dto3", "datetimeoffset(3)", "'2024-06-01 23:30:00.500 -08:00'",
     dt.datetime(2024, 6, 1, 23, 30, 0, 500000, dt.timezone(dt.timedelta(hours=-8))),
     dt.datetime),
    ("c_dto0", "datetimeoffset(0)", "'2000-01-01 00:00:00 +00:00'",
     dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime),
    ("c_guid", "uniqueidentifier", "'6F9619FF-8B86-D011-B42D-00C04FC964FF'",
     uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF"), uuid.UUID),
]

# pyodbc's cursor.description type codes, and (precision, scale) where they are exact
DESCRIPTION_SIZE = {
    "c_dec38": (38, 10), "c_dec": (10, 3), "c_numeric": (18, 4), "c_money": (19, 4),
    "c_smallmoney": (10, 4), "c_char": (5, 0), "c_varchar": (50, 0), "c_nchar": (4, 0),
    "c_nvarchar": (50, 0), "c_varbinary": (20, 0), "c_time3": (12, 3), "c_time7": (16, 7),
    "c_datetime2": (27, 7), "c_datetime2_0": (19, 0), "c_dto3": (30, 3), "c_dto": (34, 7),
}


@pytest.fixture(scope="module")
def conn(emu, driver_path):
    token = emu.identity.issue_token()
    connection = pyodbc.connect(
        odbc_string(emu, driver_path), autocommit=True, timeout=15,
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})
    connection.add_output_converter(SQL_SS_TIMESTAMPOFFSET, _datetimeoffset)
    with closing(connection):
        yield connection


@pytest.fixture(scope="module")
def typed_table(conn):
    """One row of literals (id 1) and one of NULLs (id 2) in a table with every type."""
    pyodbc.native_uuid = True
    cur = conn.cursor()
    cols = ", ".join(f"{name} {sqltype} NULL" for name, sqltype, *_ in CASES)
    cur.execute(f"CREATE TABLE dbo.[all types] (id int NOT NULL PRIMARY KEY, {cols})")
    names = ", ".join(name for name, *_ in CASES)
    literals = ", ".join(literal for _, _, literal, *_ in CASES)
    cur.execute(f"INSERT INTO dbo.[all types] (id, {names}) VALUES (1, {literals})")
    assert cur.rowcount == 1
    cur.execute("INSERT INTO dbo.[all types] (id) VALUES (2)")
    try:
        cur.execute(f"SELECT id, {names} FROM dbo.[all types] ORDER BY id")
        description = cur.description
        rows = cur.fetchall()
    finally:
        pyodbc.native_uuid = False
    return description, rows


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_value_round_trips(typed_table, case):
    name, _, _, expected, _ = case
    description, rows = typed_table
    index = [d[0] for d in description].index(name)
    got = rows[0][index]
    assert got == expected
    if isinstance(expected, float):
        assert type(got) is float
    if isinstance(expected, dt.datetime) and expected.tzinfo is not None:
        assert got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_null_round_trips_and_description(typed_table, case):
    name, _, _, _, type_code = case
    description, rows = typed_table
    index = [d[0] for d in description].index(name)
    assert rows[1][index] is None
    column = description[index]
    if not name.startswith("c_dto"):  # with an output converter, pyodbc reports str
        assert column[1] is type_code
    assert column[6] is True  # nullable
    if name in DESCRIPTION_SIZE:
        assert (column[4], column[5]) == DESCRIPTION_SIZE[name]


def test_max_types_report_unbounded_size(typed_table):
    description, _ = typed_table
    sizes = {d[0]: d[3] for d in description}
    assert sizes["c_varchar_max"] == sizes["c_nvarchar_max"] == sizes["c_varbinary_max"] == 0


def test_expressions_and_casts_have_sql_server_types(conn):
    cur = conn.cursor()
    row = cur.execute(
        "SELECT CAST(1 AS tinyint), CAST(2.5 AS decimal(5,1)), CAST(N'x' AS nvarchar(3)), "
        "CAST('2020-01-01' AS date), CAST(NULL AS int), CAST(0x0A AS varbinary(4))").fetchone()
    assert list(row) == [1, Decimal("2.5"), "x", dt.date(2020, 1, 1), None, b"\x0a"]
    kinds = [d[1] for d in cur.description]
    assert kinds == [int, Decimal, str, dt.date, int, bytearray]


def test_large_result_spans_many_packets(emu, conn):
    cur = conn.cursor()
    cur.execute("CREATE TABLE dbo.big_result (id int NOT NULL, label nvarchar(40) NOT NULL, "
                "amount decimal(12,2) NULL)")
    total = 50_000
    chunk = 1000
    for start in range(0, total, chunk):
        values = ", ".join(
            f"({i}, N'row-{i:06d}-ü', {'NULL' if i % 7 == 0 else f'{i}.25'})"
            for i in range(start, start + chunk))
        cur.execute(f"INSERT INTO dbo.big_result VALUES {values}")
    sent_before = emu.metrics()["bytes_sent"]
    rows = cur.execute("SELECT id, label, amount FROM dbo.big_result ORDER BY id").fetchall()
    sent = emu.metrics()["bytes_sent"] - sent_before
    assert len(rows) == total
    assert sent > 100 * 8000  # well over a hundred 8000-byte packets
    for i in (0, 1, 7, 4999, 31_337, total - 1):
        expected = None if i % 7 == 0 else Decimal(f"{i}.25")
        assert tuple(rows[i]) == (i, f"row-{i:06d}-ü", expected)
    assert [r[0] for r in rows] == list(range(total))
    count, id_sum = cur.execute("SELECT COUNT(*), SUM(CAST(id AS bigint)) FROM dbo.big_result"
                                ).fetchone()
    assert (count, id_sum) == (total, total * (total - 1) // 2)
    assert type(id_sum) is int


def test_null_heavy_rows_use_nbcrow_and_decode(emu, conn):
    cur = conn.cursor()
    width = 40
    cols = ", ".join(f"c{i} int NULL" for i in range(width))
    cur.execute(f"CREATE TABLE dbo.sparse_rows (id int NOT NULL, {cols})")
    rows = 500
    for start in range(0, rows, 250):
        values = ", ".join(
            "(" + ", ".join([str(r)] + [str(r * 100 + c) if c == r % width else "NULL"
                                        for c in range(width)]) + ")"
            for r in range(start, start + 250))
        cur.execute(f"INSERT INTO dbo.sparse_rows VALUES {values}")
    select = "SELECT * FROM dbo.sparse_rows ORDER BY id"
    sent_before = emu.metrics()["bytes_sent"]
    got = cur.execute(select).fetchall()
    sent = emu.metrics()["bytes_sent"] - sent_before
    assert len(got) == rows
    for r, row in enumerate(got):
        expected = [r] + [r * 100 + c if c == r % width else None for c in range(width)]
        assert list(row) == expected
    # A ROW token spends one byte per NULL intn (41+ bytes a row); an NBCROW spends
    # a 6-byte bitmap plus the two present values (about 18 bytes a row).
    assert sent < rows * 30
