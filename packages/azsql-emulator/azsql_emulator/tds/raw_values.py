"""Raw value codecs per TDS type: a value's bytes without length prefix or NULL form.

The shared core of :mod:`~azsql_emulator.tds.values` (which adds each type's framing:
length prefixes, PLP, padding, NULL) and :mod:`~azsql_emulator.tds.variant` (which
carries the same bytes inside a sql_variant). Encoders take a non-None value and raise
ValueError for a wrong Python type or an overflow; decoders take the bytes of a non-NULL
value and raise ProtocolError for a bad length.

>>> encode, decode = raw_codecs(D.INT4)
>>> decode(TypeInfo(D.INT4, 4), encode(TypeInfo(D.INT4, 4), -2))
-2
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from azsql_emulator.tds import temporal as tm
from azsql_emulator.tds.collation import collation_codec
from azsql_emulator.tds.constants import DataType as D
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.typeinfo import TypeInfo, decimal_size

__all__ = ["RAW_CODECS", "Dec", "Enc", "raw_codecs"]

_I32 = struct.Struct("<i")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_MONEY = struct.Struct("<iI")
_DEC_CTX = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_UP, Emax=999_999,
                           Emin=-999_999)


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
RAW_CODECS: Mapping[int, tuple[Enc, Dec]] = {
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


def raw_codecs(data_type: int) -> tuple[Enc, Dec]:
    """The (encode, decode) pair for a type's bytes without length prefix; KeyError if none."""
    return RAW_CODECS[data_type]
