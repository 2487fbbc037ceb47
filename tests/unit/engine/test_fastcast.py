"""engine._fastcast (native/fastcast/fastcast.c) against the pyarrow.compute path it replaces."""

from __future__ import annotations

from decimal import Context, Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import bind_casts

pytestmark = pytest.mark.skipif(bind_casts._fastcast is None, reason="engine._fastcast not built")


def both(arr: pa.Array) -> tuple[list, list]:
    native = bind_casts._decimal128_text_native(arr)
    native.validate(full=True)
    return native.to_pylist(), bind_casts._decimal_text_compute(arr).to_pylist()


_WIDE = Context(prec=80)  # the default context rounds to 28 digits


@st.composite
def decimal_arrays(draw):
    precision = draw(st.integers(1, 38))
    scale = draw(st.integers(0, precision))
    bound = 10 ** precision - 1
    edge = st.sampled_from([0, 1, -1, bound, -bound, 10 ** scale, -(10 ** scale),
                            2 ** 63, -(2 ** 63), 2 ** 64, -(2 ** 64) - 1])
    unscaled = st.one_of(st.integers(-bound, bound), edge.filter(lambda v: abs(v) <= bound))
    values = draw(st.lists(st.one_of(st.none(), unscaled), max_size=60))
    arr = pa.array([None if v is None else Decimal(v).scaleb(-scale, _WIDE) for v in values],
                   pa.decimal128(precision, scale))
    start = draw(st.integers(0, len(values)))
    return arr.slice(start, draw(st.integers(0, len(values) - start)))


@settings(max_examples=400, deadline=None)
@given(decimal_arrays())
def test_native_text_equals_the_compute_path(arr):
    native, compute = both(arr)
    assert native == compute


@pytest.mark.parametrize(("value", "precision", "scale", "text"), [
    ("0", 18, 4, "0.0000"),
    ("-0.0001", 18, 4, "-0.0001"),
    ("12.34", 18, 4, "12.3400"),
    ("-5", 10, 0, "-5"),
    ("99999999999999999999999999999999999999", 38, 0, "9" * 38),
    ("-9999999999999999999999999999.9999999999", 38, 10,
     "-9999999999999999999999999999.9999999999"),
    ("0.00000000000000000000000000000000000001", 38, 38,
     "0.00000000000000000000000000000000000001"),
])
def test_known_texts(value, precision, scale, text):
    arr = pa.array([Decimal(value), None], pa.decimal128(precision, scale))
    native, compute = both(arr)
    assert native == compute == [text, None]


def test_a_sliced_array_keeps_its_nulls():
    arr = pa.array([Decimal("1.5"), None, Decimal("-2.25"), None, Decimal("3")],
                   pa.decimal128(5, 2)).slice(1, 3)
    assert both(arr)[0] == [None, "-2.25", None]


def test_bad_arguments_are_refused():
    data = pa.array([Decimal("1")], pa.decimal128(5, 0)).buffers()[1]
    with pytest.raises(ValueError, match="out of range"):
        bind_casts._fastcast.decimal128_text(data, 0, 2, 0)
    with pytest.raises(ValueError, match="out of range"):
        bind_casts._fastcast.decimal128_text(data, 0, 1, 39)


# -- timestamps -------------------------------------------------------------------------

_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_YEAR_1 = -62135596800  # seconds
_YEAR_10000 = 253402300800


@st.composite
def timestamp_arrays(draw):
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    per_second = 10 ** _DIGITS[unit]
    low = max(_YEAR_1 * per_second, -(2 ** 63))
    high = min(_YEAR_10000 * per_second - 1, 2 ** 63 - 1 - 10 ** 9)  # rounding must not overflow
    edge = st.sampled_from([low, high, 0, -1, 1, high - per_second // 2, low + 1])
    ticks = draw(st.lists(st.one_of(st.none(), st.integers(low, high), edge), max_size=50))
    tz = draw(st.sampled_from([None, "UTC", "+05:30"]))
    arr = pa.array(ticks, pa.int64()).cast(pa.timestamp(unit, tz))
    start = draw(st.integers(0, len(ticks)))
    return arr.slice(start, draw(st.integers(0, len(ticks) - start))), draw(st.integers(0, 7))


@settings(max_examples=400, deadline=None)
@given(timestamp_arrays())
def test_native_timestamp_text_equals_the_compute_path(case):
    arr, scale = case
    native = bind_casts._timestamp_text_native(arr, scale)
    assert native is not None
    native.validate(full=True)
    assert native.to_pylist() == bind_casts._timestamp_text_compute(arr, scale).to_pylist()


def test_a_timestamp_before_year_1_goes_to_the_compute_path():
    arr = pa.array([_YEAR_1 - 1, 0], pa.int64()).cast(pa.timestamp("s"))
    assert bind_casts._timestamp_text_native(arr, 0) is None
    assert bind_casts._timestamp_text(arr, 0).to_pylist() == \
        bind_casts._timestamp_text_compute(arr, 0).to_pylist()


def test_rounding_at_the_top_is_capped_and_offsets_are_utc():
    top = pa.array([_YEAR_10000 * 10 ** 6 - 1, 1_700_000_000_123_456], pa.int64())
    naive = bind_casts._timestamp_text_native(top.cast(pa.timestamp("us")), 3)
    assert naive.to_pylist() == ["9999-12-31 23:59:59.999", "2023-11-14 22:13:20.123"]
    aware = bind_casts._timestamp_text_native(top.cast(pa.timestamp("us", "Asia/Tokyo")), 0)
    assert aware.to_pylist() == ["9999-12-31 23:59:59 +00:00", "2023-11-14 22:13:20 +00:00"]


def test_rounding_that_would_overflow_goes_to_the_compute_path_which_refuses_it():
    arr = pa.array([2 ** 63 - 1], pa.int64()).cast(pa.timestamp("ns"))
    assert bind_casts._timestamp_text_native(arr, 0) is None
    with pytest.raises(pa.ArrowInvalid):
        bind_casts._timestamp_text(arr, 0)
