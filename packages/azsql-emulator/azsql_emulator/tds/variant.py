"""sql_variant values (2.2.5.5.4): base type, properties and data inside a u32 length."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from decimal import Decimal
from typing import Any

from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import DataType as D
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.raw_values import raw_codecs
from azsql_emulator.tds.typeinfo import TypeInfo

__all__ = ["decode_variant", "encode_variant", "read_variant"]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_FIXED_SIZES: dict[int, int] = {
    D.INT1: 1, D.BIT: 1, D.INT2: 2, D.INT4: 4, D.INT8: 8, D.FLT4: 4, D.FLT8: 8,
                D.MONEY: 8, D.MONEY4: 4, D.DATETIME: 8, D.DATETIM4: 4, D.GUID: 16, D.DATEN: 3}
_COLLATED = frozenset({D.BIGVARCHR, D.BIGCHAR, D.NVARCHAR, D.NCHAR})
_BINARY = frozenset({D.BIGVARBIN, D.BIGBINARY})
_SCALED = frozenset({D.TIMEN, D.DATETIME2N, D.DATETIMEOFFSETN})
_DECIMALS = frozenset({D.DECIMALN, D.NUMERICN})


def _infer(value: Any) -> tuple[TypeInfo, bytes]:
    """The base type SQL Server would give a Python value, and its property bytes."""
    if isinstance(value, bool):
        return TypeInfo(D.BIT, 1), b""
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return TypeInfo(D.INT4, 4), b""
        return TypeInfo(D.INT8, 8), b""
    if isinstance(value, float):
        return TypeInfo(D.FLT8, 8), b""
    if isinstance(value, Decimal):
        exp = value.as_tuple().exponent
        scale = max(0, -exp) if isinstance(exp, int) else 0
        if scale > 38:
            raise ValueError(f"{value!r} has more than 38 decimal places")
        return TypeInfo(D.NUMERICN, 17, 38, scale), bytes((38, scale))
    if isinstance(value, str):
        return (TypeInfo(D.NVARCHAR, 8000, collation=DEFAULT_COLLATION),
                DEFAULT_COLLATION + _U16.pack(8000))
    if isinstance(value, (bytes, bytearray)):
        return TypeInfo(D.BIGVARBIN, 8000), _U16.pack(8000)
    if isinstance(value, dt.datetime):
        ty = D.DATETIMEOFFSETN if value.tzinfo is not None else D.DATETIME2N
        return TypeInfo(ty, scale=7), b"\x07"
    if isinstance(value, dt.date):
        return TypeInfo(D.DATEN, 3), b""
    if isinstance(value, dt.time):
        return TypeInfo(D.TIMEN, scale=7), b"\x07"
    if isinstance(value, uuid.UUID):
        return TypeInfo(D.GUID, 16), b""
    raise ValueError(f"no sql_variant base type for {value!r}")


def encode_variant(value: Any) -> bytes:
    """Encode a sql_variant value; the base type follows the Python type (NULL: length 0)."""
    if value is None:
        return b"\x00\x00\x00\x00"
    ti, props = _infer(value)
    data = raw_codecs(ti.type)[0](ti, value)
    return _U32.pack(2 + len(props) + len(data)) + bytes((ti.type, len(props))) + props + data


def _base_info(base: int, props: bytes) -> TypeInfo:
    if base in _FIXED_SIZES:
        return TypeInfo(base, _FIXED_SIZES[base])
    if base in _DECIMALS and len(props) == 2:
        return TypeInfo(base, 17, props[0], props[1])
    if base in _SCALED and len(props) == 1 and props[0] <= 7:
        return TypeInfo(base, scale=props[0])
    if base in _BINARY and len(props) == 2:
        return TypeInfo(base, _U16.unpack(props)[0])
    if base in _COLLATED and len(props) == 7:
        return TypeInfo(base, _U16.unpack_from(props, 5)[0], collation=bytes(props[:5]))
    raise ProtocolError(f"sql_variant base type 0x{base:02x} with {len(props)} property bytes")


def read_variant(buf: bytes, pos: int) -> tuple[Any, int]:
    """Decode a sql_variant value at ``pos`` (unchecked: callers map low-level errors)."""
    (n,) = _U32.unpack_from(buf, pos)
    pos += 4
    if n == 0:
        return None, pos
    end = pos + n
    if end > len(buf) or n < 2:
        raise ProtocolError("sql_variant value runs past the end of the data")
    base, nprops = buf[pos], buf[pos + 1]
    if 2 + nprops > n:
        raise ProtocolError("sql_variant properties run past the value")
    ti = _base_info(base, buf[pos + 2:pos + 2 + nprops])
    data = buf[pos + 2 + nprops:end]
    if base in _FIXED_SIZES and len(data) != _FIXED_SIZES[base]:
        raise ProtocolError(f"sql_variant base type 0x{base:02x} with {len(data)} data bytes")
    try:
        codecs = raw_codecs(base)
    except KeyError:
        raise ProtocolError(f"unsupported sql_variant base type 0x{base:02x}") from None
    return codecs[1](ti, data), end


def decode_variant(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """Decode a sql_variant value; ProtocolError on malformed bytes."""
    try:
        return read_variant(buf, pos)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"malformed sql_variant at byte {pos}: {e}") from None
