"""Value codecs per TDS type (2.2.5.5): Python values <-> the bytes after TYPE_INFO.

NULL takes each type's own form: a zero length byte (INTN, FLTN, DATEN...), 0xFFFF
(non-PLP var types), PLP NULL (0xFFFFFFFFFFFFFFFF), 0xFFFFFFFF (TEXT/IMAGE parameters).
Encoding problems (wrong Python type, overflow, too long) raise ValueError; malformed
bytes raise ProtocolError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from azsql_emulator.sqltypes import SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import DataType as D
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.raw_values import RAW_CODECS as _RAW
from azsql_emulator.tds.typeinfo import PLP_SIZE, TypeInfo, type_info_for
from azsql_emulator.tds.variant import encode_variant, read_variant

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
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_NULL_BYTE = b"\x00"
_NULL_USHORT = b"\xff\xff"
_NULL_PLP = _U64.pack(PLP_NULL)
_NULL_LONG = b"\xff\xff\xff\xff"
_TEXT_TYPES = frozenset({D.TEXT, D.NTEXT, D.IMAGE})
_TEXTPTR = b"\x10" + b"\x00" * 16 + b"\x00" * 8  # dummy text pointer and timestamp in rows
_PAD: dict[int, bytes] = {D.BIGCHAR: b" ", D.NCHAR: " ".encode("utf-16-le"), D.BIGBINARY: b"\x00"}
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
        return encode_variant(value)
    if ty == D.NULLTYPE:
        if value is not None:
            raise ValueError("the NULL type carries no value")
        return b""
    codecs = _RAW.get(ty)
    if codecs is None:
        raise ValueError(f"cannot encode values of TDS type 0x{ty:02x}")
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
            raise ValueError(f"{len(raw)} bytes do not fit a column of {ti.size} bytes")
        pad = _PAD.get(ty)
        if pad is not None and len(raw) < ti.size:
            raw += pad * ((ti.size - len(raw)) // len(pad))
        return _U16.pack(len(raw)) + raw
    if ty in _FIXED:
        if value is None:
            raise ValueError(f"NULL cannot be sent as fixed-length TDS type 0x{ty:02x}")
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
    """How the native parameter-array decoder (azsql_emulator._tdsfast) reads values of ``ti``:
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
