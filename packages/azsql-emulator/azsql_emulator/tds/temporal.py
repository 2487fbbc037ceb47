"""Raw (length-less) codecs for the date and time types (2.2.5.5.1.7 - 2.2.5.5.1.8).

Times are carried in ticks of 10**-scale seconds. Python only has microseconds, so a
scale-7 value's 100 ns digit travels beside them: decoding gives a
:class:`PreciseDatetime` / :class:`PreciseTime` (a datetime/time that also holds
``hns``, the digit below its microseconds) and encoding reads that digit back with
:func:`hns_of`. Encoding rounds half-up to the column's scale, as SQL Server converts.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any, overload

from azsql_emulator.tds.packet import ProtocolError

__all__ = [
    "PreciseDatetime",
    "PreciseTime",
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
    "hns_of",
    "precise_text",
    "time_size",
    "with_hns",
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


class _HundredNs:
    """Equality, order and hash that count the 100 ns digit (mixed into the subclasses of
    datetime and time below; the base class compares the rest)."""

    __slots__ = ()
    _base: Any = object  # datetime or time: what compares the rest

    def _cmp(self, other: object) -> Any:
        base = self._base
        if not isinstance(other, base):
            return NotImplemented
        if base.__eq__(self, other):
            a, b = hns_of(self), hns_of(other)
            return (a > b) - (a < b)
        return -1 if base.__lt__(self, other) else 1

    def __eq__(self, other: object) -> Any:
        c = self._cmp(other)
        return c if c is NotImplemented else c == 0

    def __ne__(self, other: object) -> Any:
        c = self._cmp(other)
        return c if c is NotImplemented else c != 0

    def __lt__(self, other: object) -> Any:
        c = self._cmp(other)
        return c if c is NotImplemented else c < 0

    def __le__(self, other: object) -> Any:
        c = self._cmp(other)
        return c if c is NotImplemented else c <= 0

    def __gt__(self, other: object) -> Any:
        c = self._cmp(other)
        return c if c is NotImplemented else c > 0

    def __ge__(self, other: object) -> Any:
        c = self._cmp(other)
        return c if c is NotImplemented else c >= 0

    def __hash__(self) -> int:
        base: int = self._base.__hash__(self)
        hns = hns_of(self)
        return hash((base, hns)) if hns else base

    def __str__(self) -> str:
        return precise_text(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{self._base.__repr__(self)} + {hns_of(self)}00ns"


class PreciseDatetime(_HundredNs, dt.datetime):
    """A datetime that also keeps ``hns``: the 100 ns digit below its microseconds (0-9).

    Python's datetime stops at microseconds while datetime2(7) and datetimeoffset(7)
    count 100 ns. Equality, order and hash count the digit. Arithmetic and ``replace()``
    on this class give an instance without it; read it only through :func:`hns_of`,
    which then gives 0.
    """

    __slots__ = ("hns",)
    hns: int
    _base = dt.datetime


class PreciseTime(_HundredNs, dt.time):
    """A time of day that also keeps ``hns`` (see :class:`PreciseDatetime`)."""

    __slots__ = ("hns",)
    hns: int
    _base = dt.time


def hns_of(value: object) -> int:
    """The 100 ns digit a value carries below its microseconds (0 for plain values).

    :param value: a datetime, time, or anything else.
    """
    return getattr(value, "hns", 0)


@overload
def with_hns(value: dt.datetime, hns: int) -> dt.datetime: ...
@overload
def with_hns(value: dt.time, hns: int) -> dt.time: ...
def with_hns(value: dt.datetime | dt.time, hns: int) -> dt.datetime | dt.time:
    """``value`` (microseconds) plus a 100 ns digit; the plain value when the digit is 0.

    :param value: a datetime or time (its own digit, if any, is replaced).
    :param hns: 0-9.
    """
    if not hns:
        if type(value) is PreciseDatetime:
            return dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                               value.second, value.microsecond, value.tzinfo, fold=value.fold)
        if type(value) is PreciseTime:
            return dt.time(value.hour, value.minute, value.second, value.microsecond,
                           value.tzinfo, fold=value.fold)
        return value
    if not 0 < hns < 10:
        raise ValueError(f"100 ns digit {hns} not in 0..9")
    out: PreciseDatetime | PreciseTime
    if isinstance(value, dt.datetime):
        out = PreciseDatetime(value.year, value.month, value.day, value.hour, value.minute,
                              value.second, value.microsecond, value.tzinfo, fold=value.fold)
    else:
        out = PreciseTime(value.hour, value.minute, value.second, value.microsecond,
                          value.tzinfo, fold=value.fold)
    out.hns = hns
    return out


def precise_text(value: dt.datetime | dt.time) -> str:
    """ISO text with seven fractional digits when the value carries a 100 ns digit
    (``str()`` of a plain datetime otherwise).

    :param value: a datetime or time.
    """
    hns = hns_of(value)
    if isinstance(value, dt.datetime):
        text = dt.datetime.isoformat(value, sep=" ", timespec="microseconds" if hns else "auto")
        head = 26  # 'YYYY-MM-DD HH:MM:SS.ffffff'
    else:
        text = dt.time.isoformat(value, timespec="microseconds" if hns else "auto")
        head = 15  # 'HH:MM:SS.ffffff'
    return f"{text[:head]}{hns}{text[head:]}" if hns else text


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

def _ticks_to_us(ticks: int, scale: int) -> int:
    if scale <= 6:
        return ticks * _POW10[6 - scale]
    return ticks // _POW10[scale - 6]


def _time_us(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _time_ticks(t: dt.time, hns: int, scale: int) -> int:
    """Ticks of 10**-scale s since midnight, rounded half-up from 100 ns units (not
    wrapped: a round-up can reach 24:00)."""
    units = _time_us(t) * 10 + hns
    div = _POW10[7 - scale]
    return (units + div // 2) // div


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
    ticks = _time_ticks(t, hns_of(t), scale) % (86_400 * _POW10[scale])
    return ticks.to_bytes(_SIZES[scale], "little")


def decode_time(raw: bytes, scale: int = 7) -> dt.time:
    """Decode a time (scale 7: a :class:`PreciseTime` when the 100 ns digit is not 0)."""
    ticks = decode_time_ticks(raw, scale)
    if scale == 7:
        us, hns = divmod(ticks, 10)
        return with_hns(_us_time(us), hns)
    return _us_time(_ticks_to_us(ticks, scale))


# --- datetime2 / datetimeoffset -----------------------------------------------------------

def _split(value: dt.datetime, scale: int, hns: int) -> tuple[int, int]:
    """(ordinal day, ticks) of a naive datetime and its 100 ns digit rounded to the scale,
    carrying into the day."""
    ticks = _time_ticks(value.time(), hns, scale)
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
    value = _as_datetime(value)
    day, ticks = _split(value.replace(tzinfo=None), scale, hns_of(value))
    return ticks.to_bytes(_SIZES[scale], "little") + (day - 1).to_bytes(3, "little")


def decode_datetime2(raw: bytes, scale: int = 7) -> dt.datetime:
    """Reverse :func:`encode_datetime2` (naive result; scale 7: a :class:`PreciseDatetime`
    when the 100 ns digit is not 0)."""
    if not 0 <= scale <= 7:
        raise ProtocolError(f"bad datetime2 scale {scale}")
    n = _SIZES[scale]
    if len(raw) != n + 3:
        raise ProtocolError(f"datetime2({scale}) value must be {n + 3} bytes, got {len(raw)}")
    t = decode_time(raw[:n], scale)
    return with_hns(dt.datetime.combine(decode_date(raw[n:]), t), hns_of(t))


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
        utc = with_hns(naive - offset, hns_of(value))
    except OverflowError:
        raise ValueError(f"{value} is out of range in UTC") from None
    day, ticks = _split(utc, scale, hns_of(utc))
    return (ticks.to_bytes(_SIZES[scale], "little") + (day - 1).to_bytes(3, "little")
            + _I16.pack(minutes))


def decode_datetimeoffset(raw: bytes, scale: int = 7) -> dt.datetime:
    """Reverse :func:`encode_datetimeoffset`: an aware datetime in the stored offset."""
    if not 0 <= scale <= 7:
        raise ProtocolError(f"bad datetimeoffset scale {scale}")
    n = _SIZES[scale]
    if len(raw) != n + 5:
        raise ProtocolError(f"datetimeoffset({scale}) value must be {n + 5} bytes, got {len(raw)}")
    t = decode_time(raw[:n], scale)
    utc = dt.datetime.combine(decode_date(raw[n:n + 3]), t)
    (minutes,) = _I16.unpack_from(raw, n + 3)
    if not -840 <= minutes <= 840:
        raise ProtocolError(f"datetimeoffset offset {minutes} minutes is out of range")
    try:
        local = (utc + dt.timedelta(minutes=minutes)).replace(tzinfo=_tz(minutes))
        return with_hns(local, hns_of(t))
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
