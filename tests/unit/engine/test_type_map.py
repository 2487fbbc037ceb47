"""Arrow -> SQL Server type mapping, length buckets, and bind casts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.binder import cast_batch
from engine.errors import NonFiniteValueError
from engine.plan import plan_table
from engine.type_map import (
    MAX,
    SqlType,
    binary_length_bucket,
    sql_type_for,
    text_length_bucket,
)


@pytest.mark.parametrize(("arrow", "sql"), [
    (pa.int8(), "smallint"), (pa.uint8(), "tinyint"), (pa.int16(), "smallint"),
    (pa.uint16(), "int"), (pa.int32(), "int"), (pa.uint32(), "bigint"), (pa.int64(), "bigint"),
    (pa.uint64(), "decimal(20,0)"), (pa.float32(), "real"), (pa.float64(), "float"),
    (pa.decimal128(38, 10), "decimal(38,10)"), (pa.decimal128(5, 2), "decimal(5,2)"),
    (pa.bool_(), "bit"), (pa.date32(), "date"), (pa.date64(), "date"),
    (pa.time32("s"), "time(0)"), (pa.time32("ms"), "time(3)"), (pa.time64("us"), "time(6)"),
    (pa.time64("ns"), "time(7)"),
    (pa.timestamp("s"), "datetime2(0)"), (pa.timestamp("ms"), "datetime2(3)"),
    (pa.timestamp("us"), "datetime2(6)"), (pa.timestamp("ns"), "datetime2(7)"),
    (pa.timestamp("us", tz="UTC"), "datetimeoffset(6)"),
    (pa.duration("ms"), "bigint"), (pa.binary(16), "uniqueidentifier"),
    (pa.list_(pa.int32()), "nvarchar(max)"), (pa.struct([("a", pa.int8())]), "nvarchar(max)"),
])
def test_mapping(arrow, sql):
    assert sql_type_for(arrow).sql() == sql


@pytest.mark.parametrize("arrow", [pa.string(), pa.large_string(), pa.string_view(),
                                   pa.dictionary(pa.int32(), pa.string())])
def test_text_types_size_from_the_data(arrow):
    assert sql_type_for(arrow, max_length=10).sql() == "nvarchar(16)"
    assert sql_type_for(arrow).sql() == "nvarchar(max)"  # nothing measured: max


@pytest.mark.parametrize(("units", "bucket"), [(0, 16), (16, 16), (17, 64), (4000, 4000),
                                                (4001, MAX), (None, MAX)])
def test_text_buckets(units, bucket):
    assert text_length_bucket(units) == bucket


def test_binary_buckets():
    assert [binary_length_bucket(n) for n in (1, 8000, 8001)] == [16, 8000, MAX]


def test_plan_measures_utf16_units_from_a_sample():
    sample = pa.table({"s": ["😀" * 10, "abc", None]})  # each emoji is 2 UTF-16 units
    col = plan_table(sample.schema, sample=sample).columns[0]
    assert col.sql_type == SqlType("nvarchar", length=64)  # 20 units -> bucket 64
    assert col.sample_has_nulls is True


def test_overrides_win():
    plan = plan_table(pa.schema([("p", pa.float64())]), overrides={"p": "decimal(18,2)"})
    assert plan.columns[0].sql_type.sql() == "decimal(18,2)"


def test_nan_is_an_error_naming_column_and_row_or_null_on_request():
    batch = pa.table({"x": pa.array([1.0, float("nan"), 2.0])})
    plan = plan_table(batch.schema)
    with pytest.raises(NonFiniteValueError, match=r"x.*(row 101|101)"):
        cast_batch(plan, batch, row_offset=100)
    out = cast_batch(plan, batch, nan_as_null=True)
    assert out.column("x").to_pylist() == [1.0, None, 2.0]


def test_cast_batch_is_one_chunk_of_bindable_types():
    src = pa.table({
        "f": pa.array([1.5], pa.float32()),
        "d": pa.array([Decimal("-12345678901234567890.1234567890")], pa.decimal128(38, 10)),
        "u": pa.array([2**64 - 1], pa.uint64()),
        "ts": pa.array([dt.datetime(1, 1, 1)], pa.timestamp("ms")),
        "ls": pa.array(["x"], pa.large_string()),
    })
    out = cast_batch(plan_table(src.schema), src)
    bindable = {pa.float64(), pa.string(), pa.int64(), pa.timestamp("us"), pa.timestamp("ns")}
    assert all(c.num_chunks == 1 for c in out.columns)
    assert all(f.type in bindable for f in out.schema), out.schema
    assert out.column("d").to_pylist() == ["-12345678901234567890.1234567890"]
    assert out.column("u").to_pylist() == [str(2**64 - 1)]


@given(st.decimals(min_value=Decimal("-1e27"), max_value=Decimal("1e27"), places=10,
                   allow_nan=False, allow_infinity=False))
def test_decimal_text_is_exact(value):
    src = pa.table({"d": pa.array([value], pa.decimal128(38, 10))})
    text = cast_batch(plan_table(src.schema), src).column("d")[0].as_py()
    assert Decimal(text) == value and "E" not in text.upper()
