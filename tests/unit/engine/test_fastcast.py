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
