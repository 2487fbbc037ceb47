"""Value codecs per TDS type (2.2.5.5): Python values <-> the bytes after TYPE_INFO.

NULL takes each type's own form: a zero length byte (INTN, FLTN, DATEN...), 0xFFFF
(non-PLP var types), PLP NULL (0xFFFFFFFFFFFFFFFF), 0xFFFFFFFF (TEXT/IMAGE parameters).
Encoding problems (wrong Python type, overflow, too long) raise ValueError; malformed
bytes raise ProtocolError.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from emulator.sqltypes import SqlType
from emulator.tds import temporal as tm
from emulator.tds.collation import DEFAULT_COLLATION, collation_codec
from emulator.tds.constants import DataType as D
from emulator.tds.packet import ProtocolError
from emulator.tds.typeinfo import PLP_SIZE, TypeInfo, decimal_size, type_info_for

__all__ = [
    "PLP_NULL",
    "PLP_UNKNOWN_LENGTH",
    "decode_column_value",
    "decode_plp",
    "decode_value",
    "encode_column_value",
    "encode_plp",
    "encode_value",
    "read_column_value",
    "read_value",
]

PLP_NULL = 0xFFFFFFFFFFFFFFFF
PLP_UNKNOWN_LENGTH = 0xFFFFFFFFFFFFFFFE
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_MONEY = struct.Struct("<iI")
_DEC_CTX = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP, Emax=999_999,
                           Emin=-999_999)
_NULL_BYTE = b"\x00"
_NULL_USHORT = b"\xff\xff"
_NULL_PLP = _U64.pack(PLP_NULL)
_NULL_LONG = b"\xff\xff\xff\xff"
_TEXT_TYPES = frozenset({D.TEXT, D.NTEXT, D.IMAGE})
_TEXTPTR = b"\x10" + b"\x00" * 16 + b"\x00" * 8  # dummy text pointer and timestamp in rows


def _err(msg: str) -> ValueError:
    return ValueError(msg)


def _as_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int):  # bool
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if value.adjusted() > 40:
            raise _err(f"{value!r} is too large for an integer type")
        return int(value)
    raise _err(f"expected an integer, got {value!r}")


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, str):
        try:
            d = Decimal(value)
        except decimal.InvalidOperation:
            raise _err(f"{value!r} is not a number") from None
    elif isinstance(value, float):
        d = Decimal(repr(value))  # the shortest decimal that reads back as this float
    else:
        raise _err(f"expected a number, got {value!r}")
    if not d.is_finite():
        raise _err(f"{value!r} is not a finite number")
    return d


def _scaled(units: int, scale: int) -> Decimal:
    """units * 10**-scale, exactly."""
    return Decimal(units) if scale == 0 else Decimal(f"{units}E-{scale}")


def _to_units(value: Any, scale: int) -> int:
    """Round half-up to ``scale`` digits, as SQL Server converts to decimal and money."""
    d = _as_decimal(value)
    if d.adjusted() > 40:  # beyond any decimal(38) or money: fail before building a huge int
        raise _err(f"{value!r} is too large for a decimal or money value")
    d = _DEC_CTX.scaleb(d, scale)
    return int(d.to_integral_value(rounding=decimal.ROUND_HALF_UP, context=_DEC_CTX))


# --- raw encoders: value (not None) -> bytes without a length prefix ---------------------

def _enc_int(ti: TypeInfo, v: Any) -> bytes:
    try:
        return _as_int(v).to_bytes(ti.size, "little", signed=ti.size != 1)
    except OverflowError:
        raise _err(f"{v!r} does not fit a {ti.size}-byte integer") from None


def _enc_bit(ti: TypeInfo, v: Any) -> bytes:
    return b"\x01" if v else b"\x00"


def _enc_float(ti: TypeInfo, v: Any) -> bytes:
    try:
        return (_F32 if ti.size == 4 else _F64).pack(float(v))
    except (OverflowError, TypeError, ValueError):
        raise _err(f"{v!r} is not a {ti.size * 8}-bit float") from None


def _enc_money(ti: TypeInfo, v: Any) -> bytes:
    units = _to_units(v, 4)
    try:
        if ti.size == 4:
            return _I32.pack(units)
        return _MONEY.pack(units >> 32, units & 0xFFFFFFFF)
    except struct.error:
        raise _err(f"{v!r} overflows {'smallmoney' if ti.size == 4 else 'money'}") from None


def _enc_decimal(ti: TypeInfo, v: Any) -> bytes:
    units = _to_units(v, ti.scale)
    if abs(units) >= 10 ** ti.precision:
        raise _err(f"{v!r} overflows decimal({ti.precision},{ti.scale})")
    size = ti.size if ti.size in (5, 9, 13, 17) else decimal_size(ti.precision)
    return (b"\x00" if units < 0 else b"\x01") + abs(units).to_bytes(size - 1, "little")


def _enc_datetimn(ti: TypeInfo, v: Any) -> bytes:
    return tm.encode_datetime(v) if ti.size == 8 else tm.encode_smalldatetime(v)


def _enc_guid(ti: TypeInfo, v: Any) -> bytes:
    if isinstance(v, uuid.UUID):
        return v.bytes_le
    if isinstance(v, str):
        return uuid.UUID(v).bytes_le
    if isinstance(v, (bytes, bytearray)) and len(v) == 16:
        return bytes(v)  # already in wire order
    raise _err(f"expected a uuid.UUID, got {v!r}")


def _enc_date(ti: TypeInfo, v: Any) -> bytes:
    if not isinstance(v, dt.date):
        raise _err(f"expected a datetime.date, got {v!r}")
    return tm.encode_date(v)


def _enc_time(ti: TypeInfo, v: Any) -> bytes:
    if not isinstance(v, dt.time):
        raise _err(f"expected a datetime.time, got {v!r}")
    return tm.encode_time(v, ti.scale)


def _enc_datetime2(ti: TypeInfo, v: Any) -> bytes:
    return tm.encode_datetime2(v, ti.scale)


def _enc_dto(ti: TypeInfo, v: Any) -> bytes:
    return tm.encode_datetimeoffset(v, ti.scale)


def _enc_varchar(ti: TypeInfo, v: Any) -> bytes:
    if isinstance(v, str):
        # Characters outside the code page become '?', as SQL Server converts them.
        return v.encode(collation_codec(ti.collation), "replace")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise _err(f"expected a str, got {v!r}")


def _enc_nvarchar(ti: TypeInfo, v: Any) -> bytes:
    if not isinstance(v, str):
        raise _err(f"expected a str, got {v!r}")
    return v.encode("utf-16-le", "surrogatepass")


def _enc_binary(ti: TypeInfo, v: Any) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise _err(f"expected bytes, got {v!r}")
    return bytes(v)


_PAD: dict[int, bytes] = {D.BIGCHAR: b" ", D.NCHAR: " ".encode("utf-16-le"), D.BIGBINARY: b"\x00"}

# --- raw decoders: bytes (no length prefix, not NULL) -> value ---------------------------


def _dec_int(ti: TypeInfo, raw: bytes) -> int:
    n = len(raw)
    if n not in (1, 2, 4, 8):
        raise ProtocolError(f"integer value with bad length {n}")
    return int.from_bytes(raw, "little", signed=n != 1)


def _dec_bit(ti: TypeInfo, raw: bytes) -> bool:
    if len(raw) != 1:
        raise ProtocolError(f"bit value with bad length {len(raw)}")
    return raw[0] != 0


def _dec_float(ti: TypeInfo, raw: bytes) -> float:
    if len(raw) == 8:
        return _F64.unpack(raw)[0]
    if len(raw) == 4:
        return _F32.unpack(raw)[0]
    raise ProtocolError(f"float value with bad length {len(raw)}")


def _dec_money(ti: TypeInfo, raw: bytes) -> Decimal:
    if len(raw) == 8:
        hi, lo = _MONEY.unpack(raw)
        return _scaled((hi << 32) | lo, 4)
    if len(raw) == 4:
        return _scaled(_I32.unpack(raw)[0], 4)
    raise ProtocolError(f"money value with bad length {len(raw)}")


def _dec_decimal(ti: TypeInfo, raw: bytes) -> Decimal:
    if len(raw) not in (5, 9, 13, 17):
        raise ProtocolError(f"decimal value with bad length {len(raw)}")
    units = int.from_bytes(raw[1:], "little")
    return _scaled(units if raw[0] else -units, ti.scale)


def _dec_datetimn(ti: TypeInfo, raw: bytes) -> dt.datetime:
    return tm.decode_datetime(raw) if len(raw) == 8 else tm.decode_smalldatetime(raw)


def _dec_guid(ti: TypeInfo, raw: bytes) -> uuid.UUID:
    if len(raw) != 16:
        raise ProtocolError(f"uniqueidentifier value with bad length {len(raw)}")
    return uuid.UUID(bytes_le=bytes(raw))


def _dec_varchar(ti: TypeInfo, raw: bytes) -> str:
    return str(raw, collation_codec(ti.collation), "replace")


def _dec_nvarchar(ti: TypeInfo, raw: bytes) -> str:
    return str(raw, "utf-16-le", "surrogatepass")


def _dec_binary(ti: TypeInfo, raw: bytes) -> bytes:
    return bytes(raw)


Enc = Callable[[TypeInfo, Any], bytes]
Dec = Callable[[TypeInfo, bytes], Any]
_RAW: dict[int, tuple[Enc, Dec]] = {
    D.INT1: (_enc_int, _dec_int), D.INT2: (_enc_int, _dec_int), D.INT4: (_enc_int, _dec_int),
    D.INT8: (_enc_int, _dec_int), D.INTN: (_enc_int, _dec_int),
    D.BIT: (_enc_bit, _dec_bit), D.BITN: (_enc_bit, _dec_bit),
    D.FLT4: (_enc_float, _dec_float), D.FLT8: (_enc_float, _dec_float),
    D.FLTN: (_enc_float, _dec_float),
    D.MONEY: (_enc_money, _dec_money), D.MONEY4: (_enc_money, _dec_money),
    D.MONEYN: (_enc_money, _dec_money),
    D.DATETIME: (_enc_datetimn, _dec_datetimn), D.DATETIM4: (_enc_datetimn, _dec_datetimn),
    D.DATETIMN: (_enc_datetimn, _dec_datetimn),
    D.DECIMAL: (_enc_decimal, _dec_decimal), D.NUMERIC: (_enc_decimal, _dec_decimal),
    D.DECIMALN: (_enc_decimal, _dec_decimal), D.NUMERICN: (_enc_decimal, _dec_decimal),
    D.GUID: (_enc_guid, _dec_guid),
    D.DATEN: (_enc_date, lambda ti, raw: tm.decode_date(raw)),
    D.TIMEN: (_enc_time, lambda ti, raw: tm.decode_time(raw, ti.scale)),
    D.DATETIME2N: (_enc_datetime2, lambda ti, raw: tm.decode_datetime2(raw, ti.scale)),
    D.DATETIMEOFFSETN: (_enc_dto, lambda ti, raw: tm.decode_datetimeoffset(raw, ti.scale)),
    D.BIGVARCHR: (_enc_varchar, _dec_varchar), D.BIGCHAR: (_enc_varchar, _dec_varchar),
    D.TEXT: (_enc_varchar, _dec_varchar),
    D.NVARCHAR: (_enc_nvarchar, _dec_nvarchar), D.NCHAR: (_enc_nvarchar, _dec_nvarchar),
    D.NTEXT: (_enc_nvarchar, _dec_nvarchar), D.XML: (_enc_nvarchar, _dec_nvarchar),
    D.BIGVARBIN: (_enc_binary, _dec_binary), D.BIGBINARY: (_enc_binary, _dec_binary),
    D.IMAGE: (_enc_binary, _dec_binary),
}
_FIXED = frozenset({D.INT1, D.INT2, D.INT4, D.INT8, D.BIT, D.FLT4, D.FLT8, D.MONEY,
                    D.MONEY4, D.DATETIME, D.DATETIM4})
_BYTELEN = frozenset({D.INTN, D.BITN, D.FLTN, D.MONEYN, D.DATETIMN, D.DECIMAL, D.NUMERIC,
                      D.DECIMALN, D.NUMERICN, D.GUID, D.DATEN, D.TIMEN, D.DATETIME2N,
                      D.DATETIMEOFFSETN})
_USHORT = frozenset({D.BIGVARCHR, D.BIGCHAR, D.NVARCHAR, D.NCHAR, D.BIGVARBIN, D.BIGBINARY})


# --- PLP ---------------------------------------------------------------------------------

def encode_plp(data: bytes | None) -> bytes:
    """A PLP stream: u64 total length, one chunk, the zero-length terminator (NULL: u64 ~0).

    >>> encode_plp(b"ab").hex()
    '020000000000000002000000616200000000'
    """
    if data is None:
        return _NULL_PLP
    if not data:
        return _U64.pack(0) + b"\x00\x00\x00\x00"
    return _U64.pack(len(data)) + _U32.pack(len(data)) + data + b"\x00\x00\x00\x00"


def _read_plp(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    (total,) = _U64.unpack_from(buf, pos)
    pos += 8
    if total == PLP_NULL:
        return None, pos
    parts = []
    n = len(buf)
    unpack = _U32.unpack_from
    while True:
        (size,) = unpack(buf, pos)
        pos += 4
        if size == 0:
            break
        end = pos + size
        if end > n:
            raise ProtocolError(f"PLP chunk of {size} bytes runs past the end of the data")
        parts.append(buf[pos:end])
        pos = end
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if total != PLP_UNKNOWN_LENGTH and total != len(data):
        raise ProtocolError(f"PLP stream declared {total} bytes but carried {len(data)}")
    return bytes(data), pos


def decode_plp(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    """Read a PLP stream at ``pos``: (data or None for NULL, position after the terminator)."""
    try:
        return _read_plp(buf, pos)
    except (IndexError, struct.error) as e:
        raise ProtocolError(f"truncated PLP stream at byte {pos}: {e}") from None


# --- framing -----------------------------------------------------------------------------

def _info(t: SqlType | TypeInfo) -> TypeInfo:
    return t if isinstance(t, TypeInfo) else type_info_for(t, DEFAULT_COLLATION)


def encode_value(t: SqlType | TypeInfo, value: Any) -> bytes:
    """Encode one value as it follows its TYPE_INFO in ROW, RETURNVALUE or RPC parameters.

    char/nchar/binary values are padded to the column length, as SQL Server sends them.

    >>> encode_value(SqlType.parse("int"), 7).hex()
    '0407000000'
    """
    ti = _info(t)
    ty = ti.type
    if ty == D.SSVARIANT:
        from emulator.tds.variant import encode_variant
        return encode_variant(value)
    if ty == D.NULLTYPE:
        if value is not None:
            raise _err("the NULL type carries no value")
        return b""
    codecs = _RAW.get(ty)
    if codecs is None:
        raise _err(f"cannot encode values of TDS type 0x{ty:02x}")
    if ty in _BYTELEN:
        if value is None:
            return _NULL_BYTE
        raw = codecs[0](ti, value)
        return bytes((len(raw),)) + raw
    if ty in _USHORT:
        if ti.size == PLP_SIZE:
            return encode_plp(None if value is None else codecs[0](ti, value))
        if value is None:
            return _NULL_USHORT
        raw = codecs[0](ti, value)
        if len(raw) > ti.size:
            raise _err(f"{len(raw)} bytes do not fit a column of {ti.size} bytes")
        pad = _PAD.get(ty)
        if pad is not None and len(raw) < ti.size:
            raw += pad * ((ti.size - len(raw)) // len(pad))
        return _U16.pack(len(raw)) + raw
    if ty in _FIXED:
        if value is None:
            raise _err(f"NULL cannot be sent as fixed-length TDS type 0x{ty:02x}")
        return codecs[0](ti, value)
    if ty == D.XML:
        return encode_plp(None if value is None else codecs[0](ti, value))
    # TEXT / NTEXT / IMAGE as parameters: u32 length, NULL 0xFFFFFFFF
    if value is None:
        return _NULL_LONG
    raw = codecs[0](ti, value)
    return _U32.pack(len(raw)) + raw


def encode_column_value(t: SqlType | TypeInfo, value: Any) -> bytes:
    """Like :func:`encode_value`, but TEXT/NTEXT/IMAGE take their ROW form (text pointer)."""
    ti = _info(t)
    if ti.type not in _TEXT_TYPES:
        return encode_value(ti, value)
    if value is None:
        return _NULL_BYTE
    raw = _RAW[ti.type][0](ti, value)
    return _TEXTPTR + _U32.pack(len(raw)) + raw


def _decode_bytelen(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    n = buf[pos]
    pos += 1
    if n == 0:
        return None, pos
    end = pos + n
    if end > len(buf):
        raise ProtocolError("value runs past the end of the data")
    return _RAW[ti.type][1](ti, buf[pos:end]), end


def _decode_intn(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    n = buf[pos]
    if n == 0:
        return None, pos + 1
    end = pos + 1 + n
    if end > len(buf) or n not in (1, 2, 4, 8):
        raise ProtocolError(f"integer value with bad length {n}")
    return int.from_bytes(buf[pos + 1:end], "little", signed=n != 1), end


def _decode_fltn(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    n = buf[pos]
    if n == 8:
        return _F64.unpack_from(buf, pos + 1)[0], pos + 9
    if n == 4:
        return _F32.unpack_from(buf, pos + 1)[0], pos + 5
    if n == 0:
        return None, pos + 1
    raise ProtocolError(f"float value with bad length {n}")


def _decode_ushort(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    if ti.size == PLP_SIZE:
        raw, pos = _read_plp(buf, pos)
        return (None if raw is None else _RAW[ti.type][1](ti, raw)), pos
    (n,) = _U16.unpack_from(buf, pos)
    pos += 2
    if n == 0xFFFF:
        return None, pos
    end = pos + n
    if end > len(buf):
        raise ProtocolError("value runs past the end of the data")
    return _RAW[ti.type][1](ti, buf[pos:end]), end


def _decode_nvarchar(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    if ti.size == PLP_SIZE:
        raw, pos = _read_plp(buf, pos)
        return (None if raw is None else str(raw, "utf-16-le", "surrogatepass")), pos
    (n,) = _U16.unpack_from(buf, pos)
    pos += 2
    if n == 0xFFFF:
        return None, pos
    end = pos + n
    if end > len(buf):
        raise ProtocolError("nvarchar value runs past the end of the data")
    return str(buf[pos:end], "utf-16-le", "surrogatepass"), end


def _decode_fixed(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    end = pos + ti.size
    if end > len(buf):
        raise ProtocolError("fixed-length value runs past the end of the data")
    return _RAW[ti.type][1](ti, buf[pos:end]), end


def _decode_long(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    (n,) = _U32.unpack_from(buf, pos)
    pos += 4
    if n == 0xFFFFFFFF:
        return None, pos
    end = pos + n
    if end > len(buf):
        raise ProtocolError("value runs past the end of the data")
    return _RAW[ti.type][1](ti, buf[pos:end]), end


def _decode_xml(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    raw, pos = _read_plp(buf, pos)
    return (None if raw is None else str(raw, "utf-16-le", "surrogatepass")), pos


def _decode_variant(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    from emulator.tds.variant import read_variant
    return read_variant(buf, pos)


_DECODERS: dict[int, Callable[[TypeInfo, bytes, int], tuple[Any, int]]] = {}
_DECODERS.update({t: _decode_bytelen for t in _BYTELEN})
_DECODERS.update({t: _decode_ushort for t in _USHORT})
_DECODERS.update({t: _decode_fixed for t in _FIXED})
_DECODERS.update({D.INTN: _decode_intn, D.FLTN: _decode_fltn, D.NVARCHAR: _decode_nvarchar,
                  D.NCHAR: _decode_nvarchar, D.TEXT: _decode_long, D.NTEXT: _decode_long,
                  D.IMAGE: _decode_long, D.XML: _decode_xml, D.SSVARIANT: _decode_variant,
                  D.NULLTYPE: lambda ti, buf, pos: (None, pos)})


_NATIVE_TYPES = frozenset({D.INTN, D.BITN, D.FLTN, D.NVARCHAR, D.NCHAR, D.BIGVARBIN,
                           D.BIGBINARY})


def native_framing(ti: TypeInfo) -> tuple[int, Callable[[TypeInfo, bytes], Any]] | bool | None:
    """How the native parameter-array decoder (emulator._tdsfast) reads values of ``ti``:
    None when it decodes them itself; ``(1, decode)`` or ``(2, decode)`` when it frames a
    1- or 2-byte length-prefixed value and calls ``decode(ti, raw)`` (this module's own
    decoder, so the value is the one :func:`read_value` makes); False when it cannot (PLP,
    fixed-length and long types), which makes it leave the run to :func:`read_value`."""
    t = ti.type
    plp = ti.size == PLP_SIZE
    if t in _NATIVE_TYPES and not plp:
        return None
    if t in _BYTELEN and t not in (D.INTN, D.FLTN):
        return (1, _RAW[t][1])
    if t in _USHORT and not plp:
        return (2, _RAW[t][1])
    return False


def read_value(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    """Unchecked :func:`decode_value` for loops that map low-level errors once."""
    dec = _DECODERS.get(ti.type)
    if dec is None:
        raise ProtocolError(f"cannot decode values of TDS type 0x{ti.type:02x}")
    return dec(ti, buf, pos)


def read_column_value(ti: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    """Unchecked :func:`decode_column_value`."""
    if ti.type not in _TEXT_TYPES:
        return read_value(ti, buf, pos)
    ptr_len = buf[pos]
    if ptr_len == 0:
        return None, pos + 1
    return _decode_long(ti, buf, pos + 1 + ptr_len + 8)  # skip text pointer and timestamp


LOW_LEVEL_ERRORS = (IndexError, struct.error, UnicodeDecodeError, ValueError, OverflowError)


def decode_value(info: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    """Decode the value at ``buf[pos]`` described by ``info``; return it and the next position.

    >>> decode_value(TypeInfo(0x26, 4), bytes.fromhex("0407000000"), 0)
    (7, 5)
    """
    try:
        return read_value(info, buf, pos)
    except LOW_LEVEL_ERRORS as e:
        raise ProtocolError(f"malformed value of TDS type 0x{info.type:02x} at byte {pos}: "
                            f"{e}") from None


def decode_column_value(info: TypeInfo, buf: bytes, pos: int) -> tuple[Any, int]:
    """Like :func:`decode_value`, but TEXT/NTEXT/IMAGE take their ROW form (text pointer)."""
    try:
        return read_column_value(info, buf, pos)
    except LOW_LEVEL_ERRORS as e:
        raise ProtocolError(f"malformed value of TDS type 0x{info.type:02x} at byte {pos}: "
                            f"{e}") from None


def raw_codecs(data_type: int) -> tuple[Enc, Dec]:
    """The (encode, decode) pair for a type's bytes without length prefix (for sql_variant)."""
    return _RAW[data_type]
