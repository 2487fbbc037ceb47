"""TYPE_INFO (2.2.5.4): the wire description of a column or parameter type, and SqlType mapping."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from azsql_emulator.sqltypes import MAX, SqlKind, SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import DataType as D
from azsql_emulator.tds.packet import ProtocolError

__all__ = [
    "PLP_SIZE",
    "TypeInfo",
    "decimal_size",
    "decode_type_info",
    "encode_type_info",
    "read_type_info",
    "type_info_for",
]

PLP_SIZE = 0xFFFF  # USHORTLEN max length meaning (max): values are PLP streams
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

# TYPE_INFO layouts, by what follows the type byte.
_FIXED_SIZES: dict[int, int] = {
    D.NULLTYPE: 0, D.INT1: 1, D.BIT: 1, D.INT2: 2, D.INT4: 4, D.DATETIM4: 4,
                D.FLT4: 4, D.MONEY: 8, D.DATETIME: 8, D.FLT8: 8, D.MONEY4: 4, D.INT8: 8}
# The legacy BYTELEN CHAR/VARCHAR/BINARY/VARBINARY (pre-7.0 clients) are not supported.
_BYTELEN = frozenset({D.GUID, D.INTN, D.BITN, D.FLTN, D.MONEYN, D.DATETIMN})
_DECIMALS = frozenset({D.DECIMAL, D.NUMERIC, D.DECIMALN, D.NUMERICN})
_SCALED = frozenset({D.TIMEN, D.DATETIME2N, D.DATETIMEOFFSETN})
_USHORT = frozenset({D.BIGVARBIN, D.BIGBINARY})
_USHORT_COLL = frozenset({D.BIGVARCHR, D.BIGCHAR, D.NVARCHAR, D.NCHAR})
_LONGLEN = frozenset({D.IMAGE, D.SSVARIANT})
_LONGLEN_COLL = frozenset({D.TEXT, D.NTEXT})
_PLP_CAPABLE = _USHORT | _USHORT_COLL
# Bytes of TYPE_INFO (type byte included) for every layout but XML: also the cache key length.
_TI_LEN: dict[int, int] = {
    }
_TI_LEN.update({t: 1 for t in _FIXED_SIZES})
_TI_LEN.update({t: 2 for t in _BYTELEN})
_TI_LEN.update({t: 4 for t in _DECIMALS})
_TI_LEN.update({t: 2 for t in _SCALED})
_TI_LEN[D.DATEN] = 1
_TI_LEN.update({t: 3 for t in _USHORT})
_TI_LEN.update({t: 8 for t in _USHORT_COLL})
_TI_LEN.update({t: 5 for t in _LONGLEN})
_TI_LEN.update({t: 10 for t in _LONGLEN_COLL})
_VALID_SIZES: dict[int, tuple[int, ...]] = {
    D.INTN: (1, 2, 4, 8), D.BITN: (1,), D.FLTN: (4, 8), D.MONEYN: (4, 8),
                D.DATETIMN: (4, 8), D.GUID: (16,)}
_TI_CACHE: dict[bytes, TypeInfo] = {
    }
_TI_CACHE_LIMIT = 4096


def decimal_size(precision: int) -> int:
    """Bytes of a decimal value (sign byte included) at this precision."""
    if precision <= 9:
        return 5
    if precision <= 19:
        return 9
    if precision <= 28:
        return 13
    return 17


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """A decoded TYPE_INFO.

    :param type: the :class:`~azsql_emulator.tds.constants.DataType` byte.
    :param size: max length in bytes from TYPE_INFO (the fixed length for fixed types,
        ``PLP_SIZE`` for the (max) types); 0 where TYPE_INFO has none (date, time...).
    :param precision: decimal/numeric precision.
    :param scale: decimal/numeric scale or time/datetime2/datetimeoffset fractional digits.
    :param collation: 5 raw collation bytes for character types.
    :param xml_schema: (database, owning schema, collection) for typed XML.
    """

    type: int
    size: int = 0
    precision: int = 0
    scale: int = 0
    collation: bytes | None = None
    xml_schema: tuple[str, str, str] | None = None

    @property
    def is_plp(self) -> bool:
        """True when values are PLP streams ((max) types and XML)."""
        return (self.size == PLP_SIZE and self.type in _PLP_CAPABLE) or self.type == D.XML

    def to_sql_type(self) -> SqlType:
        """The SqlType this wire type stands for (untyped NULL is int, as in SQL Server)."""
        return _to_sql_type(self)


def _sized(kind: SqlKind, size: int, per_char: int = 1) -> SqlType:
    return SqlType(kind, MAX if size == PLP_SIZE else size // per_char)


_FIXED_SQL: dict[int, SqlType] = {
    D.NULLTYPE: SqlType(SqlKind.INT), D.INT1: SqlType(SqlKind.TINYINT),
    D.BIT: SqlType(SqlKind.BIT), D.BITN: SqlType(SqlKind.BIT),
    D.INT2: SqlType(SqlKind.SMALLINT), D.INT4: SqlType(SqlKind.INT),
    D.INT8: SqlType(SqlKind.BIGINT), D.FLT4: SqlType(SqlKind.REAL),
    D.FLT8: SqlType(SqlKind.FLOAT, precision=53), D.MONEY: SqlType(SqlKind.MONEY),
    D.MONEY4: SqlType(SqlKind.SMALLMONEY), D.DATETIME: SqlType(SqlKind.DATETIME),
    D.DATETIM4: SqlType(SqlKind.SMALLDATETIME), D.GUID: SqlType(SqlKind.UNIQUEIDENTIFIER),
    D.DATEN: SqlType(SqlKind.DATE), D.TEXT: SqlType(SqlKind.VARCHAR, MAX),
    D.NTEXT: SqlType(SqlKind.NVARCHAR, MAX), D.IMAGE: SqlType(SqlKind.VARBINARY, MAX),
    D.XML: SqlType(SqlKind.NVARCHAR, MAX),
}
_BY_SIZE: dict[int, dict[int, SqlKind]] = {
    D.INTN: {1: SqlKind.TINYINT, 2: SqlKind.SMALLINT, 4: SqlKind.INT, 8: SqlKind.BIGINT},
    D.FLTN: {4: SqlKind.REAL, 8: SqlKind.FLOAT},
    D.MONEYN: {4: SqlKind.SMALLMONEY, 8: SqlKind.MONEY},
    D.DATETIMN: {4: SqlKind.SMALLDATETIME, 8: SqlKind.DATETIME},
}
_SCALED_SQL: dict[int, SqlKind] = {
    D.TIMEN: SqlKind.TIME, D.DATETIME2N: SqlKind.DATETIME2,
               D.DATETIMEOFFSETN: SqlKind.DATETIMEOFFSET}
_STRING_SQL: dict[int, tuple[SqlKind, int]] = {
    D.BIGVARCHR: (SqlKind.VARCHAR, 1), D.BIGCHAR: (SqlKind.CHAR, 1),
               D.NVARCHAR: (SqlKind.NVARCHAR, 2), D.NCHAR: (SqlKind.NCHAR, 2),
               D.BIGVARBIN: (SqlKind.VARBINARY, 1), D.BIGBINARY: (SqlKind.BINARY, 1)}


def _to_sql_type(ti: TypeInfo) -> SqlType:
    t = ti.type
    if t in _FIXED_SQL:
        return _FIXED_SQL[t]
    if t in _BY_SIZE:
        kind = _BY_SIZE[t][ti.size]
        return SqlType(kind, precision=53) if kind is SqlKind.FLOAT else SqlType(kind)
    if t in _DECIMALS:
        kind = SqlKind.NUMERIC if t in (D.NUMERIC, D.NUMERICN) else SqlKind.DECIMAL
        return SqlType(kind, precision=ti.precision, scale=ti.scale)
    if t in _SCALED_SQL:
        return SqlType(_SCALED_SQL[t], scale=ti.scale)
    if t in _STRING_SQL:
        kind, per_char = _STRING_SQL[t]
        return _sized(kind, ti.size, per_char)
    raise ValueError(f"no SQL type for TDS type 0x{t:02x}")


@lru_cache(maxsize=512)
def type_info_for(t: SqlType, collation: bytes = DEFAULT_COLLATION) -> TypeInfo:
    """The TYPE_INFO SQL Server sends in COLMETADATA for a column of type ``t``.

    Lengths beyond 8000 bytes are sent as (max).

    >>> type_info_for(SqlType.parse("nvarchar(10)")).size
    20
    """
    k = t.kind
    if k is SqlKind.BIT:
        return TypeInfo(D.BITN, 1)
    if k in (SqlKind.TINYINT, SqlKind.SMALLINT, SqlKind.INT, SqlKind.BIGINT):
        return TypeInfo(D.INTN, {SqlKind.TINYINT: 1, SqlKind.SMALLINT: 2,
                                 SqlKind.INT: 4, SqlKind.BIGINT: 8}[k])
    if k is SqlKind.REAL:
        return TypeInfo(D.FLTN, 4)
    if k is SqlKind.FLOAT:
        return TypeInfo(D.FLTN, 4 if (t.precision or 53) <= 24 else 8)
    if k in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        p = t.precision or 18
        s = t.scale or 0
        return TypeInfo(D.DECIMALN if k is SqlKind.DECIMAL else D.NUMERICN,
                        decimal_size(p), p, s)
    if k is SqlKind.MONEY:
        return TypeInfo(D.MONEYN, 8)
    if k is SqlKind.SMALLMONEY:
        return TypeInfo(D.MONEYN, 4)
    if k in (SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR):
        wide = k in (SqlKind.NCHAR, SqlKind.NVARCHAR)
        fixed = k in (SqlKind.CHAR, SqlKind.NCHAR)
        tds = (D.NCHAR if fixed else D.NVARCHAR) if wide else (D.BIGCHAR if fixed else D.BIGVARCHR)
        return TypeInfo(tds, _byte_size(t, 2 if wide else 1), collation=collation)
    if k in (SqlKind.BINARY, SqlKind.VARBINARY):
        tds = D.BIGBINARY if k is SqlKind.BINARY else D.BIGVARBIN
        return TypeInfo(tds, _byte_size(t, 1))
    if k is SqlKind.DATE:
        return TypeInfo(D.DATEN, 3)
    if k is SqlKind.TIME:
        return TypeInfo(D.TIMEN, scale=7 if t.scale is None else t.scale)
    if k is SqlKind.DATETIME:
        return TypeInfo(D.DATETIMN, 8)
    if k is SqlKind.SMALLDATETIME:
        return TypeInfo(D.DATETIMN, 4)
    if k is SqlKind.DATETIME2:
        return TypeInfo(D.DATETIME2N, scale=7 if t.scale is None else t.scale)
    if k is SqlKind.DATETIMEOFFSET:
        return TypeInfo(D.DATETIMEOFFSETN, scale=7 if t.scale is None else t.scale)
    if k is SqlKind.UNIQUEIDENTIFIER:
        return TypeInfo(D.GUID, 16)
    raise ValueError(f"no TDS type for {t.sql()}")


def _byte_size(t: SqlType, per_char: int) -> int:
    if t.length is None:
        return per_char
    if t.length == MAX or t.length * per_char > 8000:
        return PLP_SIZE
    return t.length * per_char


def encode_type_info(t: SqlType | TypeInfo, *, collation: bytes = DEFAULT_COLLATION) -> bytes:
    """Encode TYPE_INFO for a SqlType (as SQL Server describes result columns) or a TypeInfo.

    >>> encode_type_info(SqlType.parse("int")).hex()
    '2604'
    """
    ti = t if isinstance(t, TypeInfo) else type_info_for(t, collation)
    return _encode(ti)


def _encode(ti: TypeInfo) -> bytes:
    t = ti.type
    if t in _FIXED_SIZES or t == D.DATEN:
        return bytes((t,))
    if t in _BYTELEN:
        return bytes((t, ti.size))
    if t in _DECIMALS:
        return bytes((t, ti.size or decimal_size(ti.precision), ti.precision, ti.scale))
    if t in _SCALED:
        return bytes((t, ti.scale))
    if t in _USHORT:
        return bytes((t,)) + _U16.pack(ti.size)
    if t in _USHORT_COLL:
        return bytes((t,)) + _U16.pack(ti.size) + _collation(ti)
    if t in _LONGLEN:
        return bytes((t,)) + _U32.pack(ti.size)
    if t in _LONGLEN_COLL:
        return bytes((t,)) + _U32.pack(ti.size) + _collation(ti)
    if t == D.XML:
        if ti.xml_schema is None:
            return bytes((t, 0))
        db, owner, coll = (s.encode("utf-16-le") for s in ti.xml_schema)
        return (bytes((t, 1, len(db) // 2)) + db + bytes((len(owner) // 2,)) + owner
                + _U16.pack(len(coll) // 2) + coll)
    raise ValueError(f"cannot encode TYPE_INFO for TDS type 0x{t:02x}")


def _collation(ti: TypeInfo) -> bytes:
    c = ti.collation if ti.collation is not None else DEFAULT_COLLATION
    if len(c) != 5:
        raise ValueError("collation must be 5 bytes")
    return c


def decode_type_info(buf: bytes, pos: int) -> tuple[TypeInfo, int]:
    """Decode TYPE_INFO at ``buf[pos]``; return it and the position after it."""
    try:
        return read_type_info(buf, pos)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"malformed TYPE_INFO at byte {pos}: {e}") from None


def read_type_info(buf: bytes, pos: int) -> tuple[TypeInfo, int]:
    """Unchecked :func:`decode_type_info` for loops that map low-level errors once."""
    t = buf[pos]
    n = _TI_LEN.get(t)
    if n is None:
        if t == D.XML:
            return _decode_xml(buf, pos)
        raise ProtocolError(f"unsupported TDS data type 0x{t:02x}")
    end = pos + n
    key = bytes(buf[pos:end])
    ti = _TI_CACHE.get(key)
    if ti is None:
        if len(key) < n:
            raise ProtocolError(f"TYPE_INFO for type 0x{t:02x} truncated")
        ti = _parse(t, key)
        if len(_TI_CACHE) >= _TI_CACHE_LIMIT:
            _TI_CACHE.clear()
        _TI_CACHE[key] = ti
    return ti, end


def _parse(t: int, key: bytes) -> TypeInfo:
    if t in _FIXED_SIZES:
        return TypeInfo(t, _FIXED_SIZES[t])
    if t == D.DATEN:
        return TypeInfo(t, 3)
    if t in _BYTELEN:
        size = key[1]
        valid = _VALID_SIZES.get(t)
        if valid is not None and size not in valid:
            raise ProtocolError(f"TDS type 0x{t:02x} with bad length {size}")
        return TypeInfo(t, size)
    if t in _DECIMALS:
        size, precision, scale = key[1], key[2], key[3]
        if size > 17 and 1 <= precision <= 38:
            # mssql-python's bulk copy sends the type byte (0x6A) as the length; the
            # length is only an upper bound (every value carries its own), and SQL Server
            # accepts it, so read it as the largest decimal.
            size = 17
        if not (1 <= precision <= 38 and scale <= precision and 1 <= size <= 17):
            raise ProtocolError(f"decimal TYPE_INFO out of range: size {size}, "
                                f"precision {precision}, scale {scale}")
        return TypeInfo(t, size, precision, scale)
    if t in _SCALED:
        if key[1] > 7:
            raise ProtocolError(f"fractional-second scale {key[1]} > 7")
        return TypeInfo(t, 0, 0, key[1])
    if t in _USHORT:
        return TypeInfo(t, _U16.unpack_from(key, 1)[0])
    if t in _USHORT_COLL:
        size = _U16.unpack_from(key, 1)[0]
        if t in (D.NVARCHAR, D.NCHAR) and size != PLP_SIZE and size % 2:
            raise ProtocolError(f"odd byte length {size} for a UTF-16 type")
        return TypeInfo(t, size, collation=key[3:8])
    if t in _LONGLEN:
        return TypeInfo(t, _U32.unpack_from(key, 1)[0])
    return TypeInfo(t, _U32.unpack_from(key, 1)[0], collation=key[5:10])  # TEXT / NTEXT


def _b_varchar(buf: bytes, pos: int) -> tuple[str, int]:
    n = buf[pos] * 2
    end = pos + 1 + n
    if end > len(buf):
        raise ProtocolError("B_VARCHAR runs past the end of the data")
    return buf[pos + 1:end].decode("utf-16-le", "surrogatepass"), end


def _decode_xml(buf: bytes, pos: int) -> tuple[TypeInfo, int]:
    present = buf[pos + 1]
    pos += 2
    if not present:
        return TypeInfo(D.XML, PLP_SIZE), pos
    db, pos = _b_varchar(buf, pos)
    owner, pos = _b_varchar(buf, pos)
    (n,) = _U16.unpack_from(buf, pos)
    end = pos + 2 + 2 * n
    if end > len(buf):
        raise ProtocolError("XML schema collection name runs past the end")
    coll = buf[pos + 2:end].decode("utf-16-le", "surrogatepass")
    return TypeInfo(D.XML, PLP_SIZE, xml_schema=(db, owner, coll)), end
