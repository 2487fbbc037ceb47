"""Arrow types to SQL Server column types, and the rule that sizes text and binary columns.

The mapping (:func:`sql_type_for`), chosen so every value of the Arrow type fits:

=====================================  ===========================================
Arrow                                  SQL Server
=====================================  ===========================================
int8 / uint8                           smallint / tinyint (tinyint is 0-255)
int16 / uint16                         smallint / int
int32 / uint32                         int / bigint
int64 / uint64                         bigint / decimal(20,0)
float16, float32 / float64             real / float
decimal128/256(p, s), p <= 38          decimal(p, s) (negative s: decimal(p-s, 0))
bool                                   bit
string, large_string, string_view,     nvarchar(n) or nvarchar(max), n from the data
dictionary<string>                     (see :func:`text_length_bucket`)
binary, large_binary, binary_view,     varbinary(n) or varbinary(max), n from the data
fixed_size_binary(n != 16)
fixed_size_binary(16), arrow.uuid      uniqueidentifier
date32 / date64                        date
time32 / time64                        time(p), p = 0 / 3 / 6 / 7 for s / ms / us / ns
timestamp without time zone            datetime2(p), p as for time
timestamp with a time zone             datetimeoffset(p), the instant kept (written as UTC)
duration                               bigint, counting the duration's own unit
list, large_list, fixed_size_list,     nvarchar(max) holding JSON
struct, map
null                                   nvarchar(1) (an all-NULL column; override it)
=====================================  ===========================================

Text and binary lengths come from the data when a table is created: the longest
value (in UTF-16 code units for text, as SQL Server counts nvarchar, bytes for
binary) is rounded up to the next bucket of 16, 64, 256, 1024 or 4000 (8000 for
binary); anything longer, and any column with no data to measure, is ``(max)``.
Buckets leave room for later, longer values without making every column ``(max)``.

>>> import pyarrow as pa
>>> sql_type_for(pa.int8()).sql()
'smallint'
>>> sql_type_for(pa.string(), max_length=70).sql()
'nvarchar(256)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from engine.errors import UnsupportedTypeError

__all__ = [
    "BINARY_BUCKETS",
    "MAX",
    "TEXT_BUCKETS",
    "SqlType",
    "UnsupportedTypeError",
    "binary_length_bucket",
    "is_binary_like",
    "is_nested",
    "is_text_like",
    "is_uuid",
    "sql_type_for",
    "temporal_scale",
    "text_length_bucket",
]

MAX = -1  # the (max) of nvarchar(max) / varbinary(max)
TEXT_BUCKETS = (16, 64, 256, 1024, 4000)
BINARY_BUCKETS = (16, 64, 256, 1024, 8000)
_UNIT_SCALE = {"s": 0, "ms": 3, "us": 6, "ns": 7}
_LENGTH_KINDS = frozenset({"char", "varchar", "nchar", "nvarchar", "binary", "varbinary"})
_PRECISION_KINDS = frozenset({"decimal", "numeric"})
_SCALE_KINDS = frozenset({"time", "datetime2", "datetimeoffset"})
_PLAIN_KINDS = frozenset({
    "bit", "tinyint", "smallint", "int", "bigint", "real", "float", "money", "smallmoney",
    "date", "datetime", "smalldatetime", "uniqueidentifier", "text", "ntext", "image", "xml",
})
_SYNONYMS = {"integer": "int", "dec": "decimal", "double precision": "float",
             "character varying": "varchar", "national character varying": "nvarchar",
             "national character": "nchar", "character": "char"}
_TYPE_RE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*([^)]*?)\s*\))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SqlType:
    """One SQL Server column type with its facets.

    :param name: the base type, lower case (``nvarchar``, ``decimal``, ``datetime2``...).
    :param length: characters (char types) or bytes (binary types); :data:`MAX` for ``(max)``.
    :param precision: decimal/numeric precision (1-38); float's mantissa bits when given.
    :param scale: decimal/numeric scale, or fractional-second digits (0-7) of time,
        datetime2 and datetimeoffset.

    >>> SqlType("decimal", precision=38, scale=10).sql()
    'decimal(38,10)'
    """

    name: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def sql(self) -> str:
        """The type as T-SQL spells it in a column definition."""
        if self.name in _LENGTH_KINDS:
            return f"{self.name}({'max' if self.length == MAX else self.length})"
        if self.name in _PRECISION_KINDS:
            return f"{self.name}({self.precision},{self.scale})"
        if self.name in _SCALE_KINDS:
            return f"{self.name}({self.scale})"
        if self.name == "float" and self.precision is not None:
            return f"float({self.precision})"
        return self.name

    def __str__(self) -> str:
        return self.sql()

    @classmethod
    def parse(cls, text: str) -> SqlType:
        """Read a T-SQL type name such as ``nvarchar(50)``, ``decimal(18, 2)`` or ``time``.

        Omitted facets take SQL Server's defaults: ``decimal`` is (18,0), ``time`` /
        ``datetime2`` / ``datetimeoffset`` have scale 7, ``nvarchar`` is (1).

        :param text: the type, as written in a column definition.
        :raises UnsupportedTypeError: for text that is not a SQL Server type.

        >>> SqlType.parse("NVARCHAR(MAX)")
        SqlType(name='nvarchar', length=-1, precision=None, scale=None)
        """
        m = _TYPE_RE.match(text.strip().strip("[]"))
        if not m:
            raise UnsupportedTypeError(f"{text!r} is not a SQL Server type; write it as in a "
                                       "column definition, e.g. 'decimal(18,2)' or 'nvarchar(100)'")
        name = " ".join(m.group(1).lower().split())
        name = _SYNONYMS.get(name, name)
        args = [a.strip().lower() for a in m.group(2).split(",")] if m.group(2) else []
        try:
            if name in _LENGTH_KINDS:
                if len(args) > 1:
                    raise ValueError
                length = MAX if args == ["max"] else int(args[0]) if args else 1
                limit = 4000 if name.startswith("n") else 8000
                if length != MAX and not 1 <= length <= limit:
                    raise ValueError
                return cls(name, length=length)
            if name in _PRECISION_KINDS:
                precision = int(args[0]) if args else 18
                scale = int(args[1]) if len(args) > 1 else 0
                if len(args) > 2 or not (1 <= precision <= 38 and 0 <= scale <= precision):
                    raise ValueError
                return cls(name, precision=precision, scale=scale)
            if name in _SCALE_KINDS:
                scale = int(args[0]) if args else 7
                if len(args) > 1 or not 0 <= scale <= 7:
                    raise ValueError
                return cls(name, scale=scale)
            if name == "float" and args:
                bits = int(args[0])
                if len(args) > 1 or not 1 <= bits <= 53:
                    raise ValueError
                return cls("real") if bits <= 24 else cls("float")
            if name in _PLAIN_KINDS and not args:
                return cls(name)
        except ValueError:
            pass
        raise UnsupportedTypeError(f"{text!r} is not a valid SQL Server type (check its name "
                                   "and its length, precision or scale)")


def text_length_bucket(max_units: int | None) -> int:
    """The nvarchar length for text whose longest value has ``max_units`` UTF-16 units.

    :param max_units: the longest value's length in UTF-16 code units, or None when
        there was nothing to measure.
    :returns: the smallest of :data:`TEXT_BUCKETS` that holds it, else :data:`MAX`.

    >>> text_length_bucket(17), text_length_bucket(4001), text_length_bucket(None)
    (64, -1, -1)
    """
    return _bucket(max_units, TEXT_BUCKETS)


def binary_length_bucket(max_bytes: int | None) -> int:
    """The varbinary length for values of at most ``max_bytes`` bytes (see :data:`BINARY_BUCKETS`).

    :param max_bytes: the longest value in bytes, or None when unknown.

    >>> binary_length_bucket(8000), binary_length_bucket(8001)
    (8000, -1)
    """
    return _bucket(max_bytes, BINARY_BUCKETS)


def _bucket(size: int | None, buckets: tuple[int, ...]) -> int:
    if size is None:
        return MAX
    return next((b for b in buckets if size <= b), MAX)


def temporal_scale(unit: str) -> int:
    """Fractional-second digits SQL Server needs for an Arrow time unit (s 0, ms 3, us 6, ns 7).

    :param unit: ``s``, ``ms``, ``us`` or ``ns``.

    >>> temporal_scale("ns")
    7
    """
    return _UNIT_SCALE[unit]


def is_uuid(t: pa.DataType) -> bool:
    """True for ``fixed_size_binary(16)`` and the ``arrow.uuid`` extension type.

    :param t: the Arrow type.
    """
    if isinstance(t, pa.BaseExtensionType):
        return t.extension_name == "arrow.uuid" or is_uuid(t.storage_type)
    return pa.types.is_fixed_size_binary(t) and t.byte_width == 16


def is_text_like(t: pa.DataType) -> bool:
    """True for Arrow's string types and dictionaries of them.

    :param t: the Arrow type.
    """
    if pa.types.is_dictionary(t):
        return is_text_like(t.value_type)
    return (pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_string_view(t))


def is_binary_like(t: pa.DataType) -> bool:
    """True for Arrow's binary types other than uuid-shaped ones (those are uniqueidentifier).

    :param t: the Arrow type.
    """
    if pa.types.is_dictionary(t):
        return is_binary_like(t.value_type)
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
            or (pa.types.is_fixed_size_binary(t) and not is_uuid(t)))


def is_nested(t: pa.DataType) -> bool:
    """True for list, large_list, list_view, fixed_size_list, struct and map types.

    :param t: the Arrow type.
    """
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)
            or pa.types.is_struct(t) or pa.types.is_map(t))


_INTEGERS = {
    pa.int8(): SqlType("smallint"), pa.uint8(): SqlType("tinyint"),
    pa.int16(): SqlType("smallint"), pa.uint16(): SqlType("int"),
    pa.int32(): SqlType("int"), pa.uint32(): SqlType("bigint"),
    pa.int64(): SqlType("bigint"), pa.uint64(): SqlType("decimal", precision=20, scale=0),
}


def sql_type_for(t: pa.DataType, *, max_length: int | None = None,
                 column: str = "?") -> SqlType:
    """The SQL Server type that holds every value of Arrow type ``t`` (table in the module doc).

    :param t: the Arrow type.
    :param max_length: for text, the longest value in UTF-16 units; for binary, in
        bytes; None when unknown (the column becomes ``(max)``).
    :param column: the column's name, for error messages.
    :raises UnsupportedTypeError: for a type with no SQL Server counterpart (e.g.
        decimal256 wider than 38 digits) - give the column a SQL type override.

    >>> import pyarrow as pa
    >>> sql_type_for(pa.timestamp("ms", tz="UTC")).sql()
    'datetimeoffset(3)'
    >>> sql_type_for(pa.decimal128(38, 10)).sql()
    'decimal(38,10)'
    """
    if isinstance(t, pa.BaseExtensionType):
        if is_uuid(t):
            return SqlType("uniqueidentifier")
        return sql_type_for(t.storage_type, max_length=max_length, column=column)
    if t in _INTEGERS:
        return _INTEGERS[t]
    if pa.types.is_floating(t):
        return SqlType("float") if t == pa.float64() else SqlType("real")
    if pa.types.is_decimal(t):
        precision, scale = (t.precision - t.scale, 0) if t.scale < 0 else (t.precision, t.scale)
        if precision > 38:
            raise UnsupportedTypeError(
                f"column {column!r}: {t} has more than the 38 digits SQL Server's decimal "
                "holds; give it an override such as {" f"{column!r}: 'float'" "} or "
                "'nvarchar(80)', or reduce its precision before loading")
        return SqlType("decimal", precision=precision, scale=scale)
    if pa.types.is_boolean(t):
        return SqlType("bit")
    if is_text_like(t):
        return SqlType("nvarchar", length=text_length_bucket(max_length))
    if is_uuid(t):
        return SqlType("uniqueidentifier")
    if is_binary_like(t):
        return SqlType("varbinary", length=binary_length_bucket(max_length))
    if pa.types.is_date(t):
        return SqlType("date")
    if pa.types.is_time(t):
        return SqlType("time", scale=temporal_scale(t.unit))
    if pa.types.is_timestamp(t):
        kind = "datetimeoffset" if t.tz is not None else "datetime2"
        return SqlType(kind, scale=temporal_scale(t.unit))
    if pa.types.is_duration(t):
        return SqlType("bigint")
    if is_nested(t):
        return SqlType("nvarchar", length=MAX)
    if pa.types.is_null(t):
        return SqlType("nvarchar", length=1)
    raise UnsupportedTypeError(
        f"column {column!r}: Arrow type {t} has no SQL Server counterpart in azsql-bulk; "
        "cast the column before loading or give it a SQL type override")
