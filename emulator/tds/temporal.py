"""Raw (length-less) codecs for the date and time types (2.2.5.5.1.7 - 2.2.5.5.1.8).

Times are carried in ticks of 10**-scale seconds. Python only has microseconds, so
encoding rounds half-up to the column's scale (as SQL Server converts), and decoding
scale 7 truncates the 100 ns digit; :func:`decode_time_ticks` / :func:`encode_time_ticks`
give the exact ticks.
"""

from __future__ import annotations

import datetime as dt
import struct

from emulator.tds.packet import ProtocolError

__all__ = [
    "decode_date",
    "decode_datetime",
    "decode_datetime2",
    "decode_datetimeoffset",
    "decode_smalldatetime",
    "decode_time",
    "decode_time_ticks",
    "encode_date",
    "encode_datetime",
    "encode_datetime2",
    "encode_datetimeoffset",
    "encode_smalldatetime",
    "encode_time",
    "encode_time_ticks",
    "time_size",
]

_DAY_US = 86_400_000_000
_DATETIME = struct.Struct("<iI")
_SMALLDATETIME = struct.Struct("<HH")
_I16 = struct.Struct("<h")
_EPOCH_1900 = dt.date(1900, 1, 1).toordinal()
_DATETIME_MIN = dt.datetime(1753, 1, 1)
_TICKS_PER_DAY_300 = 300 * 86_400
_MAX_ORDINAL = dt.date.max.toordinal()
_TZ_CACHE: dict[int, dt.timezone] = {}
_SIZES = (3, 3, 3, 4, 4, 5, 5, 5)
_POW10 = tuple(10 ** i for i in range(8))


def time_size(scale: int) -> int:
    """Bytes of a time value at this fractional-second scale (0-7)."""
    return _SIZES[scale]


def _check_scale(scale: int) -> None:
    if not 0 <= scale <= 7:
        raise ValueError(f"fractional-second scale {scale} not in 0..7")


# --- date ---------------------------------------------------------------------------------

def encode_date(d: dt.date) -> bytes:
    """3-byte day count since 0001-01-01."""
    if isinstance(d, dt.datetime):
        d = d.date()
    return (d.toordinal() - 1).to_bytes(3, "little")


def decode_date(raw: bytes) -> dt.date:
    """Reverse :func:`encode_date`."""
    if len(raw) != 3:
        raise ProtocolError(f"date value must be 3 bytes, got {len(raw)}")
    days = int.from_bytes(raw, "little")
    if days >= _MAX_ORDINAL:
        raise ProtocolError(f"date value {days} days is past 9999-12-31")
    return dt.date.fromordinal(days + 1)


# --- time ---------------------------------------------------------------------------------

def _us_to_ticks(us: int, scale: int) -> int:
    if scale >= 6:
        return us * _POW10[scale - 6]
    div = _POW10[6 - scale]
    return (us + div // 2) // div


def _ticks_to_us(ticks: int, scale: int) -> int:
    if scale <= 6:
        return ticks * _POW10[6 - scale]
    return ticks // _POW10[scale - 6]


def _time_us(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _us_time(us: int) -> dt.time:
    s, us = divmod(us, 1_000_000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return dt.time(h, m, s, us)


def encode_time_ticks(ticks: int, scale: int) -> bytes:
    """Encode raw ticks (units of 10**-scale s since midnight)."""
    _check_scale(scale)
    if not 0 <= ticks < 86_400 * _POW10[scale]:
        raise ValueError(f"time ticks {ticks} out of range for scale {scale}")
    return ticks.to_bytes(_SIZES[scale], "little")


def decode_time_ticks(raw: bytes, scale: int) -> int:
    """The exact ticks (units of 10**-scale s since midnight) of a raw time value."""
    if not 0 <= scale <= 7 or len(raw) != _SIZES[scale]:
        raise ProtocolError(f"time({scale}) value has a bad length {len(raw)}")
    ticks = int.from_bytes(raw, "little")
    if ticks >= 86_400 * _POW10[scale]:
        raise ProtocolError(f"time value {ticks} ticks is past midnight at scale {scale}")
    return ticks


def encode_time(t: dt.time, scale: int = 7) -> bytes:
    """Encode a time, rounding half-up to the scale (a round-up to 24:00 wraps to 00:00)."""
    _check_scale(scale)
    ticks = _us_to_ticks(_time_us(t), scale) % (86_400 * _POW10[scale])
    return ticks.to_bytes(_SIZES[scale], "little")


def decode_time(raw: bytes, scale: int = 7) -> dt.time:
    """Decode a time; scale 7 loses its 100 ns digit (truncated)."""
    return _us_time(_ticks_to_us(decode_time_ticks(raw, scale), scale))


# --- datetime2 / datetimeoffset -----------------------------------------------------------

def _split(value: dt.datetime, scale: int) -> tuple[int, int]:
    """(ordinal day, ticks) of a naive datetime rounded to the scale, carrying into the day."""
    ticks = _us_to_ticks(_time_us(value.time()), scale)
    day = value.toordinal()
    if ticks >= 86_400 * _POW10[scale]:
        ticks -= 86_400 * _POW10[scale]
        day += 1
        if day > _MAX_ORDINAL:
            raise ValueError(f"{value} rounds past 9999-12-31")
    return day, ticks


def _as_datetime(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise ValueError(f"expected datetime.datetime, got {type(value).__name__}")


def encode_datetime2(value: dt.datetime, scale: int = 7) -> bytes:
    """Encode a naive datetime (an aware one keeps its local wall time) as time + date."""
    _check_scale(scale)
    day, ticks = _split(_as_datetime(value).replace(tzinfo=None), scale)
    return ticks.to_bytes(_SIZES[scale], "little") + (day - 1).to_bytes(3, "little")


def decode_datetime2(raw: bytes, scale: int = 7) -> dt.datetime:
    """Reverse :func:`encode_datetime2` (naive result)."""
    if not 0 <= scale <= 7:
        raise ProtocolError(f"bad datetime2 scale {scale}")
    n = _SIZES[scale]
    if len(raw) != n + 3:
        raise ProtocolError(f"datetime2({scale}) value must be {n + 3} bytes, got {len(raw)}")
    t = decode_time(raw[:n], scale)
    return dt.datetime.combine(decode_date(raw[n:]), t)


def _tz(minutes: int) -> dt.timezone:
    tz = _TZ_CACHE.get(minutes)
    if tz is None:
        tz = dt.UTC if minutes == 0 else dt.timezone(dt.timedelta(minutes=minutes))
        _TZ_CACHE[minutes] = tz
    return tz


def encode_datetimeoffset(value: dt.datetime, scale: int = 7) -> bytes:
    """Encode an aware datetime as UTC time + UTC date + offset minutes (naive means UTC)."""
    _check_scale(scale)
    value = _as_datetime(value)
    offset = value.utcoffset() or dt.timedelta(0)
    minutes, rest = divmod(offset, dt.timedelta(minutes=1))
    if rest or not -840 <= minutes <= 840:
        raise ValueError(f"UTC offset {offset} is not whole minutes within +-14:00")
    naive = value.replace(tzinfo=None)
    try:
        utc = naive - offset
    except OverflowError:
        raise ValueError(f"{value} is out of range in UTC") from None
    day, ticks = _split(utc, scale)
    return (ticks.to_bytes(_SIZES[scale], "little") + (day - 1).to_bytes(3, "little")
            + _I16.pack(minutes))


def decode_datetimeoffset(raw: bytes, scale: int = 7) -> dt.datetime:
    """Reverse :func:`encode_datetimeoffset`: an aware datetime in the stored offset."""
    if not 0 <= scale <= 7:
        raise ProtocolError(f"bad datetimeoffset scale {scale}")
    n = _SIZES[scale]
    if len(raw) != n + 5:
        raise ProtocolError(f"datetimeoffset({scale}) value must be {n + 5} bytes, got {len(raw)}")
    utc = dt.datetime.combine(decode_date(raw[n:n + 3]), decode_time(raw[:n], scale))
    (minutes,) = _I16.unpack_from(raw, n + 3)
    if not -840 <= minutes <= 840:
        raise ProtocolError(f"datetimeoffset offset {minutes} minutes is out of range")
    try:
        return (utc + dt.timedelta(minutes=minutes)).replace(tzinfo=_tz(minutes))
    except OverflowError:
        raise ProtocolError("datetimeoffset not representable in Python") from None


# --- datetime / smalldatetime -------------------------------------------------------------

def _datetime_ticks(value: dt.datetime) -> tuple[int, int]:
    """(days since 1900-01-01, 1/300 s ticks) rounded half-up as SQL Server converts."""
    ticks = (_time_us(value.time()) * 3 + 5_000) // 10_000
    days = value.toordinal() - _EPOCH_1900
    if ticks >= _TICKS_PER_DAY_300:
        ticks -= _TICKS_PER_DAY_300
        days += 1
    return days, ticks


def encode_datetime(value: dt.datetime) -> bytes:
    """Encode a datetime as days since 1900 (i32) and 1/300 s ticks (u32)."""
    value = _as_datetime(value).replace(tzinfo=None)
    if value < _DATETIME_MIN:
        raise ValueError(f"{value} is before datetime's minimum 1753-01-01")
    days, ticks = _datetime_ticks(value)
    if days + _EPOCH_1900 > _MAX_ORDINAL:
        raise ValueError(f"{value} rounds past 9999-12-31")
    return _DATETIME.pack(days, ticks)


def decode_datetime(raw: bytes) -> dt.datetime:
    """Reverse :func:`encode_datetime` (ticks rounded to the nearest microsecond)."""
    if len(raw) != 8:
        raise ProtocolError(f"datetime value must be 8 bytes, got {len(raw)}")
    days, ticks = _DATETIME.unpack(raw)
    ordinal = days + _EPOCH_1900
    if ticks >= _TICKS_PER_DAY_300 or not 1 <= ordinal <= _MAX_ORDINAL:
        raise ProtocolError(f"datetime value out of range (days {days}, ticks {ticks})")
    us = (ticks * 20_000 + 3) // 6  # ticks * 10_000 / 3, rounded half-up
    return dt.datetime.fromordinal(ordinal) + dt.timedelta(microseconds=us)


def encode_smalldatetime(value: dt.datetime) -> bytes:
    """Encode as days since 1900 (u16) and minutes (u16), rounding like SQL Server does."""
    value = _as_datetime(value).replace(tzinfo=None)
    days, ticks = _datetime_ticks(value)
    minutes = (ticks + 9_000) // 18_000  # 29.998 s rounds down, 29.999 s up
    if minutes >= 1440:
        minutes -= 1440
        days += 1
    if not 0 <= days <= 0xFFFF:  # day 65535 is 2079-06-06
        raise ValueError(f"{value} is outside smalldatetime's range 1900-01-01..2079-06-06")
    return _SMALLDATETIME.pack(days, minutes)


def decode_smalldatetime(raw: bytes) -> dt.datetime:
    """Reverse :func:`encode_smalldatetime`."""
    if len(raw) != 4:
        raise ProtocolError(f"smalldatetime value must be 4 bytes, got {len(raw)}")
    days, minutes = _SMALLDATETIME.unpack(raw)
    if minutes >= 1440:
        raise ProtocolError(f"smalldatetime minutes {minutes} past midnight")
    return dt.datetime.fromordinal(days + _EPOCH_1900) + dt.timedelta(minutes=minutes)
