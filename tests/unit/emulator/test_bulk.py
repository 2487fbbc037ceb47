"""INSERT BULK parsing, sp_describe_first_result_set, and BULK_LOAD rows decoded column-wise
(native decode_rows) and row-wise, stored by a real in-memory SQL engine."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azsql_emulator.bulk import BulkTarget, apply_rows, decode_bulk_load, parse_insert_bulk
from azsql_emulator.errors import SqlError
from azsql_emulator.first_result_set import batch_call, describe_first_result_set
from azsql_emulator.sql import SessionUser, SqlEngine, SqlSession
from azsql_emulator.sqltypes import ColumnInfo, SqlType
from azsql_emulator.tds.resultset import encode_colmetadata, encode_row
from azsql_emulator.tds.tokens import Done, encode_done
from azsql_emulator.tds.typeinfo import type_info_for
from azsql_emulator.tds.values import encode_column_value

OWNER = SessionUser("dbo", "app@tenant", frozenset({"db_owner"}), 51)
NARROW = ("id bigint NOT NULL PRIMARY KEY, i int, t tinyint, b bit, f float, "
          "d decimal(18,2), s nvarchar(20), dd date, tm time(7), ts datetime2(7), "
          "u uniqueidentifier, vb varbinary(16), o datetimeoffset(7)")
NARROW_TYPES = [SqlType.parse(t) for t in (
    "bigint", "int", "tinyint", "bit", "float", "decimal(18,2)", "nvarchar(20)", "date",
    "time(7)", "datetime2(7)", "uniqueidentifier", "varbinary(16)", "datetimeoffset(7)")]
NAMES = ["id", "i", "t", "b", "f", "d", "s", "dd", "tm", "ts", "u", "vb", "o"]


@pytest.fixture(scope="module")
def engine() -> Iterator[SqlEngine]:
    eng = SqlEngine()
    yield eng
    eng.close()


@pytest.fixture
def session(engine: SqlEngine) -> Iterator[SqlSession]:
    s = engine.open_session("appdb", OWNER)
    yield s
    s.close()


def run(session: SqlSession, sql: str) -> list[tuple]:
    result = session.execute(sql)[-1]
    assert result.error is None, result.error
    return result.rows


def payload(types: list[SqlType], names: list[str], rows: list[list[object]], *,
            nbcrow: bool = False) -> bytes:
    """A BULK_LOAD message: COLMETADATA, a ROW token per row (as Microsoft's driver sends
    them; with ``nbcrow``, NBCROW where it is smaller, as python-tds may), DONE."""
    columns = [ColumnInfo(n, t) for n, t in zip(names, types, strict=True)]
    infos = [type_info_for(t) for t in types]

    def row(values: list[object]) -> bytes:
        if nbcrow:
            return encode_row(columns, values)
        return b"\xd1" + b"".join(encode_column_value(ti, v)
                                   for ti, v in zip(infos, values, strict=True))
    return (encode_colmetadata(columns) + b"".join(row(r) for r in rows)
            + encode_done(Done(rowcount=len(rows))))


# -- INSERT BULK ----------------------------------------------------------------------------

def test_insert_bulk_as_driver_18_sends_it():
    text = ("insert bulk dbo.bcp_all([id] bigint,[d] decimal(18,2),[s] nvarchar(20) collate "
            "SQL_Latin1_General_CP1_CI_AS,[sm] nvarchar(max) collate "
            "SQL_Latin1_General_CP1_CI_AS,[vbm] varbinary(max))")
    target = parse_insert_bulk(text)
    assert target == BulkTarget("dbo.bcp_all", ["[id]", "[d]", "[s]", "[sm]", "[vbm]"], "", {})


def test_insert_bulk_hints():
    target = parse_insert_bulk(
        "INSERT BULK [my db].[dbo].[t]]x] ([a] int, [b (x)] decimal(10, 2)) WITH (TABLOCK, "
        "CHECK_CONSTRAINTS, FIRE_TRIGGERS, KEEP_NULLS, ORDER([a] ASC, [b (x)] DESC), "
        "ROWS_PER_BATCH = 5000, KILOBYTES_PER_BATCH=64);")
    assert target is not None
    assert target.table == "[my db].[dbo].[t]]x]"
    assert target.columns == ["[a]", "[b (x)]"]
    assert target.hints == {"TABLOCK": True, "CHECK_CONSTRAINTS": True, "FIRE_TRIGGERS": True,
                            "KEEP_NULLS": True, "ORDER": "[a] ASC, [b (x)] DESC",
                            "ROWS_PER_BATCH": 5000, "KILOBYTES_PER_BATCH": 64}


@pytest.mark.parametrize("text", ["insert bulk t (a int) with (NOLOCK)",
                                  "insert bulk t (a int) with (TABLOCK",
                                  "insert bulk t (a int) garbage"])
def test_insert_bulk_bad_hints_are_102(text):
    with pytest.raises(SqlError) as info:
        parse_insert_bulk(text)
    assert info.value.number == 102


def test_other_statements_are_not_insert_bulk():
    assert parse_insert_bulk("insert into t values (1)") is None
    assert parse_insert_bulk("select 1") is None


# -- sp_describe_first_result_set ---------------------------------------------------------

@pytest.mark.parametrize(("text", "tsql"), [
    ("exec sp_describe_first_result_set N'select * from dbo.t'", "select * from dbo.t"),
    ("EXECUTE sys.sp_describe_first_result_set @tsql = N'select ''x'' from t';",
     "select 'x' from t"),
    ("sp_describe_first_result_set N'select 1', NULL, 0", "select 1"),
])
def test_batch_call(text, tsql):
    assert batch_call(text) == tsql


def test_batch_call_ignores_other_batches():
    assert batch_call("exec sp_describe_first_result_set N'a'; select 1") is None
    assert batch_call("select 1") is None


def test_describe_select_star_from_the_catalog(session):
    run(session, "CREATE TABLE dbo.desc_t (id int IDENTITY(1,1) NOT NULL, s nvarchar(max))")
    result = describe_first_result_set(session, "select * from dbo.desc_t")
    names = [c.name for c in result.columns]
    rows = [dict(zip(names, r, strict=True)) for r in result.rows]
    assert [(r["name"], r["is_nullable"], r["system_type_name"], r["max_length"],
             r["is_identity_column"], r["is_updateable"], r["tds_type_id"], r["tds_length"])
            for r in rows] == [("id", False, "int", 4, True, False, 0x26, 4),
                               ("s", True, "nvarchar(max)", -1, False, True, 0xE7, 0xFFFF)]
    assert rows[1]["tds_collation_id"] == 0x00D00409 and rows[1]["tds_collation_sort_id"] == 52


def test_describe_other_selects_and_batches(session):
    result = describe_first_result_set(session, "select 1 as one, N'x' as two")
    assert [(r[2], r[5]) for r in result.rows] == [("one", "int"), ("two", "nvarchar(1)")]
    assert describe_first_result_set(session, "set nocount on").rows == []


def test_describe_unknown_table_is_208(session):
    with pytest.raises(SqlError) as info:
        describe_first_result_set(session, "select * from dbo.nowhere")
    assert info.value.number == 208


# -- BULK_LOAD rows -------------------------------------------------------------------------

ROW = st.tuples(
    st.integers(-2**31, 2**31 - 1) | st.none(),
    st.integers(0, 255) | st.none(),
    st.booleans() | st.none(),
    st.floats(allow_nan=False, allow_infinity=False) | st.none(),
    st.decimals(min_value=Decimal("-9999999999999999.99"), max_value=Decimal("9999999999999999.99"),
                places=2, allow_nan=False, allow_infinity=False) | st.none(),
    st.text(max_size=20).filter(lambda s: len(s.encode("utf-16-le")) <= 40) | st.none(),
    st.dates() | st.none(),
    st.times() | st.none(),
    st.datetimes() | st.none(),
    st.uuids() | st.none(),
    st.binary(max_size=16) | st.none(),
    st.builds(lambda d, m: d.replace(tzinfo=dt.timezone(dt.timedelta(minutes=m))),
              st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
              st.integers(-840, 840)) | st.none(),
)


def load_both_ways(session: SqlSession, rows: list[list[object]], suffix: str, *,
                   nbcrow: bool = False) -> tuple[list[tuple], list[tuple], bool]:
    """Store ``rows`` through the column-wise and the row-wise decoder into two tables."""
    data = payload(NARROW_TYPES, NAMES, rows, nbcrow=nbcrow)
    out = []
    columnar_used = False
    for columnar in (True, False):
        table = f"dbo.bulk_{suffix}_{int(columnar)}"
        run(session, f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({NARROW})")
        load = decode_bulk_load(data, columnar=columnar)
        target = BulkTarget(table, [f"[{n}]" for n in NAMES], "", {})
        assert apply_rows(session, target, load) == len(rows)
        columnar_used |= load.applied_columnar
        out.append(run(session, f"SELECT * FROM {table} ORDER BY id"))
    return out[0], out[1], columnar_used


@settings(max_examples=30)
@given(st.lists(ROW, min_size=1, max_size=30))
def test_column_wise_and_row_wise_bulk_rows_store_the_same(engine, values):
    session = engine.open_session("appdb", OWNER)
    try:
        rows = [[k, *v] for k, v in enumerate(values)]
        columnar, rowwise, used = load_both_ways(session, rows, "prop")
    finally:
        session.close()
    assert columnar == rowwise
    assert used


def test_bulk_rows_edge_values_column_wise(session):
    rows = [[1, -2**31, 255, True, -2.5e300, Decimal("-9999999999999999.99"),
             "snow \u2603 \U0001d11e", dt.date(1, 1, 1), dt.time(23, 59, 59, 999999),
             dt.datetime(9999, 12, 31, 23, 59, 59),
             uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"), b"\x00\xff" * 8,
             dt.datetime(2024, 6, 1, 12, 34, 56, 123456,
                         tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))],
            [2, None, None, None, None, None, None, None, None, None, None, None, None],
            [3, 0, 0, False, 0.0, Decimal("0.01"), "", dt.date(9999, 12, 31), dt.time(0),
             dt.datetime(1, 1, 1), uuid.UUID(int=0), b"",
             dt.datetime(1, 1, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=8)))]]
    columnar, rowwise, used = load_both_ways(session, rows, "edge")
    assert used and columnar == rowwise
    assert [r[6] for r in columnar] == ["snow \u2603 \U0001d11e", None, ""]
    assert [r[10:12] for r in columnar] == [(rows[0][10], rows[0][11]), (None, None),
                                            (uuid.UUID(int=0), b"")]
    assert [r[12] for r in columnar] == [rows[0][12], None, rows[2][12]]
    assert [r[12].utcoffset() for r in (columnar[0], columnar[2])] == [
        dt.timedelta(hours=5, minutes=30), dt.timedelta(hours=8)]
    nbc_columnar, nbc_rowwise, nbc_used = load_both_ways(session, rows, "nbc", nbcrow=True)
    assert not nbc_used  # an NBCROW token sends the load row-wise
    assert nbc_columnar == nbc_rowwise == columnar


def test_a_bad_row_fails_the_whole_load(session):
    run(session, "CREATE TABLE dbo.bulk_bad (id bigint NOT NULL PRIMARY KEY, s nvarchar(3))")
    target = BulkTarget("dbo.bulk_bad", ["[id]", "[s]"], "", {})
    types = [SqlType.parse("bigint"), SqlType.parse("nvarchar(20)")]
    for rows, number in (([[1, "ok"], [1, "dup"]], 2627), ([[1, "ok"], [None, "x"]], 515),
                         ([[1, "ok"], [2, "too long"]], 2628)):
        with pytest.raises(SqlError) as info:
            apply_rows(session, target, decode_bulk_load(payload(types, ["id", "s"], rows)))
        assert info.value.number == number
        assert run(session, "SELECT COUNT(*) FROM dbo.bulk_bad") == [(0,)]
    too_long = payload(types, ["id", "s"], [[1, "ok"], [2, "too long"]])
    with pytest.raises(SqlError) as info:
        apply_rows(session, target, decode_bulk_load(too_long))
    assert "'s'" in info.value.message  # the message names the column


def test_nulls_get_the_default_without_keep_nulls(session):
    run(session, "CREATE TABLE dbo.bulk_def (id int NOT NULL, n int DEFAULT 7, s nvarchar(5) "
                 "DEFAULT N'x')")
    types = [SqlType.parse("int")] * 2 + [SqlType.parse("nvarchar(5)")]
    rows = [[1, None, None], [2, 3, "y"]]
    data = payload(types, ["id", "n", "s"], rows)
    apply_rows(session, BulkTarget("dbo.bulk_def", ["[id]", "[n]", "[s]"], "", {}),
               decode_bulk_load(data))
    apply_rows(session, BulkTarget("dbo.bulk_def", ["[id]", "[n]", "[s]"], "KEEP_NULLS",
                                   {"KEEP_NULLS": True}), decode_bulk_load(payload(
                                       types, ["id", "n", "s"], [[3, None, None]])))
    assert run(session, "SELECT id, n, s FROM dbo.bulk_def ORDER BY id") == [
        (1, 7, "x"), (2, 3, "y"), (3, None, None)]


def test_unknown_column_is_207(session):
    from azsql_emulator.bulk import resolve_target

    run(session, "CREATE TABLE dbo.bulk_cols (id int)")
    with pytest.raises(SqlError) as info:
        resolve_target(session, BulkTarget("dbo.bulk_cols", ["[nope]"], "", {}))
    assert info.value.number == 207
