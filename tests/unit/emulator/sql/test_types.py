"""Every SQL Server type: CREATE, INSERT a literal, SELECT back the exact value and type."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azsql_emulator.sql.checks import make_converter, round_datetime
from azsql_emulator.sqltypes import SqlType
from azsql_emulator.tds.temporal import hns_of, with_hns

NON_BMP = "a\U0001F600é"
CASES = [
    ("bit", "1", True),
    ("tinyint", "255", 255),
    ("smallint", "-32768", -32768),
    ("int", "2147483647", 2147483647),
    ("bigint", "-9223372036854775808", -9223372036854775808),
    ("real", "1.5", 1.5),
    ("float", "0.1", 0.1),
    ("decimal(38,10)", "1234567890123456789012345678.0123456789",
     Decimal("1234567890123456789012345678.0123456789")),
    ("numeric(5,2)", "-123.45", Decimal("-123.45")),
    ("money", "922337203685477.5807", Decimal("922337203685477.5807")),
    ("char(5)", "'ab'", "ab   "),
    ("varchar(50)", "'hello'", "hello"),
    ("varchar(max)", "'" + "x" * 9000 + "'", "x" * 9000),
    ("nchar(3)", "N'é'", "é  "),
    ("nvarchar(100)", f"N'{NON_BMP}'", NON_BMP),
    ("nvarchar(max)", "N'" + "ü" * 5000 + "'", "ü" * 5000),
    ("varbinary(16)", "0x0102FF", b"\x01\x02\xff"),
    ("varbinary(max)", "0x" + "AB" * 9000, b"\xab" * 9000),
    ("date", "'2024-02-29'", dt.date(2024, 2, 29)),
    ("time(7)", "'23:59:59.123456'", dt.time(23, 59, 59, 123456)),
    ("datetime", "'2024-01-02 03:04:05.007'", dt.datetime(2024, 1, 2, 3, 4, 5, 7000)),
    ("datetime2(7)", "'0001-01-01 00:00:00.000001'", dt.datetime(1, 1, 1, 0, 0, 0, 1)),
    ("datetimeoffset(7)", "'2024-06-30 23:30:00.5 -05:30'",
     dt.datetime(2024, 6, 30, 23, 30, 0, 500000,
                 tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))),
    ("uniqueidentifier", "'6F9619FF-8B86-D011-B42D-00C04FC964FF'",
     uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")),
]


@pytest.mark.parametrize(("type_sql", "literal", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_round_trip(db, type_sql: str, literal: str, expected: object) -> None:
    db.run(f"CREATE TABLE dbo.rt (v {type_sql} NULL)")
    assert db.last(f"INSERT INTO dbo.rt (v) VALUES ({literal})").rowcount == 1
    result = db.last("SELECT v FROM dbo.rt")
    assert result.rows == [(expected,)]
    assert type(result.rows[0][0]) is type(expected)
    assert result.columns[0].type == SqlType.parse(type_sql)
    if isinstance(expected, dt.datetime) and expected.tzinfo:
        assert result.rows[0][0].utcoffset() == expected.utcoffset()
    db.run("INSERT INTO dbo.rt (v) VALUES (NULL)")
    assert db.rows("SELECT COUNT(*) FROM dbo.rt WHERE v IS NULL") == [(1,)]


def test_round_trip_through_parameters(db) -> None:
    db.run("CREATE TABLE p (d decimal(38,10), s nvarchar(100), t datetimeoffset(7), "
           "g uniqueidentifier, b varbinary(max), ts datetime2(7))")
    values = (Decimal("-0.0000000001"), NON_BMP,
              dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
              uuid.uuid4(), b"\x00" * 10, dt.datetime(2024, 1, 1, 0, 0, 0, 999999))
    db.run("INSERT INTO p VALUES (@P1, @P2, @P3, @P4, @P5, @P6)",
           {f"@P{i + 1}": v for i, v in enumerate(values)})
    assert db.rows("SELECT * FROM p") == [values]


def test_hundred_nanoseconds_are_kept_at_scale_7(db) -> None:
    db.run("CREATE TABLE tt (t time(7), d datetime2(7), o datetimeoffset(7), "
           "d6 datetime2(6), t6 time(6))")
    db.run("INSERT INTO tt VALUES ('10:00:00.1234567', '2024-01-01 00:00:00.9999996', "
           "'2024-01-01 00:00:00.0000001 +02:00', '2024-01-01 00:00:00.9999996', "
           "'23:59:59.9999996')")
    ((t, d, o, d6, t6),) = db.rows("SELECT t, d, o, d6, t6 FROM tt")
    assert (t, hns_of(t)) == (with_hns(dt.time(10, 0, 0, 123456), 7), 7)
    assert (d, hns_of(d)) == (with_hns(dt.datetime(2024, 1, 1, 0, 0, 0, 999999), 6), 6)
    assert d != dt.datetime(2024, 1, 1, 0, 0, 0, 999999)
    assert (str(o), hns_of(o)) == ("2024-01-01 00:00:00.0000001+02:00", 1)
    # scale 6 rounds the 100 ns digit half-up (time wraps past midnight)
    assert (d6, hns_of(d6)) == (dt.datetime(2024, 1, 1, 0, 0, 1), 0)
    assert t6 == dt.time(0)
    # the stored digit decides equality, order and the text SQL Server shows
    db.run("INSERT INTO tt (d) VALUES ('2024-01-01 00:00:00.9999995')")
    assert db.rows("SELECT COUNT(*) FROM tt a JOIN tt b ON a.d = b.d") == [(2,)]
    assert [str(r[0]) for r in db.rows("SELECT CONVERT(nvarchar(30), d, 121) FROM tt "
                                       "ORDER BY d")] == ["2024-01-01 00:00:00.9999995",
                                                          "2024-01-01 00:00:00.9999996"]
    assert db.rows("SELECT CAST(t AS varchar(20)) FROM tt WHERE t IS NOT NULL") == [
        ("10:00:00.1234567",)]
    assert [str(v) for (v,) in db.rows("SELECT MAX(d) FROM tt")] == [
        "2024-01-01 00:00:00.9999996"]
    # computing with the value sees its microseconds
    assert db.rows("SELECT DATEADD(day, 1, d) FROM tt WHERE d6 IS NOT NULL") == [
        (dt.datetime(2024, 1, 2, 0, 0, 0, 999999),)]


def test_datetime_rounds_to_ticks() -> None:
    assert round_datetime(dt.datetime(2024, 1, 1, 0, 0, 0, 1000)).microsecond == 0
    assert round_datetime(dt.datetime(2024, 1, 1, 0, 0, 0, 2000)).microsecond == 3000
    assert round_datetime(dt.datetime(2024, 1, 1, 0, 0, 0, 5000)).microsecond == 7000


@pytest.mark.parametrize(("expr", "type_sql"), [
    ("COUNT(*)", "int"), ("COUNT_BIG(*)", "bigint"), ("1", "int"), ("'x'", "varchar(1)"),
    ("N'xy'", "nvarchar(2)"), ("1.5", "numeric(2,1)"), ("CAST(1 AS bigint)", "bigint"),
    ("CONVERT(nvarchar(20), 5)", "nvarchar(20)"), ("GETDATE()", "datetime"),
    ("SYSUTCDATETIME()", "datetime2(7)"), ("NEWID()", "uniqueidentifier"),
])
def test_expression_types(db, expr: str, type_sql: str) -> None:
    assert db.last(f"SELECT {expr}").columns[0].type == SqlType.parse(type_sql)


def test_aggregate_types_follow_sql_server(db) -> None:
    db.run("CREATE TABLE a (i int, s smallint, d decimal(10,2), f float, m money)")
    db.run("INSERT INTO a VALUES (1, 2, 1.25, 0.5, 1), (3, 4, 2.50, 1.5, 2)")
    r = db.last("SELECT SUM(i), SUM(s), SUM(d), SUM(f), MIN(d), MAX(m), AVG(i) FROM a")
    assert [c.type.sql() for c in r.columns] == [
        "int", "int", "decimal(38,2)", "float", "decimal(10,2)", "money", "int"]
    assert r.rows == [(4, 6, Decimal("3.75"), 2.0, Decimal("1.25"), Decimal("2.0000"), 2)]


def test_duckdb_result_types_map_sensibly(db) -> None:
    r = db.last("SELECT CAST(1 AS bigint) + 1, 1e0 * 2, REPLICATE('a', 5000)")
    assert [c.type.sql() for c in r.columns][:2] == ["bigint", "float"]


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=Decimal("-999.99"), max_value=Decimal("999.99"), places=2))
def test_decimal_converter_is_exact(value: Decimal) -> None:
    assert make_converter(SqlType.parse("decimal(5,2)"), "c", "t")(value, None) == value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_nvarchar_converter_keeps_code_points(text: str) -> None:
    conv = make_converter(SqlType.parse("nvarchar(max)"), "c", "t")
    assert conv(text, None) == text


def test_decimal_38_extremes_from_text_parameters(db, session):
    """abs() in Python's 28-digit decimal context once rounded these up into an overflow."""
    db.run("CREATE TABLE dbo.wide_dec (a decimal(38,10))")
    top = "9999999999999999999999999999.9999999999"
    errors = session.execute_many("INSERT INTO dbo.wide_dec VALUES (@P1)", [[top], ["-" + top]])
    assert errors == [None, None]
    rows = db.rows("SELECT a FROM dbo.wide_dec ORDER BY a")
    assert [str(r[0]) for r in rows] == ["-" + top, top]
    too_big = session.execute_many("INSERT INTO dbo.wide_dec VALUES (@P1)", [["1" + "0" * 28]])
    assert too_big[0] is not None and too_big[0].number == 8115


@pytest.mark.parametrize(("expr", "expected"), [
    ("CONVERT(varbinary(max), '00ff10', 2)", b"\x00\xff\x10"),
    ("CONVERT(varbinary(10), '0x00FF', 1)", b"\x00\xff"),
    ("CONVERT(varbinary(max), CAST('' AS varchar(max)), 2)", b""),
    ("CONVERT(varbinary(4), 'ab')", b"ab"),  # style 0: the text's own bytes
])
def test_convert_to_binary_styles(db, expr: str, expected: bytes) -> None:
    assert db.rows(f"SELECT {expr}") == [(expected,)]


@pytest.mark.parametrize("type_text", ["datetime2(0)", "datetimeoffset(3)"])
def test_rounding_past_the_last_day_is_242_not_a_crash(type_text):
    from azsql_emulator.errors import SqlError

    convert = make_converter(SqlType.parse(type_text), "c", "db.dbo.t")
    with pytest.raises(SqlError) as info:
        convert(dt.datetime(9999, 12, 31, 23, 59, 59, 999_999), None)
    assert info.value.number == 242 and "out-of-range value" in info.value.message
    assert convert(dt.datetime(9999, 12, 31, 23, 59, 59), None) is not None  # still fits


def test_time_rounding_on_the_last_day_wraps_like_any_other_day():
    convert = make_converter(SqlType.parse("time(0)"), "c", "db.dbo.t")
    assert convert(dt.datetime(9999, 12, 31, 23, 59, 59, 999_999), None) == dt.time(0, 0)
    assert convert(dt.datetime(2024, 5, 6, 12, 0, 0, 600_000), None) == dt.time(12, 0, 1)


def test_hundred_nanoseconds_in_queries(db) -> None:
    """Where a datetime2(7)/time(7)/datetimeoffset(7) column keeps its 100 ns digit (moved,
    compared with its like, grouped, sorted) and where it is computed with (microseconds)."""
    db.run("CREATE TABLE s (k int, d datetime2(7), o datetimeoffset(7))")
    db.run("CREATE TABLE t (k int, d datetime2(7) PRIMARY KEY, o datetimeoffset(7))")
    db.run("INSERT INTO s VALUES (1, '2024-01-01 00:00:00.0000001', "
           "'2024-01-01 00:00:00.0000001 +01:00'), (2, '2024-01-01 00:00:00.0000002', "
           "'2024-01-01 00:00:00.0000002 +01:00'), (3, '2024-01-01 00:00:00.0000002', NULL)")
    # MERGE on the 100 ns key: k=3 repeats k=2's key, so only two distinct keys
    db.run("MERGE t USING (SELECT MIN(k) AS k, d, MAX(o) AS o FROM s GROUP BY d) AS src "
           "ON t.d = src.d WHEN MATCHED THEN UPDATE SET o = src.o "
           "WHEN NOT MATCHED THEN INSERT (k, d, o) VALUES (src.k, src.d, src.o);")
    assert [(k, str(d), str(o)) for k, d, o in db.rows("SELECT k, d, o FROM t ORDER BY d")] == [
        (1, "2024-01-01 00:00:00.0000001", "2024-01-01 00:00:00.0000001+01:00"),
        (2, "2024-01-01 00:00:00.0000002", "2024-01-01 00:00:00.0000002+01:00")]
    assert db.error("INSERT INTO t (k, d) SELECT 9, d FROM s WHERE k = 3").number == 2627
    # set operations, DISTINCT, windows and subqueries keep the digit
    assert [str(d) for (d,) in db.rows(
        "SELECT d FROM s UNION SELECT d FROM t ORDER BY 1")] == [
        "2024-01-01 00:00:00.0000001", "2024-01-01 00:00:00.0000002"]
    assert db.rows("SELECT COUNT(DISTINCT d) FROM s") == [(2,)]
    assert [r[0] for r in db.rows(
        "SELECT ROW_NUMBER() OVER (PARTITION BY d ORDER BY k) FROM s ORDER BY k")] == [1, 1, 2]
    assert [str(r[0]) for r in db.rows(
        "SELECT x.d FROM (SELECT d FROM s WHERE k = 1) AS x")] == ["2024-01-01 00:00:00.0000001"]
    # computing: a comparison with a literal or parameter, DATEDIFF, COALESCE see microseconds
    assert db.rows("SELECT COUNT(*) FROM s WHERE d > '2023-12-31'") == [(3,)]
    assert db.rows("SELECT COUNT(*) FROM s WHERE d >= @p",
                   {"@p": dt.datetime(2024, 1, 1)}) == [(3,)]
    assert db.rows("SELECT DATEDIFF(second, d, '2024-01-01 00:00:10') FROM s WHERE k = 1") \
        == [(10,)]
    # (a computed datetimeoffset is its instant: the offset is not kept)
    assert db.rows("SELECT COALESCE(o, SYSDATETIMEOFFSET()) FROM s WHERE k = 1")[0][0] == \
        dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC)
    assert db.rows("SELECT COUNT(*) FROM s WHERE o < '2024-01-01 00:00:00+00:00'") == [(2,)]


def test_hundred_nanoseconds_in_subqueries(db) -> None:
    """A subquery whose output is a value (IN, a scalar subquery) is computed with: both
    sides see microseconds; a derived table or MERGE source keeps the digit."""
    db.run("CREATE TABLE a (k int, d datetime2(7))")
    db.run("CREATE TABLE b (k int, d datetime2(7))")
    db.run("INSERT INTO a VALUES (1, '2024-01-01 00:00:00.0000001')")
    db.run("INSERT INTO b VALUES (1, '2024-01-01 00:00:00.0000002')")
    assert db.rows("SELECT COUNT(*) FROM a WHERE d IN (SELECT d FROM b)") == [(1,)]
    assert db.rows("SELECT COUNT(*) FROM a WHERE d = (SELECT MAX(d) FROM b)") == [(1,)]
    assert db.rows("SELECT (SELECT MAX(d) FROM b)") == [(dt.datetime(2024, 1, 1),)]
    assert [str(d) for (d,) in db.rows("SELECT x.d FROM (SELECT d FROM b) AS x")] == [
        "2024-01-01 00:00:00.0000002"]
    # columns compared directly still see the digit
    assert db.rows("SELECT COUNT(*) FROM a JOIN b ON a.d = b.d") == [(0,)]
