"""A parameter array's INSERT decided column by column, without a Python object per value.

The row-wise path (``dml.write_insert``) converts every value with ``checks``' converters.
Here each target column gets one Arrow array straight from the wire buffers
(:class:`~azsql_emulator.tds.columns.WireColumn`), and SQL Server's checks run over the whole
column (NULL into NOT NULL, lengths, integer ranges, decimal rounding and overflow). The
result must be exactly what the converters would produce, so this path only *accepts*:
whenever a column has a value it cannot decide here, a wire/target type pair it does not
take, a key value that repeats, or the table needs more than conversion (defaults,
identity), it returns None and the caller runs the rows one by one, where the right error
reaches the right call.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from azsql_emulator.sql.catalog import ColumnMeta, TableMeta, quote
from azsql_emulator.sql.typemap import INT_RANGES, arrow_type, stores_100ns, struct_stored
from azsql_emulator.sql.writes import Registered, unique_keys
from azsql_emulator.sqltypes import MAX, SqlKind, SqlType
from azsql_emulator.tds.columns import TEXT_TYPES, WireColumn
from azsql_emulator.tds.constants import DataType as D

try:  # the native helpers (native/tdsfast); optional like the decoder itself
    from azsql_emulator import _tdsfast as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a source tree without the built extension
    _native = None

__all__ = ["column_table", "last_fallback"]

_DECIMALS = (SqlKind.DECIMAL, SqlKind.NUMERIC)
_DAY_HNS = 864_000_000_000  # 100 ns units in a day
_MAX_DATETIME_HNS = 2_534_023_007_999_999_999  # 9999-12-31 23:59:59.9999999 since 1970


_last = threading.local()


def last_fallback() -> str:
    """Why the last :func:`column_table` call of this thread returned None ('' when it
    did not): a short reason that names the column and the wire/target types, the key of
    ``/metrics`` ``fallbacks``."""
    return str(getattr(_last, "reason", ""))


def column_table(con: duckdb.DuckDBPyConnection, table: TableMeta,
                 given: Sequence[ColumnMeta], sources: Sequence[tuple], names: Sequence[str],
                 columns: Sequence[WireColumn], rows: int) -> pa.Table | None:
    """The rows to append, in table column order (``c0``, ``c1``...), or None (the reason
    is then :func:`last_fallback`).

    :param con: the session's connection (to look for keys already stored).
    :param table: the INSERT's target.
    :param given: the columns the INSERT names, in VALUES order.
    :param sources: per given column, where its value comes from (``session_state``'s plan).
    :param names: the prepared statement's parameter names, in order.
    :param columns: the run's parameters after the handle.
    :param rows: how many calls.
    """
    _last.reason = ""
    result = _column_table(con, table, given, sources, names, columns, rows)
    if isinstance(result, str):
        _last.reason = result
        return None
    return result


def _column_table(con: duckdb.DuckDBPyConnection, table: TableMeta,
                  given: Sequence[ColumnMeta], sources: Sequence[tuple], names: Sequence[str],
                  columns: Sequence[WireColumn], rows: int) -> pa.Table | str:
    if _native is None:
        return "native decoder not built"
    if len(columns) > len(names):
        return "more parameters than the statement declares"
    arrays: dict[str, pa.Array] = {}
    for col, source in zip(given, sources, strict=True):
        if col.identity:
            return "identity column given"
        kind = source[0]
        if kind not in ("param", "text", "hex"):
            return f"column {col.name}: a {kind} value in VALUES"
        parts = [source[1]] if kind == "param" else list(source[1])
        indexes = [names.index(n) for n in parts]
        if any(i >= len(columns) for i in indexes):
            return "fewer parameters sent than the statement uses"
        wires = [columns[i] for i in indexes]
        if kind != "param" and any(w.info.type not in TEXT_TYPES for w in wires):
            return f"column {col.name}: a text cast of a non-text parameter"
        wire = wires[0] if len(wires) == 1 else _joined(wires, rows)
        if kind == "text" and source[2] is not None and wire.max_units > source[2]:
            return f"column {col.name}: text longer than its CAST"
        converted = _from_hex(col, wire, rows) if kind == "hex" else _convert(col, wire, rows)
        if isinstance(converted, str):
            return f"column {col.name}: {converted}"
        arrays[col.name.lower()] = converted
    out = []
    for col in table.columns:
        array = arrays.get(col.name.lower())
        if array is None:  # not given: NULL, unless the row-wise path has more to do
            if col.identity or col.default_sql or not col.nullable:
                return f"column {col.name}: not given and has a default, identity or NOT NULL"
            array = pa.nulls(rows, arrow_type(col.type))
        out.append(array)
    if not _keys_are_new(con, table, out, rows):
        return "a key value repeats or exists (or a key type compared row-wise)"
    return pa.table(out, names=[f"c{i}" for i in range(len(out))])


def _joined(wires: Sequence[WireColumn], rows: int) -> WireColumn:
    """Text sent in pieces (``CAST(@P1 AS nvarchar(max)) + CAST(@P2 ...)``) as one column:
    NULL when any piece is NULL, as ``+`` gives."""
    joined = pc.binary_join_element_wise(*[w.array(rows) for w in wires], "")
    validity, offsets, values = joined.buffers()
    if joined.null_count:
        assert validity is not None
        valid = validity.to_pybytes()
    else:
        valid = b"\xff" * ((rows + 7) // 8)
    return dataclasses.replace(
        wires[0], values=values.to_pybytes() if values is not None else b"", validity=valid,
        nulls=joined.null_count, offsets=offsets.to_pybytes(), units=None,
        max_units=sum(w.max_units for w in wires))


_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _from_hex(col: ColumnMeta, wire: WireColumn, rows: int) -> pa.Array | str:
    """``CONVERT(varbinary(max), CAST(@P AS varchar(max)), 2)`` over a column of hex text."""
    t = col.type
    if t.kind is not SqlKind.VARBINARY:
        return f"hex text into {t.kind.value}"
    if wire.nulls and not col.nullable:
        return "NULL into NOT NULL"
    assert wire.offsets is not None
    offsets = np.frombuffer(wire.offsets, dtype=np.int32, count=rows + 1)
    data = np.frombuffer(wire.values, dtype=np.uint8, count=int(offsets[-1]))
    if rows and (np.any(np.diff(offsets) % 2) or (len(data) and int(offsets[0]) % 2)):
        return "hex text of odd length"
    digits = _HEX[data]
    if len(digits) and int(digits.min()) < 0:
        return "not hex digits"
    decoded = ((digits[0::2] << 4) | digits[1::2]).astype(np.uint8)
    half = (offsets // 2).astype(np.int32)
    longest = int(np.diff(half).max()) if rows else 0
    if t.length != MAX and longest > (t.length or 0):
        return "bytes longer than the column"
    validity = pa.py_buffer(wire.validity) if wire.nulls else None
    arr = pa.Array.from_buffers(pa.binary(), rows, [validity, pa.py_buffer(half.tobytes()),
                                                    pa.py_buffer(decoded.tobytes())], wire.nulls)
    return arr.cast(arrow_type(t))


# Key columns compared here exactly as the row-wise path compares them (find_duplicates:
# Python equality in the run, DuckDB's IS NOT DISTINCT FROM against stored rows). Floats
# (-0.0 and 0.0 hash apart in Arrow), uniqueidentifier and the struct-stored types
# (datetime2(7), time(7), datetimeoffset: Arrow cannot group by a struct) are left to it.
_KEY_KINDS_LEFT_ROW_WISE = frozenset({SqlKind.FLOAT, SqlKind.REAL, SqlKind.UNIQUEIDENTIFIER})


def _keys_are_new(con: duckdb.DuckDBPyConnection, table: TableMeta, arrays: list[pa.Array],
                  rows: int) -> bool:
    """True when no PRIMARY KEY/UNIQUE key repeats within the run or a stored row (a run
    with a duplicate goes row by row, where the right calls get 2627/2601)."""
    positions = {c.name.lower(): i for i, c in enumerate(table.columns)}
    for key in unique_keys(table):
        idx = [positions[c.lower()] for c in key.columns]
        if any(table.columns[i].type.kind in _KEY_KINDS_LEFT_ROW_WISE
               or struct_stored(table.columns[i].type) for i in idx):
            return False
        keys = pa.table([arrays[i] for i in idx], names=[f"k{j}" for j in range(len(idx))])
        if keys.group_by(keys.column_names).aggregate([]).num_rows != rows:
            return False  # NULLs group together, as None == None in the row-wise check
        cond = " AND ".join(f"t.{quote(table.columns[i].name)} IS NOT DISTINCT FROM n.k{j}"
                            for j, i in enumerate(idx))
        with Registered(con, keys) as reg:
            if con.execute(f"SELECT 1 FROM {reg} n JOIN {table.duck_name} t ON {cond} "  # noqa: S608
                           "LIMIT 1").fetchall():
                return False
    return True


def _convert(col: ColumnMeta, wire: WireColumn, rows: int) -> pa.Array | str:
    """The column's values converted as ``checks``' converter would, or why not here."""
    if wire.nulls and not col.nullable:
        return "NULL into NOT NULL"  # 515 for some call
    converted = _convert_wire(col.type, wire, rows)
    if converted is None:
        try:
            wire_name = D(wire.info.type).name
        except ValueError:
            wire_name = f"type 0x{wire.info.type:02x}"
        return f"{wire_name} values into {col.type.kind.value} not decided column-wise"
    return converted


def _convert_wire(t: SqlType, wire: WireColumn, rows: int) -> pa.Array | None:
    w = wire.info.type
    kind = t.kind
    if w in TEXT_TYPES:
        return _from_text(t, wire, rows)
    if w == D.GUID:  # bulk-load rows: the canonical text, cast to UUID on append
        return wire.array(rows) if kind is SqlKind.UNIQUEIDENTIFIER else None
    if w == D.BIGVARBIN:  # bulk-load rows; too long: the row-wise path reports 2628
        fits = t.length == MAX or wire.max_units <= (t.length or 0)
        return wire.array(rows) if kind is SqlKind.VARBINARY and fits else None
    if w == D.INTN:
        # numpy rather than pyarrow.compute: no kernel dispatch per call; NULLs hold 0,
        # which every integer range contains
        values = np.frombuffer(wire.values, dtype=np.int64, count=rows)
        if kind in INT_RANGES:
            lo, hi = INT_RANGES[kind]
            if rows and not (lo <= int(values.min()) and int(values.max()) <= hi):
                return None
            return _fixed(arrow_type(t), values.astype(_NUMPY_INT[kind], copy=False), wire,
                          rows)
        if kind is SqlKind.FLOAT:  # float(int): round to nearest, as the C conversion does
            return _fixed(pa.float64(), values.astype(np.float64), wire, rows)
        if kind in _DECIMALS:
            precision, scale = t.precision or 18, t.scale or 0
            wide = np.empty((rows, 2), dtype=np.int64)  # 128-bit two's complement
            wide[:, 0], wide[:, 1] = values, values >> 63
            data = _native.rescale_decimals(wide.tobytes(), wire.validity, 0, precision, scale)
            return _decimal_array(data, wire, rows, precision, scale)
        return None
    if w == D.BITN:
        if kind is not SqlKind.BIT:
            return None
        bits = np.packbits(np.frombuffer(wire.values, dtype=np.bool_, count=rows),
                           bitorder="little")
        return _fixed(pa.bool_(), bits, wire, rows)
    if w == D.DATETIME2N:
        return _temporal(wire, rows, t, pa.timestamp("us"), wrap=False) \
            if kind is SqlKind.DATETIME2 else None
    if w == D.TIMEN:
        return _temporal(wire, rows, t, pa.time64("us"), wrap=True) \
            if kind is SqlKind.TIME else None
    if w == D.DATETIMEOFFSETN:  # bulk-load rows
        if kind is not SqlKind.DATETIMEOFFSET:
            return None
        dto: Any = np.frombuffer(wire.values, dtype=_DTO_WIRE, count=rows)
        return _offset_struct(dto["hns"], dto["offset"], wire, rows, t,
                              wire.info.scale)
    arr = wire.array(rows)
    if w == D.FLTN:
        if kind is SqlKind.FLOAT:
            return arr
        if kind is SqlKind.REAL:  # float -> real: to nearest; beyond real's range: row-wise
            doubles = np.frombuffer(wire.values, dtype=np.float64, count=rows)
            if rows and float(np.abs(doubles).max()) > _REAL_MAX:
                return None
            return _fixed(pa.float32(), doubles.astype(np.float32), wire, rows)
        return None
    if w in (D.DECIMALN, D.NUMERICN):
        if kind not in _DECIMALS:
            return None
        precision, scale = t.precision or 18, t.scale or 0
        data = _native.rescale_decimals(wire.values, wire.validity, wire.info.scale,
                                        precision, scale)
        return _decimal_array(data, wire, rows, precision, scale)
    if w == D.DATEN:
        return arr if kind is SqlKind.DATE else None
    return None


_NUMPY_INT = {SqlKind.TINYINT: np.uint8, SqlKind.SMALLINT: np.int16, SqlKind.INT: np.int32,
              SqlKind.BIGINT: np.int64}


def _fixed(arrow: pa.DataType, values: np.ndarray, wire: WireColumn, rows: int) -> pa.Array:
    validity = pa.py_buffer(wire.validity) if wire.nulls else None
    return pa.Array.from_buffers(arrow, rows, [validity, pa.py_buffer(values)], wire.nulls)


def _within(arr: pa.Array, lo: int, hi: int) -> bool:
    if arr.null_count == len(arr):
        return True
    bounds = pc.min_max(arr)
    return bool(lo <= bounds["min"].as_py() and bounds["max"].as_py() <= hi)


def _from_text(t: SqlType, wire: WireColumn, rows: int) -> pa.Array | None:
    kind = t.kind
    if kind is SqlKind.NVARCHAR:
        if t.length != MAX and wire.max_units > (t.length or 0):
            return None  # too long (or trailing blanks to drop): the converter decides
        return wire.array(rows)
    if kind is SqlKind.VARCHAR:
        arr = wire.array(rows)
        if t.length != MAX and wire.max_units > (t.length or 0) \
                and not _within(pc.utf8_length(arr), 0, t.length or 0):
            return None
        return arr
    if kind in _DECIMALS:
        precision, scale = t.precision or 18, t.scale or 0
        assert wire.offsets is not None
        data = _native.text_decimals(wire.offsets, wire.values, wire.validity, precision, scale)
        return _decimal_array(data, wire, rows, precision, scale)
    if kind is SqlKind.UNIQUEIDENTIFIER:
        arr = wire.array(rows)
        if not _all_match(arr, _UUID_TEXT):
            return None  # braces, other forms, bad text: the converter decides
        return pc.utf8_lower(arr)  # str(uuid.UUID(text)), as the converter stores it
    if kind in _TEXT_TEMPORALS:
        return _temporal_text(t, wire, rows)
    return None


_REAL_MAX = float(np.finfo(np.float32).max)
_UUID_TEXT = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# The text forms azsql-bulk sends (engine/bind_casts.py): 'YYYY-MM-DD', 'hh:mm:ss[.f]',
# 'YYYY-MM-DD hh:mm:ss[.f]' and that with ' +hh:mm'; any other form goes row-wise.
_DATE_RE, _TIME_RE = "[0-9]{4}-[0-9]{2}-[0-9]{2}", "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,7})?"
_TEXT_TEMPORALS = {
    SqlKind.DATE: f"^{_DATE_RE}$",
    SqlKind.TIME: f"^{_TIME_RE}$",
    SqlKind.DATETIME2: f"^{_DATE_RE} {_TIME_RE}$",
    SqlKind.DATETIMEOFFSET: f"^{_DATE_RE} {_TIME_RE} [+-][0-9]{{2}}:[0-9]{{2}}$",
}
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_MIN_DATETIME_HNS = -621_355_968_000_000_000  # 0001-01-01 since 1970, in 100 ns units


def _all_match(arr: pa.Array, pattern: str) -> bool:
    if arr.null_count == len(arr):
        return True
    return bool(pc.all(pc.match_substring_regex(arr, pattern)).as_py())


def _temporal_text(t: SqlType, wire: WireColumn, rows: int) -> pa.Array | None:
    """date, time, datetime2 and datetimeoffset from the text forms in
    :data:`_TEXT_TEMPORALS`, parsed over the whole column (numpy over the UTF-8 bytes),
    then rounded and stored as the converters do."""
    kind = t.kind
    if not _all_match(wire.array(rows), _TEXT_TEMPORALS[kind]):
        return None
    assert wire.offsets is not None
    offs = np.frombuffer(wire.offsets, dtype=np.int32, count=rows + 1).astype(np.int64)
    data = np.frombuffer(wire.values, dtype=np.uint8, count=int(offs[-1]))
    if not len(data):
        data = np.zeros(1, dtype=np.uint8)
    start, length = offs[:-1], np.diff(offs)
    valid = (np.unpackbits(np.frombuffer(wire.validity, dtype=np.uint8), count=rows,
                           bitorder="little").astype(bool)
             if wire.nulls else np.ones(rows, dtype=bool))
    last = len(data) - 1

    def digit(at: np.ndarray | int) -> np.ndarray:
        return data[np.clip(start + at, 0, last)].astype(np.int64) - 48

    def number(at: int, width: int) -> np.ndarray:
        out = np.zeros(rows, dtype=np.int64)
        for k in range(width):
            out = out * 10 + digit(at + k)
        return out

    ok = np.ones(rows, dtype=bool)
    hns = np.zeros(rows, dtype=np.int64)
    time_at = 0
    if kind is not SqlKind.TIME:
        year, month, day = number(0, 4), number(5, 2), number(8, 2)
        ok &= (year >= 1) & (month >= 1) & (month <= 12)
        month = np.clip(month, 1, 12)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        ok &= (day >= 1) & (day <= _MONTH_DAYS[month - 1] + (leap & (month == 2)))
        y = year - (month <= 2)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
        days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
        if kind is SqlKind.DATE:
            if not bool(np.all(ok | ~valid)):
                return None
            days = np.where(valid, days, 0).astype(np.int32)
            return _fixed(pa.date32(), days, wire, rows)
        hns = days * _DAY_HNS
        time_at = 11
    hour, minute, second = number(time_at, 2), number(time_at + 3, 2), number(time_at + 6, 2)
    ok &= (hour < 24) & (minute < 60) & (second < 60)
    end = length - (7 if kind is SqlKind.DATETIMEOFFSET else 0)
    digits = end - (time_at + 9)  # fraction digits (negative: none)
    fraction = np.zeros(rows, dtype=np.int64)
    for k in range(7):
        fraction += np.where(k < digits, digit(time_at + 9 + k), 0) * 10 ** (6 - k)
    hns = hns + ((hour * 60 + minute) * 60 + second) * 10_000_000 + fraction
    offset = np.zeros(rows, dtype=np.int64)
    if kind is SqlKind.DATETIMEOFFSET:
        sign = np.where(data[np.clip(start + end + 1, 0, last)] == ord("-"), -1, 1)
        hours = digit(end + 2) * 10 + digit(end + 3)
        minutes = digit(end + 5) * 10 + digit(end + 6)
        offset = sign * (hours * 60 + minutes)
        ok &= (minutes < 60) & (np.abs(offset) <= 840)
    if not bool(np.all(ok | ~valid)):
        return None
    hns = np.where(valid, hns, 0)
    if kind is SqlKind.TIME:
        return _temporal_units(hns, wire, rows, t, pa.time64("us"), wrap=True)
    if kind is SqlKind.DATETIME2:
        return _temporal_units(hns, wire, rows, t, pa.timestamp("us"), wrap=False)
    offset = np.where(valid, offset, 0)
    local = _rounded(hns, t, wrap=False)
    if local is None:
        return None
    utc = local - offset * 600_000_000
    if rows and (int(utc.min()) < _MIN_DATETIME_HNS or int(utc.max()) > _MAX_DATETIME_HNS):
        return None
    return _offset_struct(utc, offset.astype(np.int16), wire, rows, t, 7)


def _decimal_array(data: bytes | None, wire: WireColumn, rows: int, precision: int,
                   scale: int) -> pa.Array | None:
    if data is None:
        return None
    validity = pa.py_buffer(wire.validity) if wire.nulls else None
    return pa.Array.from_buffers(pa.decimal128(precision, scale), rows,
                                 [validity, pa.py_buffer(data)], wire.nulls)


_DTO_WIRE = np.dtype([("hns", "<i8"), ("offset", "<i2"), ("pad", "V6")])


def _offset_struct(utc: np.ndarray, offset: np.ndarray, wire: WireColumn, rows: int,
                   t: SqlType, wire_scale: int | None) -> pa.Array | None:
    """datetimeoffset values as stored (typemap.DTO_DUCK): the UTC instant in
    microseconds, its 100 ns digit and the offset in minutes; ``utc`` in 100 ns units
    since 1970, rounded half-up to the column's scale when it has more digits (offsets
    are whole minutes, so rounding the instant rounds the local time alike)."""
    scale = 7 if t.scale is None else t.scale
    if wire_scale is None or wire_scale > scale:
        rounded = _rounded(np.asarray(utc, dtype=np.int64), t, wrap=False)
        if rounded is None:
            return None
        utc = rounded
        if rows and int(utc.max()) > _MAX_DATETIME_HNS:
            return None
    micros, hns = np.divmod(np.asarray(utc, dtype=np.int64), 10)
    fields = [pa.Array.from_buffers(pa.timestamp("us"), rows,
                                    [None, pa.py_buffer(micros.tobytes())]),
              pa.array(hns.astype(np.uint8), type=pa.uint8()),
              pa.array(np.asarray(offset, dtype=np.int16), type=pa.int16())]
    mask = None
    if wire.nulls:
        valid = pa.Array.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(wire.validity)])
        mask = pc.invert(valid)
    return pa.StructArray.from_arrays(fields, fields=list(arrow_type(t)), mask=mask)


def _rounded(units: np.ndarray, t: SqlType, *, wrap: bool) -> np.ndarray | None:
    """100 ns units rounded half-up to the column's scale (time: within a day); None
    past 9999-12-31 (the row-wise path reports it)."""
    scale = 7 if t.scale is None else t.scale
    if scale >= 7:
        return units
    quantum = 10 ** (7 - scale)
    units = (units + quantum // 2) // quantum * quantum  # floor division: half-up
    if wrap:
        return units % _DAY_HNS
    if len(units) and int(units.max()) > _MAX_DATETIME_HNS:
        return None
    return units


def _temporal(wire: WireColumn, rows: int, t: SqlType, arrow: Any, *,
              wrap: bool) -> pa.Array | None:
    """checks' temporal converter over a column of 100 ns units (time: within a day)."""
    return _temporal_units(wire.hundred_ns(rows), wire, rows, t, arrow, wrap=wrap)


def _temporal_units(units: np.ndarray, wire: WireColumn, rows: int, t: SqlType, arrow: Any,
                    *, wrap: bool) -> pa.Array | None:
    """100 ns units rounded half-up to the column's scale, then stored as microseconds,
    plus the 100 ns digit for datetime2(7)/time(7) (typemap.DT2_DUCK)."""
    rounded = _rounded(units, t, wrap=wrap)
    if rounded is None:
        return None
    micros, hns = np.divmod(rounded, 10)
    validity = pa.py_buffer(wire.validity) if wire.nulls else None
    if not stores_100ns(t):
        return pa.Array.from_buffers(arrow, rows, [validity, pa.py_buffer(micros.tobytes())],
                                     wire.nulls)
    fields = [pa.Array.from_buffers(arrow, rows, [None, pa.py_buffer(micros.tobytes())]),
              pa.Array.from_buffers(pa.uint8(), rows,
                                    [None, pa.py_buffer(hns.astype(np.uint8).tobytes())])]
    mask = None
    if wire.nulls:
        valid = pa.Array.from_buffers(pa.bool_(), rows, [None, validity])
        mask = pc.invert(valid)
    return pa.StructArray.from_arrays(fields, fields=list(arrow_type(t)), mask=mask)
