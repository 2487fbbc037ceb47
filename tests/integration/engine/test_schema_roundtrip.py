"""Schema plan round trip: CREATE TABLE from a plan, insert with turbodbc, read back with pyodbc.

The emulator runs in a child process (turbodbc holds the GIL). datetime2, time and
datetimeoffset are read back through output converters of the driver's structs, whose
fraction is in nanoseconds (pyodbc's own datetime would cut the 100 ns digit).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, localcontext

import pyarrow as pa
import pytest
from support import read_temporals_as_text

from engine.binder import cast_batch, insert_sql, split_long_text
from engine.errors import SchemaMismatchError
from engine.plan import ExistingColumn, create_table_sql, plan_table, validate_against
from engine.sources import SourceOptions

pytestmark = pytest.mark.integration
turbodbc = pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")

D38 = pa.decimal128(38, 10)
BIG = Decimal("9999999999999999999999999999.9999999999")
U = uuid.UUID("12345678-1234-5678-9abc-def012345678")
with localcontext() as _ctx:  # Python's default 28 digits would round these
    _ctx.prec = 60
    DEC = pa.array([BIG, -BIG, Decimal("0.0000000001")], D38)
    NEG_BIG = -BIG
SOURCE = pa.table({
    "i8": pa.array([-128, 127, None], pa.int8()),
    "u8": pa.array([0, 255, None], pa.uint8()),
    "i16": pa.array([-2**15, 2**15 - 1, None], pa.int16()),
    "u16": pa.array([0, 2**16 - 1, None], pa.uint16()),
    "i32": pa.array([-2**31, 2**31 - 1, None], pa.int32()),
    "u32": pa.array([0, 2**32 - 1, None], pa.uint32()),
    "i64": pa.array([-2**63, 2**63 - 1, None], pa.int64()),
    "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "f32": pa.array([1.5, -3.4028234663852886e38, None], pa.float32()),
    "f64": pa.array([2.2250738585072014e-308, 1.7976931348623157e308, None], pa.float64()),
    "dec": DEC,
    "b": pa.array([True, False, None]),
    "s": pa.array(["😀 中文 ✓", "", None]),
    "ls": pa.array(["x" * 5000, "y", None], pa.large_string()),
    "dict": pa.array(["a", "bb", None]).dictionary_encode(),
    "bin": pa.array([b"\x00\xff\x10", b"", None]),
    "guid": pa.ExtensionArray.from_storage(pa.uuid(), pa.array([U.bytes, None, None],
                                                                 pa.binary(16))),
    "d": pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31), None], pa.date32()),
    "t": pa.array([0, 86399_999_999_900, None], pa.time64("ns")),
    "ts_us": pa.array([dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
                       None], pa.timestamp("us")),
    "ts_ns": pa.array([1_700_000_000_123_456_789, -1, None], pa.timestamp("ns")),
    "ts_tz": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC), None, None],
                      pa.timestamp("us", tz="Asia/Kolkata")),
    "dur": pa.array([-5, 2**63 - 1, None], pa.duration("ms")),
    "lst": pa.array([[1, 2], [], None]),
    "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "😀"}]),
    "nul": pa.array([None, None, None], pa.null()),
})
EXPECTED = {
    "i8": [-128, 127, None], "u8": [0, 255, None], "i16": [-2**15, 2**15 - 1, None],
    "u16": [0, 2**16 - 1, None], "i32": [-2**31, 2**31 - 1, None], "u32": [0, 2**32 - 1, None],
    "i64": [-2**63, 2**63 - 1, None], "u64": [Decimal(0), Decimal(2**64 - 1), None],
    "f32": [1.5, -3.4028234663852886e38, None],
    "f64": [2.2250738585072014e-308, 1.7976931348623157e308, None],
    "dec": [BIG, NEG_BIG, Decimal("0.0000000001")], "b": [True, False, None],
    "s": ["😀 中文 ✓", "", None], "ls": ["x" * 5000, "y", None], "dict": ["a", "bb", None],
    "guid": [str(U).upper(), None, None],
    "d": [dt.date(1, 1, 1), dt.date(9999, 12, 31), None],
    # time(7)/datetime2(7) hold 100 ns (read back as text of the driver's nanoseconds)
    "t": ["00:00:00.000000000", "23:59:59.999999900", None],
    "ts_us": ["0001-01-01 00:00:00.000000000", "9999-12-31 23:59:59.999999000", None],
    # ts_ns: the engine rounds ...123456789 ns to the column's 100 ns (.1234568), and
    # -1 ns to the epoch
    "ts_ns": ["2023-11-14 22:13:20.123456800", "1970-01-01 00:00:00.000000000", None],
    # the instant survives (read back in the offset the engine sent: UTC)
    "ts_tz": ["2024-01-02 03:04:05.123456000 +00:00", None, None],
    "dur": [-5, 2**63 - 1, None], "lst": ["[1,2]", "[]", None],
    "st": ['{"a":1,"b":"x"}', None, '{"a":null,"b":"😀"}'], "nul": [None, None, None],
}


@pytest.fixture(scope="module")
def conn_string(emu_proc, driver_path):
    from support import odbc_string

    creds = emu_proc.credentials
    return odbc_string(emu_proc, driver_path, UID=creds.sql_login, PWD=creds.sql_password)


def _load(conn_string, table, plan, source):
    conn = turbodbc.connect(connection_string=conn_string,
                            turbodbc_options=turbodbc.make_options(prefer_unicode=True))
    try:
        cur = conn.cursor()
        cur.execute(create_table_sql(plan, table))
        bound, pieces = split_long_text(plan, cast_batch(plan, source))
        # One row per call: the emulator's parameter-array path accepts only bare markers
        # in VALUES, not the CAST(? AS nvarchar(n)) markers text-bound columns need (an
        # emulator gap); single-row calls take its general path. turbodbc binds the same way.
        for i in range(bound.num_rows):
            cur.executemanycolumns(insert_sql(plan, table, pieces), bound.slice(i, 1))
        conn.commit()
    finally:
        conn.close()


def _read(conn_string, table, columns):
    with pyodbc.connect(conn_string, autocommit=True) as conn:
        read_temporals_as_text(conn)
        select = ", ".join(f"[{c}]" for c in columns)
        rows = conn.execute(f"SELECT {select} FROM {table}").fetchall()
        info = conn.execute(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
            "NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE FROM INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_NAME = ?", str(table).split(".")[-1]).fetchall()
    return rows, info


def test_every_type_and_edge_value_round_trips(conn_string):
    source = SOURCE.drop_columns(["bin"])
    plan = plan_table(source.schema, sample=source)
    _load(conn_string, "dbo.roundtrip_all", plan, source)
    rows, info = _read(conn_string, "dbo.roundtrip_all", source.column_names)
    assert len(rows) == 3
    got = {name: [row[i] for row in rows] for i, name in enumerate(source.column_names)}
    # pyodbc returns the rows in insertion order from the emulator; compare as multisets
    # keyed by the int64 column, which is unique
    order = [EXPECTED["i64"].index(v) for v in got["i64"]]
    for name, values in got.items():
        assert values == [EXPECTED[name][k] for k in order], name
    # the table the plan created is the table the plan validates against
    validate_against(plan, [ExistingColumn.from_row(r) for r in info], table="dbo.roundtrip_all")


def test_varbinary_round_trips(conn_string):
    source = SOURCE.select(["i64", "bin"])
    plan = plan_table(source.schema, sample=source)
    _load(conn_string, "dbo.roundtrip_bin", plan, source)
    rows, _ = _read(conn_string, "dbo.roundtrip_bin", ["i64", "bin"])
    got = {r[0]: r[1] for r in rows}
    assert got == {-2**63: b"\x00\xff\x10", 2**63 - 1: b"", None: None}


def test_overrides_and_rounding_to_the_column_scale(conn_string):
    source = pa.table({
        "price": pa.array([1234567890123456.5, None], pa.float64()),
        "at": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 999_600), None], pa.timestamp("us")),
        "n": pa.array([2**31 - 1, None], pa.int64()),
    })
    plan = plan_table(source.schema, overrides={"price": "decimal(18,1)", "at": "datetime2(3)",
                                                "n": "decimal(10,0)"})
    _load(conn_string, "dbo.roundtrip_over", plan, source)
    rows, _ = _read(conn_string, "dbo.roundtrip_over", ["price", "at", "n"])
    assert sorted((tuple(r) for r in rows), key=lambda r: r[0] is None) == [
        (Decimal("1234567890123456.5"), "2024-01-01 00:00:01.000000000", Decimal(2**31 - 1)),
        (None, None, None)]


def test_validation_against_the_created_table_lists_every_mismatch(conn_string):
    source = pa.table({"id": pa.array([1], pa.int64()), "name": pa.array(["abc"])})
    plan = plan_table(source.schema, sample=source)
    _load(conn_string, "dbo.roundtrip_val", plan, source)
    _, info = _read(conn_string, "dbo.roundtrip_val", ["id"])
    wider = pa.table({"ID": pa.array([1.5]), "name": pa.array(["x" * 40]), "extra": [1]})
    with pytest.raises(SchemaMismatchError) as err:
        validate_against(plan_table(wider.schema, sample=wider),
                         [ExistingColumn.from_row(r) for r in info], table="dbo.roundtrip_val")
    assert [m.column for m in err.value.mismatches] == ["ID", "name", "extra"]


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_every_type_round_trips_through_transfer(emu_proc, conn_string, monkeypatch, transport):
    """The same table through the engine's own path, both transports, two workers."""
    from loads import connection_options

    from engine.credentials import CredentialOptions
    from engine.options import Target, TransferOptions
    from engine.transfer import transfer

    creds = emu_proc.credentials
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", creds.sql_password)
    target = Target(connection_options(emu_proc, CredentialOptions(
        kind="sql", sql_user=creds.sql_login)), f"dbo.roundtrip_{transport.replace('-', '_')}")
    source = SOURCE.drop_columns(["bin"])
    result = transfer(source, target, TransferOptions(workers=2, transport=transport),
                      source_options=SourceOptions(rows_per_batch=2))
    assert result.rows == 3 and result.batches == 2 and result.transport == transport
    rows, _ = _read(conn_string, target.table.quoted, source.column_names)
    got = {name: [row[i] for row in rows] for i, name in enumerate(source.column_names)}
    order = [EXPECTED["i64"].index(v) for v in got["i64"]]
    for name, values in got.items():
        assert values == [EXPECTED[name][k] for k in order], name
