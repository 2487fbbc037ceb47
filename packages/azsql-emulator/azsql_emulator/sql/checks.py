"""Value conversion into a column's SQL Server type, with SQL Server's checks and error numbers.

One converter per target column is built once (``make_converter``) and applied to every
value, arrow-odbc style; each converter raises the error SQL Server would raise (515,
2628, 8115, 220, 245, 8114, 241, 8169, 257) and otherwise returns the value in the
form the DuckDB storage expects (see ``typemap``).

Fractional seconds: values carry 100 ns (a 7th digit travels as ``hns`` on
``temporal.PreciseDatetime``/``PreciseTime``) and are rounded half-up to the column's
scale; datetime(7)/time(7)/datetimeoffset are stored as structs with a 100 ns field
(``typemap.DT2_DUCK``; :func:`to_storage`/:func:`from_storage`). datetime is rounded to
SQL Server's 1/300 s ticks and smalldatetime to the minute.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.typemap import INT_RANGES, stores_100ns, utf16_len, utf16_prefix
from azsql_emulator.sqltypes import MAX, SqlKind, SqlType
from azsql_emulator.tds.temporal import hns_of, precise_text, with_hns

Converter = Callable[[object, str | None], object]

_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
_DT_TEXT = re.compile(
    r"^\s*(?:(\d{4})-?(\d{2})-?(\d{2}))?"  # date: 2024-01-31 or 20240131
    r"(?:[ T]?(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"  # time with up to 9 digits
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$", re.IGNORECASE)
DATETIME_MIN = dt.datetime(1753, 1, 1)
_WIDE = Context(prec=100)  # decimal(38,s) needs more than Python's default 28 digits
_MIDNIGHT = dt.time(0)


def source_name(value: object, hint: str | None = None) -> str:
    """The SQL Server type name of a source value, for error messages.

    :param value: the Python value.
    :param hint: the literal's own type name when known (``varchar`` for 'x').
    """
    if hint:
        return hint
    if isinstance(value, bool):
        return "bit"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "bigint"
    if isinstance(value, str):
        return "nvarchar"
    if isinstance(value, Decimal):
        return "numeric"
    if isinstance(value, float):
        return "float"
    if isinstance(value, bytes | bytearray | memoryview):
        return "varbinary"
    if isinstance(value, dt.datetime):
        return "datetimeoffset" if value.tzinfo else "datetime2"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    if isinstance(value, uuid.UUID):
        return "uniqueidentifier"
    return type(value).__name__


def _type_name(t: SqlType) -> str:
    return "numeric" if t.kind is SqlKind.DECIMAL else t.kind.value


def _clash(value: object, hint: str | None, t: SqlType) -> SqlError:
    return SqlError(206, f"Operand type clash: {source_name(value, hint)} is incompatible with "
                         f"{t.kind.value}")


def parse_datetime_text(text: str) -> tuple[dt.datetime, int | None, bool, bool]:
    """Parse SQL Server date/time text.

    :param text: e.g. ``2024-01-31 12:00:00.1234567 +02:00``.
    :returns: (naive local datetime rounded to 100 ns (a 7th digit as ``hns``), offset
        minutes or None, has_date, has_time).
    :raises SqlError: 241 when the text is no date or time.
    """
    m = _DT_TEXT.match(text)
    if not m or (m.group(1) is None and m.group(4) is None):
        raise em.datetime_conversion()
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        base = dt.datetime(int(y or 1900), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0),
                           int(s or 0))
    except ValueError:
        raise em.datetime_conversion() from None
    if frac:
        # digits past the 7th (100 ns) round half-up
        units = int((Decimal("0." + frac) * 10_000_000).quantize(Decimal(1), ROUND_HALF_UP))
        if units == 10_000_000 and (base.hour, base.minute, base.second) == (23, 59, 59):
            # Rounding .99999995+ up would carry into the next day (or past 9999-12-31):
            # a time(7) of 23:59:59.9999999 would read back as 00:00:00. Stay 100 ns short.
            units = 9_999_999
        micros, hns = divmod(units, 10)
        base = with_hns(base + dt.timedelta(microseconds=micros), hns)
    offset = None
    if tz:
        if tz.upper() == "Z":
            offset = 0
        else:
            digits = tz[1:].replace(":", "")
            offset = int(digits[:2]) * 60 + int(digits[2:])
            offset = -offset if tz[0] == "-" else offset
            if abs(offset) > 14 * 60:
                raise em.datetime_conversion()
    return base, offset, m.group(1) is not None, m.group(4) is not None


_SAFE_DAY = dt.date(1900, 1, 1)


def _round_fraction(value: dt.datetime, scale: int) -> dt.datetime:
    """Round half-up to ``scale`` fractional digits, from 100 ns (the result carries
    a 100 ns digit only at scale 7)."""
    hns = hns_of(value)
    if scale >= 7 or (scale == 6 and not hns):
        return value
    quantum = 10 ** (7 - scale)
    units = value.microsecond * 10 + hns
    rounded = (units + quantum // 2) // quantum * quantum
    whole = dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                        value.second, 0, value.tzinfo)
    return whole + dt.timedelta(microseconds=rounded // 10)


def round_datetime(value: dt.datetime) -> dt.datetime:
    """Round to SQL Server datetime's 1/300 s ticks, shown as .000/.003/.007 milliseconds.

    :param value: a naive datetime.
    """
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    micros = (value - midnight) // dt.timedelta(microseconds=1)
    ticks = (micros * 300 + 500_000) // 1_000_000
    millis = (ticks * 10 + 1) // 3
    return midnight + dt.timedelta(milliseconds=millis)


def _to_datetime(value: object, hint: str | None, t: SqlType) -> tuple[dt.datetime, int | None]:
    """A naive local datetime plus the offset in minutes (None when the value has none);
    a 100 ns digit is kept."""
    if isinstance(value, dict):
        value = from_storage(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            off = value.utcoffset()
            naive = with_hns(value.replace(tzinfo=None), hns_of(value))
            return naive, int(off.total_seconds() // 60) if off else 0
        return value, None
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, _MIDNIGHT), None
    if isinstance(value, dt.time):
        day = dt.datetime.combine(dt.date(1900, 1, 1), value.replace(tzinfo=None))
        return with_hns(day, hns_of(value)), None
    if isinstance(value, str):
        base, offset, _, _ = parse_datetime_text(value)
        return base, offset
    raise _clash(value, hint, t)


def _make_temporal(t: SqlType) -> Callable[[object, str | None], object]:
    kind = t.kind
    scale = 7 if t.scale is None else t.scale

    def convert(value: object, hint: str | None) -> object:
        local, offset = _to_datetime(value, hint, t)
        if kind is SqlKind.DATE:
            return local.date()
        if kind is SqlKind.TIME:  # only the time of day counts: round on a safe date
            day = with_hns(dt.datetime.combine(_SAFE_DAY, local.time()), hns_of(local))
            rounded_day = _round_fraction(day, scale)
            return to_storage(t, with_hns(rounded_day.time(), hns_of(rounded_day)))
        if kind is SqlKind.DATETIME:
            if local < DATETIME_MIN:
                raise SqlError(242, f"The conversion of a {source_name(value, hint)} data type "
                                    "to a datetime data type resulted in an out-of-range value.")
            return round_datetime(local)
        if kind is SqlKind.SMALLDATETIME:
            return (local + dt.timedelta(seconds=30)).replace(second=0, microsecond=0) \
                if local.second * 1_000_000 + local.microsecond >= 29_998_000 \
                else local.replace(second=0, microsecond=0)
        try:
            rounded = _round_fraction(local, scale)
        except OverflowError:  # 9999-12-31 23:59:59.9... rounded up past the last day
            raise SqlError(242, f"The conversion of a {source_name(value, hint)} data type to "
                                f"a {kind.value} data type resulted in an out-of-range value."
                           ) from None
        if kind is SqlKind.DATETIME2:
            return to_storage(t, rounded)
        # datetimeoffset: keep the instant (as UTC), its 100 ns digit and the offset
        offset = offset or 0
        return {"dto_utc": with_hns(rounded, 0) - dt.timedelta(minutes=offset),
                "dto_hns": hns_of(rounded), "dto_offset": offset}

    return convert


def to_storage(t: SqlType, value: dt.datetime | dt.time) -> object:
    """A converted datetime2/time value in the form DuckDB stores it: a struct (dict) of
    the microseconds and the 100 ns digit for datetime2(7)/time(7), the value otherwise.

    :param t: the column type.
    :param value: the value rounded to the column's scale.
    """
    if not stores_100ns(t):
        return value
    if t.kind is SqlKind.TIME:
        return {"t7": with_hns(value, 0), "t7_hns": hns_of(value)}
    return {"dt2": with_hns(value, 0), "dt2_hns": hns_of(value)}


def from_storage(value: object) -> object:
    """The Python value of a stored struct (datetime2(7), time(7), datetimeoffset): a
    datetime or time carrying its 100 ns digit; other values unchanged.

    :param value: a DuckDB result value.
    """
    if not isinstance(value, dict):
        return value
    if "dt2" in value:
        base = value["dt2"]
        return None if base is None else with_hns(base, value.get("dt2_hns") or 0)
    if "t7" in value:
        base = value["t7"]
        return None if base is None else with_hns(base, value.get("t7_hns") or 0)
    if "dto_utc" in value:
        return _dto_value(value)
    return value


def _make_integer(t: SqlType) -> Callable[[object, str | None], object]:
    lo, hi = INT_RANGES[t.kind]
    name = t.kind.value
    small = t.kind in (SqlKind.TINYINT, SqlKind.SMALLINT)

    def convert(value: object, hint: str | None) -> object:
        if type(value) is int and lo <= value <= hi:
            return value
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            raise em.overflow_small(name, value) if small else em.overflow(name)
        if isinstance(value, Decimal | float):
            if value != value or value in (float("inf"), float("-inf")):
                raise em.overflow(name)
            whole = int(value)  # SQL Server truncates toward zero
            if not lo <= whole <= hi:
                raise em.overflow(name)
            return whole
        if isinstance(value, str):
            if not _INT_TEXT.match(value):
                raise em.conversion_failed(source_name(value, hint), value, name)
            whole = int(value)
            if not lo <= whole <= hi:
                width = {"tinyint": "INT1", "smallint": "INT2"}.get(name)
                if width:
                    raise SqlError(244, f"The conversion of the {source_name(value, hint)} value "
                                        f"'{value}' overflowed an {width} column. Use a larger "
                                        "integer column.")
                raise SqlError(248, f"The conversion of the {source_name(value, hint)} value "
                                    f"'{value}' overflowed an int column.")
            return whole
        raise _clash(value, hint, t)

    return convert


def _make_decimal(t: SqlType) -> Callable[[object, str | None], object]:
    if t.kind is SqlKind.MONEY:
        precision, scale, name = 19, 4, "money"
    elif t.kind is SqlKind.SMALLMONEY:
        precision, scale, name = 10, 4, "smallmoney"
    else:
        precision, scale, name = t.precision or 18, t.scale or 0, "numeric"
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def convert(value: object, hint: str | None) -> object:
        source = source_name(value, hint)
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise em.convert_error(source, name) from None
            if not number.is_finite():
                raise em.convert_error(source, name)
        elif isinstance(value, Decimal):
            number = value
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise em.overflow(name, source)
            number = Decimal(repr(value))
        else:
            raise _clash(value, hint, t)
        try:
            rounded = number.quantize(quantum, ROUND_HALF_UP, context=_WIDE)
        except InvalidOperation:
            raise em.overflow(name, source) from None
        if rounded.copy_abs() >= limit:  # abs() would round to the 28-digit context
            raise em.overflow(name, "expression" if name != "numeric" else source)
        return rounded

    return convert


def _make_float(t: SqlType) -> Callable[[object, str | None], object]:
    name = t.kind.value

    def convert(value: object, hint: str | None) -> object:
        if type(value) is float:
            return value
        if isinstance(value, int | Decimal):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise em.convert_error(source_name(value, hint), name) from None
        raise _clash(value, hint, t)

    return convert


def _make_bit(t: SqlType) -> Callable[[object, str | None], object]:
    def convert(value: object, hint: str | None) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | Decimal | float):
            return value != 0
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "false"):
                return text == "true"
            try:
                return Decimal(text) != 0
            except InvalidOperation:
                raise em.conversion_failed(source_name(value, hint), value, "bit") from None
        raise _clash(value, hint, t)

    return convert


def _text_of(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, dict):
        value = from_storage(value)
    if isinstance(value, dt.datetime | dt.time) and hns_of(value):
        return precise_text(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def _make_string(t: SqlType, column: str, table: str) -> Callable[[object, str | None], object]:
    limit = None if t.length == MAX else t.length
    unicode = t.kind in (SqlKind.NCHAR, SqlKind.NVARCHAR)
    padded = t.kind in (SqlKind.CHAR, SqlKind.NCHAR)
    measure = utf16_len if unicode else len

    def convert(value: object, hint: str | None) -> object:
        text = value if type(value) is str else _text_of(value)
        if limit is not None:
            size = measure(text)
            if size > limit:
                # trailing blanks beyond the length are dropped silently (ANSI_PADDING)
                stripped = text.rstrip(" ")
                if measure(stripped) > limit:
                    prefix = utf16_prefix(text, limit) if unicode else text[:limit]
                    raise em.truncation(table, column, prefix)
                text = stripped
                size = measure(text)
            if padded and size < limit:
                text += " " * (limit - size)
        return text

    return convert


def _make_binary(t: SqlType, column: str, table: str) -> Callable[[object, str | None], object]:
    limit = None if t.length == MAX else t.length
    padded = t.kind is SqlKind.BINARY

    def convert(value: object, hint: str | None) -> object:
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        elif isinstance(value, uuid.UUID):
            data = value.bytes_le
        else:
            raise em.implicit_conversion(source_name(value, hint), t.kind.value)
        if limit is not None:
            if len(data) > limit:
                raise em.truncation(table, column, "0x" + data[:limit].hex().upper())
            if padded and len(data) < limit:
                data += b"\x00" * (limit - len(data))
        return data

    return convert


def _make_uuid(t: SqlType) -> Callable[[object, str | None], object]:
    def convert(value: object, hint: str | None) -> object:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value.strip().strip("{}")))
            except ValueError:
                raise em.uuid_conversion() from None
        if isinstance(value, bytes) and len(value) == 16:
            return str(uuid.UUID(bytes_le=value))
        raise _clash(value, hint, t)

    return convert


def make_converter(t: SqlType, column: str, table: str, nullable: bool = True,
                   operation: str = "INSERT") -> Converter:
    """Build the function that checks and converts values for one column.

    >>> conv = make_converter(SqlType.parse("varchar(3)"), "c", "appdb.dbo.t")
    >>> conv("ab", "varchar")
    'ab'

    :param t: the column's declared type.
    :param column: column name, for messages.
    :param table: ``db.schema.table``, for messages.
    :param nullable: False makes NULL raise 515.
    :param operation: ``INSERT`` or ``UPDATE``, for 515's wording.
    """
    kind = t.kind
    if kind in INT_RANGES:
        inner = _make_integer(t)
    elif kind in (SqlKind.DECIMAL, SqlKind.NUMERIC, SqlKind.MONEY, SqlKind.SMALLMONEY):
        inner = _make_decimal(t)
    elif kind in (SqlKind.REAL, SqlKind.FLOAT):
        inner = _make_float(t)
    elif kind is SqlKind.BIT:
        inner = _make_bit(t)
    elif kind in (SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR):
        inner = _make_string(t, column, table)
    elif kind in (SqlKind.BINARY, SqlKind.VARBINARY):
        inner = _make_binary(t, column, table)
    elif kind is SqlKind.UNIQUEIDENTIFIER:
        inner = _make_uuid(t)
    else:
        inner = _make_temporal(t)

    def convert(value: object, hint: str | None = None) -> object:
        if value is None:
            if not nullable:
                raise em.null_not_allowed(column, table, operation)
            return None
        return inner(value, hint)

    return convert


def _dto_value(value: object) -> dt.datetime | None:
    if isinstance(value, dict):
        utc, offset = value.get("dto_utc"), value.get("dto_offset") or 0
        if utc is None:
            return None
        zone = dt.timezone(dt.timedelta(minutes=offset))
        local = (utc + dt.timedelta(minutes=offset)).replace(tzinfo=zone)
        return with_hns(local, value.get("dto_hns") or 0)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value  # type: ignore[return-value]


def make_reader(t: SqlType) -> Callable[[object], object] | None:
    """Build the function that turns a DuckDB result value into the column's Python value.

    :param t: the result column's SQL Server type.
    :returns: None when DuckDB's value is already right.
    """
    kind = t.kind
    if kind is SqlKind.DATETIMEOFFSET:
        return _dto_value
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]

        def read_int(value: object) -> object:
            if value is None:
                return None
            whole = int(value)  # type: ignore[call-overload]
            if not lo <= whole <= hi:
                raise em.overflow(kind.value)
            return whole

        return read_int
    if kind in (SqlKind.DECIMAL, SqlKind.NUMERIC, SqlKind.MONEY, SqlKind.SMALLMONEY):
        conv = _make_decimal(t)
        return lambda v: None if v is None else conv(v, "numeric")
    if kind in (SqlKind.REAL, SqlKind.FLOAT):
        return lambda v: None if v is None else float(v)  # type: ignore[arg-type]
    if kind is SqlKind.BIT:
        return lambda v: None if v is None else bool(v)
    if kind in (SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR):
        return lambda v: v if v is None or isinstance(v, str) else _text_of(v)
    if kind is SqlKind.UNIQUEIDENTIFIER:
        return lambda v: uuid.UUID(v) if isinstance(v, str) else v
    if kind is SqlKind.DATE:
        return lambda v: v.date() if isinstance(v, dt.datetime) else v
    if kind in (SqlKind.DATETIME2, SqlKind.TIME) and stores_100ns(t):
        return _read_precise
    if kind in (SqlKind.DATETIME, SqlKind.DATETIME2, SqlKind.SMALLDATETIME):
        return lambda v: v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v
    return None


def _read_precise(value: object) -> object:
    value = from_storage(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return with_hns(value.replace(tzinfo=None), hns_of(value))
    return value
