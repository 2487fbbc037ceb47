"""SQL Server types <-> DuckDB storage types, Arrow buffers and catalog-view facets."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from azsql_emulator.sqltypes import MAX, SqlKind, SqlType

DType = exp.DataType.Type

# datetimeoffset is stored as this struct: the UTC instant plus the offset in minutes,
# because DuckDB's TIMESTAMPTZ keeps only the instant. The struct's field names make
# the column recognisable in any DuckDB result description.
# DuckDB's TIMESTAMP and TIME count microseconds (TIMESTAMP_NS covers only 1677-2262), so
# the types with a 100 ns digit (datetime2(7), time(7), datetimeoffset) keep it in a
# second field, ``*_hns`` (0-9); the microsecond field holds the value cut to
# microseconds. DuckDB compares structs field by field, so ordering and equality are
# exact. See ``checks.to_storage``/``from_storage`` and ``translate`` (expressions that
# compute with such a column see its microsecond field).
DTO_DUCK = "STRUCT(dto_utc TIMESTAMP, dto_hns UTINYINT, dto_offset SMALLINT)"
DTO_ARROW = pa.struct([("dto_utc", pa.timestamp("us")), ("dto_hns", pa.uint8()),
                       ("dto_offset", pa.int16())])
DT2_DUCK = "STRUCT(dt2 TIMESTAMP, dt2_hns UTINYINT)"
DT2_ARROW = pa.struct([("dt2", pa.timestamp("us")), ("dt2_hns", pa.uint8())])
TIME7_DUCK = "STRUCT(t7 TIME, t7_hns UTINYINT)"
TIME7_ARROW = pa.struct([("t7", pa.time64("us")), ("t7_hns", pa.uint8())])
# the microsecond field and the 100 ns field of each struct, for expressions
MICROS_FIELD = {SqlKind.DATETIME2: "dt2", SqlKind.TIME: "t7", SqlKind.DATETIMEOFFSET: "dto_utc"}
HNS_FIELD = {SqlKind.DATETIME2: "dt2_hns", SqlKind.TIME: "t7_hns",
             SqlKind.DATETIMEOFFSET: "dto_hns"}

_STRING_KINDS = frozenset({SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR})
_UNICODE_KINDS = frozenset({SqlKind.NCHAR, SqlKind.NVARCHAR})
_BINARY_KINDS = frozenset({SqlKind.BINARY, SqlKind.VARBINARY})
_INT_KINDS = frozenset({SqlKind.TINYINT, SqlKind.SMALLINT, SqlKind.INT, SqlKind.BIGINT})
_DATETIME_KINDS = frozenset({SqlKind.DATETIME, SqlKind.SMALLDATETIME, SqlKind.DATETIME2})

INT_RANGES = {
    SqlKind.TINYINT: (0, 255),
    SqlKind.SMALLINT: (-(2**15), 2**15 - 1),
    SqlKind.INT: (-(2**31), 2**31 - 1),
    SqlKind.BIGINT: (-(2**63), 2**63 - 1),
}

_DUCK_FIXED = {
    SqlKind.BIT: "BOOLEAN", SqlKind.TINYINT: "UTINYINT", SqlKind.SMALLINT: "SMALLINT",
    SqlKind.INT: "INTEGER", SqlKind.BIGINT: "BIGINT", SqlKind.REAL: "FLOAT",
    SqlKind.FLOAT: "DOUBLE", SqlKind.MONEY: "DECIMAL(19,4)", SqlKind.SMALLMONEY: "DECIMAL(10,4)",
    SqlKind.DATE: "DATE", SqlKind.TIME: "TIME", SqlKind.DATETIME: "TIMESTAMP",
    SqlKind.SMALLDATETIME: "TIMESTAMP", SqlKind.DATETIME2: "TIMESTAMP",
    SqlKind.DATETIMEOFFSET: DTO_DUCK, SqlKind.UNIQUEIDENTIFIER: "UUID",
}

_ARROW_FIXED = {
    SqlKind.BIT: pa.bool_(), SqlKind.TINYINT: pa.uint8(), SqlKind.SMALLINT: pa.int16(),
    SqlKind.INT: pa.int32(), SqlKind.BIGINT: pa.int64(), SqlKind.REAL: pa.float32(),
    SqlKind.FLOAT: pa.float64(), SqlKind.MONEY: pa.decimal128(19, 4),
    SqlKind.SMALLMONEY: pa.decimal128(10, 4), SqlKind.DATE: pa.date32(),
    SqlKind.TIME: pa.time64("us"), SqlKind.DATETIME: pa.timestamp("us"),
    SqlKind.SMALLDATETIME: pa.timestamp("us"), SqlKind.DATETIME2: pa.timestamp("us"),
    SqlKind.DATETIMEOFFSET: DTO_ARROW,
    # Arrow has no UUID type DuckDB reads natively: ship text, cast in the INSERT.
    SqlKind.UNIQUEIDENTIFIER: pa.string(),
}

# sys.types rows: name -> (system_type_id, max_length, precision, scale)
SYS_TYPES: dict[str, tuple[int, int, int, int]] = {
    "bigint": (127, 8, 19, 0), "binary": (173, 8000, 0, 0), "bit": (104, 1, 1, 0),
    "char": (175, 8000, 0, 0), "date": (40, 3, 10, 0), "datetime": (61, 8, 23, 3),
    "datetime2": (42, 8, 27, 7), "datetimeoffset": (43, 10, 34, 7), "decimal": (106, 17, 38, 38),
    "float": (62, 8, 53, 0), "int": (56, 4, 10, 0), "money": (60, 8, 19, 4),
    "nchar": (239, 8000, 0, 0), "numeric": (108, 17, 38, 38), "nvarchar": (231, 8000, 0, 0),
    "real": (59, 4, 24, 0), "smalldatetime": (58, 4, 16, 0), "smallint": (52, 2, 5, 0),
    "smallmoney": (122, 4, 10, 4), "time": (41, 5, 16, 7), "tinyint": (48, 1, 3, 0),
    "uniqueidentifier": (36, 16, 0, 0), "varbinary": (165, 8000, 0, 0),
    "varchar": (167, 8000, 0, 0),
}
SYSNAME = SqlType(SqlKind.NVARCHAR, 128)

_DTYPE_NAMES = {
    DType.BIT: "bit", DType.UTINYINT: "tinyint", DType.TINYINT: "tinyint",
    DType.SMALLINT: "smallint", DType.INT: "int", DType.BIGINT: "bigint", DType.FLOAT: "real",
    DType.DOUBLE: "float", DType.DECIMAL: "decimal", DType.BIGDECIMAL: "numeric",
    DType.MONEY: "money", DType.SMALLMONEY: "smallmoney", DType.CHAR: "char",
    DType.VARCHAR: "varchar", DType.NCHAR: "nchar", DType.NVARCHAR: "nvarchar",
    DType.BINARY: "binary", DType.VARBINARY: "varbinary", DType.DATE: "date",
    DType.TIME: "time", DType.DATETIME: "datetime", DType.SMALLDATETIME: "smalldatetime",
    DType.DATETIME2: "datetime2", DType.TIMESTAMPTZ: "datetimeoffset",
    DType.UUID: "uniqueidentifier", DType.TEXT: "varchar(max)", DType.LONGTEXT: "nvarchar(max)",
    DType.IMAGE: "varbinary(max)", DType.ROWVERSION: "binary(8)",
}


def is_string(t: SqlType) -> bool:
    """True for char, varchar, nchar and nvarchar.

    :param t: the type.
    """
    return t.kind in _STRING_KINDS


def is_unicode(t: SqlType) -> bool:
    """True for nchar and nvarchar.

    :param t: the type.
    """
    return t.kind in _UNICODE_KINDS


def is_binary(t: SqlType) -> bool:
    """True for binary and varbinary.

    :param t: the type.
    """
    return t.kind in _BINARY_KINDS


def is_integer(t: SqlType) -> bool:
    """True for tinyint, smallint, int and bigint.

    :param t: the type.
    """
    return t.kind in _INT_KINDS


def sqltype_from_datatype(dt: exp.DataType) -> SqlType:
    """The SQL Server type a parsed sqlglot data type (emulator T-SQL dialect) names.

    :param dt: a ``DataType`` node from a CREATE TABLE, CAST, CONVERT or DECLARE.
    :raises ValueError: for types the emulator does not store (xml, sql_variant...).
    """
    name = _DTYPE_NAMES.get(dt.this)
    if name is None:
        raise ValueError(f"the emulator does not support data type {dt.sql('tsql')}")
    args = []
    for param in dt.expressions:
        inner = param.this if isinstance(param, exp.DataTypeParam) else param
        args.append(inner.name if isinstance(inner, exp.Var | exp.Literal) else inner.sql())
    if "(" in name or not args:
        return SqlType.parse(name)
    return SqlType.parse(f"{name}({','.join(args)})")


def stores_100ns(t: SqlType) -> bool:
    """True for datetime2(7) and time(7), stored as a struct with a 100 ns field (see
    DT2_DUCK; datetimeoffset is always a struct).

    :param t: the declared type.
    """
    return t.kind in (SqlKind.DATETIME2, SqlKind.TIME) and t.scale in (None, 7)


def struct_stored(t: SqlType | None) -> bool:
    """True for the types DuckDB stores as a struct with a 100 ns field: datetime2(7),
    time(7) and datetimeoffset.

    :param t: a declared or inferred type.
    """
    return t is not None and (stores_100ns(t) or t.kind is SqlKind.DATETIMEOFFSET)


def duck_type(t: SqlType) -> str:
    """The DuckDB column type that stores values of a SQL Server type.

    :param t: the declared type.
    """
    if stores_100ns(t):
        return DT2_DUCK if t.kind is SqlKind.DATETIME2 else TIME7_DUCK
    if t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        return f"DECIMAL({t.precision},{t.scale})"
    if is_string(t):
        return "VARCHAR"
    if is_binary(t):
        return "BLOB"
    return _DUCK_FIXED[t.kind]


def arrow_type(t: SqlType) -> pa.DataType:
    """The Arrow type used to ship converted values of ``t`` into DuckDB.

    :param t: the declared type.
    """
    if stores_100ns(t):
        return DT2_ARROW if t.kind is SqlKind.DATETIME2 else TIME7_ARROW
    if t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        return pa.decimal128(t.precision, t.scale)
    if is_string(t):
        return pa.large_string()
    if is_binary(t):
        return pa.large_binary()
    return _ARROW_FIXED[t.kind]


def max_length_bytes(t: SqlType) -> int:
    """``sys.columns.max_length``: bytes, -1 for (max).

    :param t: the declared type.
    """
    if is_string(t) or is_binary(t):
        if t.length == MAX:
            return -1
        length = t.length or 1
        return length * 2 if is_unicode(t) else length
    if t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        p = t.precision or 18
        return 5 if p <= 9 else 9 if p <= 19 else 13 if p <= 28 else 17
    scale = t.scale if t.scale is not None else 7
    if t.kind is SqlKind.TIME:
        return 3 if scale <= 2 else 4 if scale <= 4 else 5
    if t.kind is SqlKind.DATETIME2:
        return 6 if scale <= 2 else 7 if scale <= 4 else 8
    if t.kind is SqlKind.DATETIMEOFFSET:
        return 8 if scale <= 2 else 9 if scale <= 4 else 10
    return SYS_TYPES[t.kind.value][1]


def precision_scale(t: SqlType) -> tuple[int, int]:
    """``sys.columns`` precision and scale.

    :param t: the declared type.
    """
    if t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        return t.precision or 18, t.scale or 0
    scale = t.scale if t.scale is not None else 7
    frac = scale + 1 if scale else 0
    if t.kind is SqlKind.TIME:
        return 8 + frac, scale
    if t.kind is SqlKind.DATETIME2:
        return 19 + frac, scale
    if t.kind is SqlKind.DATETIMEOFFSET:
        return 26 + frac, scale
    _, _, precision, fixed_scale = SYS_TYPES[t.kind.value]
    return precision, fixed_scale


@dataclass(frozen=True)
class InfoSchemaFacets:
    """The type facets INFORMATION_SCHEMA.COLUMNS reports for one column."""

    data_type: str
    char_max_length: int | None
    char_octet_length: int | None
    numeric_precision: int | None
    numeric_precision_radix: int | None
    numeric_scale: int | None
    datetime_precision: int | None


def info_schema_facets(t: SqlType) -> InfoSchemaFacets:
    """INFORMATION_SCHEMA.COLUMNS facets as SQL Server fills them.

    :param t: the declared type.
    """
    chars = octets = prec = radix = scale = dtp = None
    if is_string(t) or is_binary(t):
        chars = t.length
        octets = -1 if t.length == MAX else max_length_bytes(t)
    elif is_integer(t) or t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC, SqlKind.MONEY,
                                     SqlKind.SMALLMONEY):
        prec, scale = precision_scale(t)
        radix = 10
    elif t.kind in (SqlKind.REAL, SqlKind.FLOAT):
        prec, radix = precision_scale(t)[0], 2
    elif t.kind in (SqlKind.TIME, SqlKind.DATETIME2, SqlKind.DATETIMEOFFSET):
        dtp = t.scale
    elif t.kind is SqlKind.DATETIME:
        dtp = 3
    elif t.kind in (SqlKind.DATE, SqlKind.SMALLDATETIME):
        dtp = 0
    return InfoSchemaFacets(t.kind.value, chars, octets, prec, radix, scale, dtp)


_DUCK_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_DUCK_SIMPLE = {
    "BOOLEAN": SqlType(SqlKind.BIT), "UTINYINT": SqlType(SqlKind.TINYINT),
    "TINYINT": SqlType(SqlKind.SMALLINT), "SMALLINT": SqlType(SqlKind.SMALLINT),
    "USMALLINT": SqlType(SqlKind.INT), "INTEGER": SqlType(SqlKind.INT),
    "UINTEGER": SqlType(SqlKind.BIGINT), "BIGINT": SqlType(SqlKind.BIGINT),
    "UBIGINT": SqlType(SqlKind.DECIMAL, precision=20, scale=0),
    "HUGEINT": SqlType(SqlKind.DECIMAL, precision=38, scale=0),
    "UHUGEINT": SqlType(SqlKind.DECIMAL, precision=38, scale=0),
    "FLOAT": SqlType(SqlKind.REAL), "DOUBLE": SqlType(SqlKind.FLOAT, precision=53),
    "DATE": SqlType(SqlKind.DATE), "TIME": SqlType(SqlKind.TIME, scale=7),
    "TIMESTAMP": SqlType(SqlKind.DATETIME2, scale=7),
    "TIMESTAMP_S": SqlType(SqlKind.DATETIME2, scale=0),
    "TIMESTAMP_MS": SqlType(SqlKind.DATETIME2, scale=3),
    "TIMESTAMP_NS": SqlType(SqlKind.DATETIME2, scale=7),
    "TIMESTAMP WITH TIME ZONE": SqlType(SqlKind.DATETIMEOFFSET, scale=7),
    "UUID": SqlType(SqlKind.UNIQUEIDENTIFIER),
    "BLOB": SqlType(SqlKind.VARBINARY, MAX),
}


def sqltype_from_duck(duck: str, values: list[object] | None = None) -> SqlType:
    """A sensible SQL Server type for a DuckDB result column whose origin is unknown.

    :param duck: the DuckDB type as the result description spells it.
    :param values: the column's values, used to pick nvarchar(4000) or nvarchar(max).
    """
    duck = duck.upper()
    if duck in _DUCK_SIMPLE:
        return _DUCK_SIMPLE[duck]
    m = _DUCK_DECIMAL.match(duck)
    if m:
        return SqlType(SqlKind.DECIMAL, precision=int(m.group(1)), scale=int(m.group(2)))
    if duck == DTO_DUCK.upper():
        return SqlType(SqlKind.DATETIMEOFFSET, scale=7)
    if duck == DT2_DUCK.upper():
        return SqlType(SqlKind.DATETIME2, scale=7)
    if duck == TIME7_DUCK.upper():
        return SqlType(SqlKind.TIME, scale=7)
    if duck == "VARCHAR":
        longest = max((utf16_len(v) for v in values or () if isinstance(v, str)), default=0)
        return SqlType(SqlKind.NVARCHAR, MAX if longest > 4000 else 4000)
    # lists, maps, intervals...: shown as text
    return SqlType(SqlKind.NVARCHAR, MAX)


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units, which is how nvarchar(n) counts.

    :param s: the text.
    """
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2  # counted in C


def utf16_prefix(text: str, units: int) -> str:
    """The longest prefix of ``text`` that fits ``units`` UTF-16 code units (a character
    outside the BMP is never split).

    >>> utf16_prefix("a😀b", 2), utf16_prefix("a😀b", 3)
    ('a', 'a😀')
    """
    out, used = [], 0
    for ch in text:
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            break
        out.append(ch)
    return "".join(out)
