"""Vectorised casts from any Arrow column to what turbodbc 5.3.0 can bind, per target SQL type.

turbodbc's ``executemanycolumns`` binds only null, int8-64, uint8-32, bool, double,
string, binary, date32 and timestamp[us|ns], and what it binds is further limited by
how the server *describes* each parameter. Measured against Microsoft's driver:

* parameters described as ``time``, ``datetimeoffset``, ``uniqueidentifier``,
  ``binary``/``varbinary`` fail in turbodbc's prepare ("Unsupported type identifier");
* a string bound to a ``decimal`` parameter arrives wrong (turbodbc binds it as a
  double or a scaled char buffer), so exact decimals travel as text;
* date32 and timestamps before the year 1400 fail (boost's calendar), and a
  timestamp with 100 ns digits overflows the driver's 6-digit timestamp binding;
* Arrow ``null`` columns trip a fall-through in turbodbc's converter table.

So each column gets one :class:`BindSpec`, chosen once from (Arrow type, SQL type):

``NATIVE``  the value binds as itself (ints, bool, double, UTF-8 strings), marker ``?``;
``TEXT``    the value is sent as exact text and the server converts it, marker
            ``CAST(? AS nvarchar(n))`` (the cast makes the parameter describe as text);
``HEX``     bytes are sent as hex text, marker
            ``CONVERT(varbinary(max), CAST(? AS varchar(max)), 2)``.

Text forms: decimals in plain positional notation (never exponents); dates
``YYYY-MM-DD``; timestamps ``YYYY-MM-DD HH:MM:SS[.f]`` rounded half-up to the target
scale (100 ns for datetime2(7)) and clamped at the type's maximum; tz-aware timestamps
in UTC with `` +00:00``; times ``HH:MM:SS[.f]``; uuids ``8-4-4-4-12`` from the RFC 4122
byte order; nested values as JSON via polars ``struct.json_encode`` (lists are wrapped
in a one-field struct to encode them; maps come out as polars encodes them). All of it
runs in Arrow C++ or polars (Rust), never row by row in Python.

>>> import pyarrow as pa
>>> from engine.type_map import SqlType
>>> spec = bind_spec(pa.decimal128(5, 2), SqlType("decimal", precision=5, scale=2))
>>> spec.marker, cast_for_bind(pa.array([None], pa.decimal128(5, 2)), spec).type
('CAST(? AS nvarchar(7))', DataType(string))
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import NonFiniteValueError, UnsupportedTypeError, ValueCastError
from engine.type_map import MAX, SqlType, is_binary_like, is_nested, is_text_like, is_uuid

try:  # one-pass decimal text in C (native/fastcast); the compute path below is the fallback
    from engine import _fastcast  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a build without the native part
    _fastcast = None

__all__ = [
    "BindSpec",
    "Binding",
    "NonFiniteValueError",
    "ValueCastError",
    "bind_spec",
    "cast_for_bind",
    "check_finite",
]

_INT_KINDS = frozenset({"tinyint", "smallint", "int", "bigint", "bit"})
_FLOAT_KINDS = frozenset({"real", "float", "money", "smallmoney"})
_CHAR_KINDS = frozenset({"char", "varchar", "nchar", "nvarchar", "text", "ntext", "xml"})
_TEMPORAL_KINDS = frozenset({"date", "time", "datetime2", "datetimeoffset", "datetime",
                             "smalldatetime"})
_NATIVE_INTS = frozenset({pa.int8(), pa.int16(), pa.int32(), pa.int64(),
                          pa.uint8(), pa.uint16(), pa.uint32()})
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_UNIT_NAMES = {"s": "second", "ms": "millisecond", "us": "microsecond", "ns": "nanosecond"}
_HEX_MARKER = "CONVERT(varbinary(max), CAST(? AS varchar(max)), 2)"


class Binding(StrEnum):
    """How one column's values travel to the server."""

    NATIVE = "native"  # bound as itself: ints, bool, double, UTF-8 string
    TEXT = "text"      # exact text, converted by the server
    HEX = "hex"        # bytes as hex text, decoded by CONVERT(..., 2)


@dataclass(frozen=True)
class BindSpec:
    """One column's binding: what Arrow type turbodbc gets, and the parameter marker.

    :param binding: the strategy (see :class:`Binding`).
    :param arrow_type: the Arrow type :func:`cast_for_bind` produces.
    :param marker: the T-SQL for this column's parameter in ``INSERT ... VALUES (...)``.
    :param target: the column's SQL type (it decides rounding scale and text form).
    :param source: the column's Arrow type in the source.
    """

    binding: Binding
    arrow_type: pa.DataType
    marker: str
    target: SqlType
    source: pa.DataType


def _text_marker(length: int | None) -> str:
    return f"CAST(? AS nvarchar({'max' if length in (None, MAX) else length}))"


def _temporal_text_length(target: SqlType) -> int | None:
    scale = target.scale or 0
    frac = scale + 1 if scale else 0
    return {"date": 10, "time": 8 + frac, "datetime2": 19 + frac,
            "datetimeoffset": 26 + frac, "datetime": 23, "smalldatetime": 19}.get(target.name)


def _storage(t: pa.DataType) -> pa.DataType:
    return t.storage_type if isinstance(t, pa.BaseExtensionType) else t


def bind_spec(source: pa.DataType, target: SqlType, *, column: str = "?") -> BindSpec:
    """Choose how a column of Arrow type ``source`` binds into a column of SQL type ``target``.

    :param source: the source column's Arrow type.
    :param target: the SQL type of the column in the table.
    :param column: the column's name, for error messages.
    :raises UnsupportedTypeError: when the source cannot be written into the target
        (e.g. text into varbinary, a date into int).

    >>> import pyarrow as pa
    >>> bind_spec(pa.float32(), SqlType("real")).binding
    <Binding.NATIVE: 'native'>
    >>> bind_spec(pa.time64("ns"), SqlType("time", scale=7)).marker
    'CAST(? AS nvarchar(16))'
    """
    raw = _storage(source)
    name = target.name

    def native(arrow_type: pa.DataType) -> BindSpec:
        return BindSpec(Binding.NATIVE, arrow_type, "?", target, source)

    def text(length: int | None) -> BindSpec:
        return BindSpec(Binding.TEXT, pa.string(), _text_marker(length), target, source)

    numeric_source = (raw in _NATIVE_INTS or raw == pa.uint64() or pa.types.is_floating(raw)
                      or pa.types.is_decimal(raw) or pa.types.is_boolean(raw)
                      or pa.types.is_duration(raw))
    if pa.types.is_null(raw):
        arrow_type = pa.float64() if name in _INT_KINDS | _FLOAT_KINDS else pa.string()
        marker = "?" if name in _INT_KINDS | _FLOAT_KINDS | _CHAR_KINDS | {"decimal",
                                                                            "numeric"} \
            else (_HEX_MARKER if name in ("binary", "varbinary") else _text_marker(None))
        return BindSpec(Binding.NATIVE, arrow_type, marker, target, source)
    if name in _CHAR_KINDS:
        return native(pa.string())
    if name in _INT_KINDS | _FLOAT_KINDS and numeric_source:
        if raw in _NATIVE_INTS or pa.types.is_boolean(raw):
            return native(raw)
        if pa.types.is_floating(raw) or name in _FLOAT_KINDS:
            return native(pa.float64())
        return native(pa.int64())  # uint64, decimal, duration: checked casts to int64
    if name in ("decimal", "numeric") and numeric_source:
        if raw in _NATIVE_INTS or pa.types.is_boolean(raw) or pa.types.is_duration(raw):
            return native(pa.int64())
        if pa.types.is_floating(raw):
            return native(pa.float64())
        return text((target.precision or 38) + 2)
    if name in _TEMPORAL_KINDS and (pa.types.is_temporal(raw) and not pa.types.is_duration(raw)):
        return text(_temporal_text_length(target))
    if name == "uniqueidentifier" and is_uuid(source):
        return text(36)
    if name in ("binary", "varbinary") and (is_binary_like(raw) or is_uuid(source)):
        return BindSpec(Binding.HEX, pa.string(), _HEX_MARKER, target, source)
    if is_text_like(raw) and name not in ("binary", "varbinary", "image"):
        return text(None)  # the server parses the text (numbers, dates, uuids)
    raise UnsupportedTypeError(
        f"column {column!r}: Arrow {source} cannot be written into a {target.sql()} column; "
        "cast the source column, or choose a SQL type that holds it")


def cast_for_bind(array: pa.Array | pa.ChunkedArray, spec: BindSpec, *, column: str = "?",
                  nan_as_null: bool = False, row_offset: int = 0) -> pa.Array:
    """Convert one column so turbodbc can bind it as ``spec`` says (vectorised).

    :param array: the column's values (chunks are combined: turbodbc reads one chunk).
    :param spec: from :func:`bind_spec`.
    :param column: the column's name, for error messages.
    :param nan_as_null: write NaN and ±Infinity as NULL instead of failing.
    :param row_offset: index of the array's first row in the source, for messages.
    :raises NonFiniteValueError: NaN/±Inf in a float column without ``nan_as_null``.
    :raises ValueCastError: a value the target cannot hold (e.g. uint64 over bigint).

    >>> import pyarrow as pa
    >>> from engine.type_map import SqlType
    >>> spec = bind_spec(pa.timestamp("ns"), SqlType("datetime2", scale=7))
    >>> cast_for_bind(pa.array([150], pa.timestamp("ns")), spec).to_pylist()
    ['1970-01-01 00:00:00.0000002']
    """
    arr = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage
    try:
        if pa.types.is_floating(arr.type):
            arr = check_finite(arr, column, nan_as_null, row_offset)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        result = _convert(arr, spec)
    except pa.ArrowInvalid as exc:
        bad = _first_bad(arr, spec)
        where = (f"row {row_offset + bad[0]}, value {_shown(bad[1])}" if bad is not None
                 else f"rows from {row_offset}")
        raise ValueCastError(
            f"column {column!r}: a value of Arrow type {spec.source} does not fit SQL type "
            f"{spec.target.sql()} ({where}): {exc}. Choose a wider SQL type "
            "(override) or fix the source data") from None
    if result.type != spec.arrow_type:
        result = result.cast(spec.arrow_type)
    return result


def _first_bad(arr: pa.Array, spec: BindSpec) -> tuple[int, object] | None:
    """The first row whose value alone fails the conversion, found by halving (only on
    the error path: about log2(n) conversions of ever smaller slices); None when no single
    value fails alone."""
    def fails(start: int, length: int) -> bool:
        try:
            _convert(arr.slice(start, length), spec)
        except pa.ArrowInvalid:
            return True
        return False

    lo, hi = 0, len(arr)
    while hi - lo > 1:  # arr[lo:hi] fails; keep the half holding the first failure
        mid = (lo + hi) // 2
        if fails(lo, mid - lo):
            hi = mid
        else:
            lo = mid
    if hi - lo != 1 or not fails(lo, 1):
        return None
    return lo, arr[lo].as_py()


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_finite(arr: pa.Array, column: str, nan_as_null: bool, row_offset: int) -> pa.Array:
    """``arr`` (floating point) as it is when every value is finite or NULL; else NaN and
    ±Infinity as NULL with ``nan_as_null``, or :class:`NonFiniteValueError` naming the
    column and the first such value's source row (``row_offset`` + its index). Both
    transports check floats with it.
    """
    bad = pc.fill_null(pc.invert(pc.is_finite(arr)), False)
    if not pc.any(bad).as_py():
        return arr
    if nan_as_null:
        return pc.if_else(bad, pa.scalar(None, arr.type), arr)
    first = pc.index(bad, True).as_py()
    value = arr[first].as_py()
    raise NonFiniteValueError(
        f"column {column!r}, row {row_offset + first}: {value} cannot be stored in SQL Server "
        "(it has no NaN or Infinity); clean the data, or pass nan_as_null=True to write "
        "NaN and ±Infinity as NULL")


def _convert(arr: pa.Array, spec: BindSpec) -> pa.Array:
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), spec.arrow_type)
    if spec.binding is Binding.HEX:
        return _hex(arr)
    if spec.binding is Binding.NATIVE and spec.arrow_type != pa.string():
        if pa.types.is_duration(t):
            return arr.cast(pa.int64())
        if t == spec.arrow_type:
            return arr  # already what turbodbc binds (int64, double, bool): no copy
        return arr.cast(spec.arrow_type)  # safe casts: overflow/lost digits raise
    return _to_text(arr, spec.target)


def _to_text(arr: pa.Array, target: SqlType) -> pa.Array:
    t = arr.type
    if is_text_like(t):
        return arr if t == pa.string() else arr.cast(pa.string())
    if pa.types.is_decimal(t):
        return _decimal_text(arr)
    if is_uuid(t):
        return _uuid_text(arr)
    if is_binary_like(t):
        return _hex(arr)
    if pa.types.is_date(t):
        return arr.cast(pa.date32()).cast(pa.string())
    if pa.types.is_timestamp(t):
        scale = _target_scale(target, t.unit)
        return _timestamp_text(arr, scale)
    if pa.types.is_time(t):
        return _time_text(arr, _target_scale(target, t.unit))
    if is_nested(t):
        return _json(arr)
    if pa.types.is_duration(t):
        return arr.cast(pa.int64()).cast(pa.string())
    return arr.cast(pa.string())


def _target_scale(target: SqlType, unit: str) -> int:
    if target.name in ("datetime2", "datetimeoffset", "time"):
        return target.scale if target.scale is not None else 7
    if target.name == "datetime":
        return 3
    if target.name in ("smalldatetime", "date"):
        return 0
    return min(7, _UNIT_DIGITS[unit])  # text targets: every digit SQL Server could keep


def _decimal_text(arr: pa.Array) -> pa.Array:
    """Plain positional text of decimals (Arrow's own cast writes small values as 1E-10)."""
    t = arr.type
    if _fastcast is not None and pa.types.is_decimal128(t) and t.scale >= 0:
        return _decimal128_text_native(arr)
    return _decimal_text_compute(arr)


def _decimal128_text_native(arr: pa.Array) -> pa.Array:
    """:func:`_decimal_text` in one pass (engine._fastcast), same characters."""
    validity, data = arr.buffers()
    offsets, chars = _fastcast.decimal128_text(data, arr.offset, len(arr), arr.type.scale)
    if validity is not None and arr.offset:  # the bitmap must start at the first value
        validity = pc.is_valid(arr).buffers()[1]
    return pa.Array.from_buffers(pa.string(), len(arr),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(chars)],
                                 null_count=arr.null_count)


def _decimal_text_compute(arr: pa.Array) -> pa.Array:
    t = arr.type
    width = 128 if pa.types.is_decimal128(t) else 256
    if t.scale < 0:
        arr = arr.cast(pa.decimal256(t.precision - t.scale, 0))
        return arr.cast(pa.string())
    digits = arr.view(pa.decimal128(t.precision, 0) if width == 128
                      else pa.decimal256(t.precision, 0)).cast(pa.string())
    if t.scale == 0:
        return digits
    negative = pc.starts_with(digits, "-")
    magnitude = pc.utf8_lpad(pc.utf8_ltrim(digits, "-"), t.scale + 1, "0")
    whole = pc.utf8_slice_codeunits(magnitude, 0, -t.scale)
    frac = pc.utf8_slice_codeunits(magnitude, -t.scale)
    sign = pc.if_else(negative, "-", "")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")


def _round_clamped(arr: pa.Array, unit: str, scale: int, upper: int) -> pa.Array:
    """Round int64 ticks of ``unit`` half-up to ``scale`` digits, never past ``upper``."""
    drop = _UNIT_DIGITS[unit] - scale
    if drop <= 0:
        return arr
    step = 10 ** drop
    half = pc.add_checked(arr, step // 2)
    quotient = pc.divide(half, step)  # integer division truncates toward zero: make it floor
    inexact_negative = pc.and_(pc.less(half, 0),
                               pc.not_equal(pc.multiply(quotient, step), half))
    quotient = pc.if_else(inexact_negative, pc.subtract(quotient, 1), quotient)
    rounded = pc.multiply(quotient, step)
    limit = upper - upper % step
    cap = pa.scalar(limit, pa.int64())
    return pc.if_else(pc.greater(rounded, cap), cap, rounded)  # if_else keeps NULLs


def _cut_fraction(text: pa.Array, prefix: int, unit: str, scale: int) -> pa.Array:
    have = _UNIT_DIGITS[unit]
    keep = min(scale, have)
    if keep == have:
        return text
    return pc.utf8_slice_codeunits(text, 0, prefix + (keep + 1 if keep else 0))


_MAX_DATETIME_SECONDS = 253402300799  # 9999-12-31 23:59:59 since the Unix epoch


def _timestamp_text(arr: pa.Array, scale: int) -> pa.Array:
    if _fastcast is not None:
        text = _timestamp_text_native(arr, scale)
        if text is not None:
            return text
    return _timestamp_text_compute(arr, scale)


def _timestamp_text_native(arr: pa.Array, scale: int) -> pa.Array | None:
    """:func:`_timestamp_text` in one pass (engine._fastcast); None when some value lies
    outside years 1-9999, which the compute path handles."""
    validity, data = arr.buffers()
    made = _fastcast.timestamp_text(data, validity, arr.offset, len(arr),
                                    _UNIT_DIGITS[arr.type.unit], scale, arr.type.tz is not None)
    if made is None:
        return None
    if validity is not None and arr.offset:  # the bitmap must start at the first value
        validity = pc.is_valid(arr).buffers()[1]
    offsets, chars = made
    return pa.Array.from_buffers(pa.string(), len(arr),
                                 [validity, pa.py_buffer(offsets), pa.py_buffer(chars)],
                                 null_count=arr.null_count)


def _timestamp_text_compute(arr: pa.Array, scale: int) -> pa.Array:
    t = arr.type
    aware = t.tz is not None
    naive = arr.cast(pa.timestamp(t.unit))  # UTC wall time for tz-aware columns
    per_second = 10 ** _UNIT_DIGITS[t.unit]
    upper = _MAX_DATETIME_SECONDS * per_second + per_second - 1
    ticks = _round_clamped(naive.view(pa.int64()), t.unit, scale, min(upper, 2**63 - 1))
    naive = ticks.view(pa.timestamp(t.unit))
    # Arrow's own cast writes 'YYYY-MM-DD HH:MM:SS' plus every digit of the unit
    # (17x cheaper than strftime, which benchmarks/README.md measured at 0.85 s/M rows)
    text = _cut_fraction(naive.cast(pa.string()), 19, t.unit, scale)
    return pc.binary_join_element_wise(text, " +00:00", "") if aware else text


def _time_text(arr: pa.Array, scale: int) -> pa.Array:
    unit = arr.type.unit
    per_day = 86400 * 10 ** _UNIT_DIGITS[unit]
    storage = pa.int32() if pa.types.is_time32(arr.type) else pa.int64()
    ticks = _round_clamped(arr.view(storage).cast(pa.int64()), unit, scale, per_day - 1)
    as_ts = ticks.cast(pa.timestamp(unit))
    return _cut_fraction(pc.utf8_slice_codeunits(as_ts.cast(pa.string()), 11), 8, unit, scale)


def _polars() -> Any:
    import polars as pl  # lazily: only nested, binary and uuid columns need it

    return pl


def _hex(arr: pa.Array) -> pa.Array:
    pl = _polars()
    if pa.types.is_fixed_size_binary(arr.type) or pa.types.is_binary_view(arr.type):
        arr = arr.cast(pa.binary())
    out = pl.from_arrow(arr).bin.encode("hex").to_arrow()
    return out.cast(pa.string())


def _uuid_text(arr: pa.Array) -> pa.Array:
    h = _hex(arr)
    parts = [pc.utf8_slice_codeunits(h, a, b) for a, b in ((0, 8), (8, 12), (12, 16),
                                                           (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-")


def _json(arr: pa.Array) -> pa.Array:
    pl = _polars()
    if pa.types.is_fixed_size_list(arr.type):
        # polars refuses a sliced fixed-size list with NULLs (every batch after the first:
        # "validity mask length must be equal to..."); the same values as a plain list go
        arr = arr.cast(pa.list_(arr.type.value_field))
    series = pl.from_arrow(arr)
    if pa.types.is_struct(arr.type):
        encoded = series.struct.json_encode().to_arrow().cast(pa.string())
    else:
        wrapped = pl.select(pl.struct(pl.lit(series).alias("v")).struct.json_encode())
        encoded = pc.utf8_slice_codeunits(wrapped.to_series().to_arrow().cast(pa.string()), 5, -1)
    return pc.if_else(arr.is_null(), pa.scalar(None, pa.string()), encoded)
