"""A value the bound type cannot hold is reported with its row and value."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bind_casts import bind_spec, cast_for_bind
from engine.errors import ValueCastError
from engine.type_map import SqlType


def error_of(arr: pa.Array, target: SqlType, row_offset: int = 0) -> str:
    with pytest.raises(ValueCastError) as info:
        cast_for_bind(arr, bind_spec(arr.type, target), column="c", row_offset=row_offset)
    return str(info.value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=300), st.data())
def test_the_first_uint64_over_bigint_is_named(values, data):
    bad = data.draw(st.lists(st.integers(0, len(values) - 1), min_size=1, unique=True))
    for i in bad:
        values[i] = 2**63 + i
    text = error_of(pa.array(values, pa.uint64()), SqlType("bigint"), row_offset=500)
    first = min(bad)
    assert "column 'c'" in text and f"(row {500 + first}, value {2**63 + first})" in text


def test_a_decimal_that_would_lose_digits_is_named_in_a_slice():
    arr = pa.array([Decimal("1.00"), None, Decimal("7.25"), Decimal("2.00")],
                   pa.decimal128(5, 2)).slice(1)
    assert "(row 11, value Decimal('7.25'))" in error_of(arr, SqlType("int"), row_offset=10)


def test_a_sliced_fixed_size_list_with_nulls_becomes_json():
    # every batch after the first is such a slice (polars alone refuses it)
    values = pa.array([[1, 2], None, [3, 4], [5, None], None, [7, 8]], pa.list_(pa.int64(), 2))
    spec = bind_spec(values.type, SqlType("nvarchar", length=4000))
    assert cast_for_bind(values.slice(2, 4), spec).to_pylist() == ["[3,4]", "[5,null]", None,
                                                                   "[7,8]"]
