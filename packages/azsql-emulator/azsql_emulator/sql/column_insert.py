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

__all__ = ["column_table"]

_DECIMALS = (SqlKind.DECIMAL, SqlKind.NUMERIC)
_DAY_HNS = 864_000_000_000  # 100 ns units in a day
_MAX_DATETIME_HNS = 2_534_023_007_999_999_999  # 9999-12-31 23:59:59.9999999 since 1970


def column_table(con: duckdb.DuckDBPyConnection, table: TableMeta,
                 given: Sequence[ColumnMeta], sources: Sequence[tuple], names: Sequence[str],
                 columns: Sequence[WireColumn], rows: int) -> pa.Table | None:
    """The rows to append, in table column order (``c0``, ``c1``...), or None.

    :param con: the session's connection (to look for keys already stored).
    :param table: the INSERT's target.
    :param given: the columns the INSERT names, in VALUES order.
    :param sources: per given column, where its value comes from (``session_state``'s plan).
    :param names: the prepared statement's parameter names, in order.
    :param columns: the run's parameters after the handle.
    :param rows: how many calls.
    """
    if _native is None or len(columns) > len(names):
        return None
    arrays: dict[str, pa.Array] = {}
    for col, source in zip(given, sources, strict=True):
        if col.identity:
            return None
        if source[0] == "param":
            name = source[1]
        elif source[0] == "text" and len(source[1]) == 1:
            name = source[1][0]  # CAST(@P AS nvarchar(n)): text kept as it is, if it fits
        else:
            return None
        index = names.index(name)
        if index >= len(columns):
            return None
        wire = columns[index]
        if source[0] == "text" and (wire.info.type not in TEXT_TYPES or (
                source[2] is not None and wire.max_units > source[2])):
            return None
        converted = _convert(col, wire, rows)
        if converted is None:
            return None
        arrays[col.name.lower()] = converted
    out = []
    for col in table.columns:
        array = arrays.get(col.name.lower())
        if array is None:  # not given: NULL, unless the row-wise path has more to do
            if col.identity or col.default_sql or not col.nullable:
                return None
            array = pa.nulls(rows, arrow_type(col.type))
        out.append(array)
    if not _keys_are_new(con, table, out, rows):
        return None
    return pa.table(out, names=[f"c{i}" for i in range(len(out))])


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


def _convert(col: ColumnMeta, wire: WireColumn, rows: int) -> pa.Array | None:
    if wire.nulls and not col.nullable:
        return None  # 515 for some call
    t, w = col.type, wire.info.type
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
    if w == D.DATETIMEOFFSETN:  # bulk-load rows; a rounding scale: the row-wise path
        if kind is not SqlKind.DATETIMEOFFSET or t.scale not in (None, 7):
            return None
        return _offsets(wire, rows, t)
    arr = wire.array(rows)
    if w == D.FLTN:
        return arr if kind is SqlKind.FLOAT else None
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
    return None


def _decimal_array(data: bytes | None, wire: WireColumn, rows: int, precision: int,
                   scale: int) -> pa.Array | None:
    if data is None:
        return None
    validity = pa.py_buffer(wire.validity) if wire.nulls else None
    return pa.Array.from_buffers(pa.decimal128(precision, scale), rows,
                                 [validity, pa.py_buffer(data)], wire.nulls)


_DTO_WIRE = np.dtype([("hns", "<i8"), ("offset", "<i2"), ("pad", "V6")])


def _offsets(wire: WireColumn, rows: int, t: SqlType) -> pa.Array:
    """datetimeoffset(7) values as stored (typemap.DTO_DUCK): the UTC instant in
    microseconds, its 100 ns digit and the offset in minutes."""
    values = np.frombuffer(wire.values, dtype=_DTO_WIRE, count=rows)
    micros, hns = np.divmod(values["hns"], 10)
    fields = [pa.Array.from_buffers(pa.timestamp("us"), rows,
                                    [None, pa.py_buffer(micros.tobytes())]),
              pa.array(hns.astype(np.uint8), type=pa.uint8()),
              pa.array(values["offset"], type=pa.int16())]
    mask = None
    if wire.nulls:
        valid = pa.Array.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(wire.validity)])
        mask = pc.invert(valid)
    return pa.StructArray.from_arrays(fields, fields=list(arrow_type(t)), mask=mask)


def _temporal(wire: WireColumn, rows: int, t: SqlType, arrow: Any, *,
              wrap: bool) -> pa.Array | None:
    """checks' temporal converter over a column of 100 ns units (time: within a day):
    rounded half-up to the column's scale, then stored as microseconds, plus the 100 ns
    digit for datetime2(7)/time(7) (typemap.DT2_DUCK)."""
    scale = 7 if t.scale is None else t.scale
    units = wire.hundred_ns(rows)
    if scale < 7:
        quantum = 10 ** (7 - scale)
        units = (units + quantum // 2) // quantum * quantum  # floor division: half-up
        if wrap:
            units = units % _DAY_HNS
        elif rows and int(units.max()) > _MAX_DATETIME_HNS:
            return None  # past 9999-12-31: the row-wise path reports it
    micros, hns = np.divmod(units, 10)
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
