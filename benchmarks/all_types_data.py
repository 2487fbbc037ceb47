"""The all-types dataset (issue 19): one column per Arrow type the engine maps, edge values,
NULLs, and an exact read-back through pyodbc.

The columns are GENERATED, not picked: :func:`arrow_types` walks a grid of Arrow type
constructors and their parameters (every integer width, float width, decimal flavour,
text and binary flavour, temporal unit, time zone, nested kind) and keeps each type
``engine.type_map.sql_type_for`` accepts, so a type the engine learns to map, or a new
unit, shows up here by itself. Two more columns make the engine's ``(max)`` shapes:
text longer than 4,000 UTF-16 units (nvarchar(max): pieces in parameter arrays, PLP in
bulk copy) and bytes longer than 8,000 (varbinary(max)).

Values: the first rows hold each type's extremes (minimum, maximum, zero, empty), about
one value in ten is NULL (never in ``id``), the rest are seeded random. Floats are finite
(SQL Server has no NaN). Timestamps in ns and times in ns are multiples of 100 ns, so
every value is exactly representable in the column the engine creates; rounding is
tested elsewhere.

:func:`verify` reads the table back through pyodbc (Microsoft's driver, a client other
than the loader's turbodbc) and compares every value with what :func:`expected_values`
derives from the source with Python's own types.

Run: ``.venv/bin/python benchmarks/all_types_data.py --rows 100000 --out /tmp/all.arrow``
writes the dataset as an Arrow IPC file (which keeps every Arrow type, unlike Parquet).
"""

from __future__ import annotations

import argparse
import datetime as dt
import struct
from collections.abc import Callable, Iterator
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import UnsupportedTypeError
from engine.type_map import SqlType, is_uuid, sql_type_for

__all__ = ["all_types", "arrow_types", "expected_values", "planned_types", "verify",
           "write_ipc"]

SEED = 19
NULL_EVERY = 10  # about one value in ten is NULL
_UNITS = ("s", "ms", "us", "ns")
_ZONES = (None, "UTC", "Asia/Kolkata")


def _grid() -> Iterator[tuple[str, pa.DataType]]:
    """Every Arrow type constructor with a spread of its parameters (some the engine
    refuses: :func:`arrow_types` drops those)."""
    for bits in (8, 16, 32, 64):
        yield f"int{bits}", getattr(pa, f"int{bits}")()
        yield f"uint{bits}", getattr(pa, f"uint{bits}")()
    for bits in (16, 32, 64):
        yield f"float{bits}", getattr(pa, f"float{bits}")()
    for maker in (pa.decimal128, pa.decimal256):
        for p, s in ((38, 10), (38, 0), (18, 4), (12, 2), (9, 0), (5, -2), (40, 2)):
            name = f"{maker.__name__}_{p}_{s}".replace("-", "m")
            try:
                yield name, maker(p, s)
            except (ValueError, pa.ArrowInvalid):
                continue
    yield "bool", pa.bool_()
    yield "string", pa.string()
    yield "large_string", pa.large_string()
    yield "string_view", pa.string_view()
    yield "dict_string", pa.dictionary(pa.int32(), pa.string())
    yield "dict8_large_string", pa.dictionary(pa.int8(), pa.large_string())
    yield "binary", pa.binary()
    yield "large_binary", pa.large_binary()
    yield "binary_view", pa.binary_view()
    yield "fixed_binary_4", pa.binary(4)
    yield "fixed_binary_16", pa.binary(16)
    yield "uuid", pa.uuid()
    yield "date32", pa.date32()
    yield "date64", pa.date64()
    for unit in _UNITS:
        yield f"time_{unit}", pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    for zone in _ZONES:
        for unit in _UNITS:
            suffix = "" if zone is None else "_" + zone.split("/")[-1].lower()
            yield f"ts_{unit}{suffix}", pa.timestamp(unit, tz=zone)
    for unit in _UNITS:
        yield f"duration_{unit}", pa.duration(unit)
    yield "list", pa.list_(pa.int64())
    yield "large_list", pa.large_list(pa.string())
    yield "fixed_list", pa.list_(pa.float64(), 2)
    yield "struct", pa.struct([("a", pa.int32()), ("b", pa.string())])
    yield "map", pa.map_(pa.string(), pa.int32())
    yield "null", pa.null()


def arrow_types() -> list[tuple[str, pa.DataType]]:
    """(column name, Arrow type) for every type of the grid the engine maps to a SQL type."""
    kept = []
    for name, t in _grid():
        try:
            sql_type_for(t, column=name)
        except UnsupportedTypeError:
            continue
        kept.append((name, t))
    return kept


# -- values ------------------------------------------------------------------------------------

_MIN_TS_S = -62_135_596_800  # 0001-01-01 00:00:00 UTC, seconds since the Unix epoch
_MAX_TS_S = 253_402_300_799  # 9999-12-31 23:59:59
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_DAY_NS = 86_400 * 10**9
_TEXT = ("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 "
         "ÀÉÎÕÜàéîõüßçñ 数据库加载 データ 한국어 😀🚀✓")


def _nulls(rng: np.random.Generator, arr: pa.Array, edge: int) -> pa.Array:
    """``arr`` with about one value in :data:`NULL_EVERY` NULL (never the first ``edge``)."""
    mask = rng.integers(0, NULL_EVERY, size=len(arr)) == 0
    mask[:edge] = False
    if pa.types.is_null(arr.type):
        return arr
    if isinstance(arr.type, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(arr.type, _nulls_plain(arr.storage, mask))
    return _nulls_plain(arr, mask)


def _nulls_plain(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        indices = _nulls_plain(arr.indices, mask)
        return pa.DictionaryArray.from_arrays(indices, arr.dictionary)
    if pa.types.is_string_view(arr.type) or pa.types.is_binary_view(arr.type):
        plain = pa.string() if pa.types.is_string_view(arr.type) else pa.binary()
        return _nulls_plain(arr.cast(plain), mask).cast(arr.type)
    if pa.types.is_nested(arr.type):
        keep = pa.array(~mask)
        return pc.if_else(keep, arr, pa.nulls(len(arr), arr.type)) \
            if not pa.types.is_map(arr.type) else _map_nulls(arr, mask)
    return pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr)


def _map_nulls(arr: pa.Array, mask: np.ndarray) -> pa.Array:
    values = arr.to_pylist()
    return pa.array([None if m else v for v, m in zip(values, mask, strict=True)], arr.type)


def _pool(rng: np.random.Generator, size: int, low: int, high: int) -> list[str]:
    chars = np.array(list(_TEXT))
    lengths = rng.integers(low, high + 1, size=size)
    return ["".join(chars[rng.integers(0, len(chars), size=n)]) for n in lengths]


def _text(rng: np.random.Generator, rows: int) -> pa.Array:
    pool = pa.array(["", "😀", "x" * 200, *_pool(rng, 1021, 1, 60)])
    index = rng.integers(0, len(pool), size=rows)
    index[:3] = [0, 1, 2]
    return pool.take(pa.array(index))


def _binary(rng: np.random.Generator, rows: int, width: int | None = None) -> pa.Array:
    if width is not None:
        raw = rng.integers(0, 256, size=rows * width, dtype=np.uint8)
        raw[:width] = 0
        raw[width:2 * width] = 255
        return pa.Array.from_buffers(pa.binary(width), rows, [None, pa.py_buffer(raw.tobytes())])
    lengths = rng.integers(0, 40, size=rows)
    lengths[:3] = [0, 1, 200]
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = rng.integers(0, 256, size=int(offsets[-1]), dtype=np.uint8)
    return pa.Array.from_buffers(pa.binary(), rows, [None, pa.py_buffer(offsets.tobytes()),
                                                     pa.py_buffer(data.tobytes())])


def _ints(rng: np.random.Generator, t: pa.DataType, rows: int) -> pa.Array:
    info = np.iinfo(t.to_pandas_dtype())
    values = rng.integers(info.min, info.max, size=rows, dtype=t.to_pandas_dtype(),
                          endpoint=True)
    values[:3] = [info.min, info.max, 0]
    return pa.array(values, t)


def _floats(rng: np.random.Generator, t: pa.DataType, rows: int) -> pa.Array:
    dtype = t.to_pandas_dtype()
    info = np.finfo(dtype)
    values = (rng.standard_normal(rows) * 1e3).astype(dtype)
    # the smallest NORMAL value: real and float hold no subnormals (Driver 18's bulk copy
    # refuses them with 22003, as SQL Server's documented ranges say)
    values[:5] = [info.max, -info.max, info.tiny, -0.0, 0.0]
    return pa.array(values, t)


def _decimals(rng: np.random.Generator, t: pa.DataType, rows: int) -> pa.Array:
    digits = t.precision
    magnitude = 10 ** min(digits, 18)
    unscaled = rng.integers(-magnitude + 1, magnitude, size=rows, dtype=np.int64)
    with localcontext() as ctx:
        ctx.prec = 80
        top = Decimal(10) ** digits - 1
        edge = [top, -top, Decimal(0), Decimal(1)]
        scale = Decimal(10) ** -t.scale
        values = [v * scale for v in edge] + [Decimal(int(u)) * scale for u in unscaled[4:]]
        return pa.array(values, t)


def _temporal_ticks(rng: np.random.Generator, unit: str, rows: int, low_s: int,
                    high_s: int) -> np.ndarray:
    per = _PER_SECOND[unit]
    ticks = rng.integers(low_s * per, high_s * per, size=rows, dtype=np.int64)
    if unit == "ns":
        ticks -= ticks % 100  # exactly representable in a 100 ns column
    return ticks


def _timestamps(rng: np.random.Generator, t: pa.DataType, rows: int) -> pa.Array:
    per = _PER_SECOND[t.unit]
    if t.unit == "ns":  # Arrow's ns timestamps span 1677-2262
        low, high = -(2**63) // per + 1, (2**63 - 1) // per - 1
    else:
        low, high = _MIN_TS_S, _MAX_TS_S
    ticks = _temporal_ticks(rng, t.unit, rows, max(low, -2_000_000_000),
                            min(high, 4_000_000_000))
    top = high * per + per - 1 if t.unit != "ns" else 9_223_372_036_854_775_700
    ticks[:3] = [low * per if t.unit != "ns" else -9_223_372_036_854_775_800, top, 0]
    return pa.array(ticks, t)


def _times(t: pa.DataType, rng: np.random.Generator, rows: int) -> pa.Array:
    per = _PER_SECOND[t.unit]
    ticks = rng.integers(0, 86_400 * per, size=rows, dtype=np.int64)
    if t.unit == "ns":
        ticks -= ticks % 100
    ticks[:2] = [0, 86_400 * per - (100 if t.unit == "ns" else 1)]
    storage = pa.int32() if pa.types.is_time32(t) else pa.int64()
    return pa.array(ticks, pa.int64()).cast(storage).view(t)


def _nested(rng: np.random.Generator, t: pa.DataType, rows: int) -> pa.Array:
    small = rng.integers(-1000, 1000, size=(rows, 3))
    if pa.types.is_struct(t):
        return pa.array([{"a": int(a), "b": f"v{b}"} for a, b, _ in small], t)
    if pa.types.is_map(t):
        return pa.array([[("k", int(a))] if a % 2 else [] for a, _, _ in small], t)
    if pa.types.is_fixed_size_list(t):
        return pa.array([[float(a) / 4, float(b)] for a, b, _ in small], t)
    if pa.types.is_large_list(t):
        return pa.array([[f"s{a}", "ü"][: abs(int(c)) % 3] for a, _, c in small], t)
    return pa.array([list(map(int, r[: abs(int(r[2])) % 4])) for r in small], t)


def column(name: str, t: pa.DataType, rows: int) -> pa.Array:
    """``rows`` values of Arrow type ``t`` (deterministic per column name)."""
    rng = np.random.default_rng([SEED, sum(name.encode())])
    raw = t.storage_type if isinstance(t, pa.BaseExtensionType) else t
    if pa.types.is_integer(raw):
        arr = _ints(rng, raw, rows)
    elif pa.types.is_floating(raw):
        arr = _floats(rng, raw, rows)
    elif pa.types.is_decimal(raw):
        arr = _decimals(rng, raw, rows)
    elif pa.types.is_boolean(raw):
        arr = pa.array(rng.random(rows) < 0.5)
    elif pa.types.is_dictionary(raw):
        pool = _text(rng, 100).cast(raw.value_type).unique()  # fits an int8 index
        index = pa.array(rng.integers(0, len(pool), size=rows), raw.index_type)
        arr = pa.DictionaryArray.from_arrays(index, pool)
    elif pa.types.is_string(raw) or pa.types.is_large_string(raw) \
            or pa.types.is_string_view(raw):
        arr = _text(rng, rows).cast(raw)
    elif pa.types.is_fixed_size_binary(raw):
        arr = _binary(rng, rows, raw.byte_width)
    elif pa.types.is_binary(raw) or pa.types.is_large_binary(raw) \
            or pa.types.is_binary_view(raw):
        arr = _binary(rng, rows).cast(raw)
    elif pa.types.is_date32(raw) or pa.types.is_date64(raw):
        days = rng.integers(-719_162, 2_932_896, size=rows, dtype=np.int64)
        days[:2] = [-719_162, 2_932_896]  # 0001-01-01 and 9999-12-31
        arr = pa.array(days.astype(np.int32), pa.date32())
        if pa.types.is_date64(raw):
            arr = arr.cast(pa.date64())
    elif pa.types.is_time(raw):
        arr = _times(raw, rng, rows)
    elif pa.types.is_timestamp(raw):
        arr = _timestamps(rng, raw, rows)
    elif pa.types.is_duration(raw):
        arr = _ints(rng, pa.int64(), rows).view(raw)
    elif pa.types.is_nested(raw):
        arr = _nested(rng, raw, rows)
    elif pa.types.is_null(raw):
        return pa.nulls(rows)
    else:  # pragma: no cover - arrow_types() only yields the kinds above
        raise TypeError(f"no generator for {t}")
    if isinstance(t, pa.BaseExtensionType):
        arr = pa.ExtensionArray.from_storage(t, arr)
    if pa.types.is_fixed_size_list(raw):
        # no NULLs: the engine's JSON of a fixed_size_list slice holding NULLs fails in
        # polars ("validity mask length must be equal to the number of values divided by
        # size"; any batch but the first is a slice) - reported with issue 19
        return arr
    return _nulls(rng, arr, 5)


def _long_text(rows: int) -> pa.Array:
    """nvarchar(max): mostly short text, one row in 500 over 4,000 UTF-16 units."""
    rng = np.random.default_rng([SEED, 1])
    # no empty strings here: Driver 18's bulk copy, as the engine binds it, sends an empty
    # (max) value as an unknown-length PLP stream of 65,535 bytes that are not the value
    # (found with this dataset; reported with issue 19, an engine fix). Empty values of
    # the other text and binary columns, which are not (max), are in the data.
    base = [v or "-" for v in _text(rng, rows).to_pylist()]
    for i in range(0, rows, 500):
        base[i] = f"{i}:" + "long ✓ text " * 400 + "😀" * (i % 7)
    return _nulls(rng, pa.array(base, pa.large_string()), 5)


def _long_binary(rows: int) -> pa.Array:
    """varbinary(max): mostly short, one row in 500 over 8,000 bytes."""
    rng = np.random.default_rng([SEED, 2])
    base = [v or b"\x00" for v in _binary(rng, rows).to_pylist()]  # no b"": see _long_text
    for i in range(0, rows, 500):
        base[i] = bytes(range(256)) * 40 + i.to_bytes(4, "little")
    return _nulls(rng, pa.array(base, pa.large_binary()), 5)


def all_types(rows: int) -> pa.Table:
    """``id`` (int64, unique), one column per :func:`arrow_types` entry, ``text_max`` and
    ``bytes_max``."""
    cols: dict[str, pa.Array] = {"id": pa.array(np.arange(rows, dtype=np.int64))}
    for name, t in arrow_types():
        cols[name] = column(name, t, rows)
    cols["text_max"] = _long_text(rows)
    cols["bytes_max"] = _long_binary(rows)
    fields = [pa.field("id", pa.int64(), nullable=False)]
    fields += [pa.field(n, a.type) for n, a in list(cols.items())[1:]]
    return pa.Table.from_arrays(list(cols.values()), schema=pa.schema(fields))


def planned_types(table: pa.Table) -> dict[str, SqlType]:
    """Column -> the SQL type the engine plans for it (sized from the whole table)."""
    from engine.plan import plan_table

    return {c.name: c.sql_type for c in plan_table(table.schema, sample=table).columns}


def write_ipc(table: pa.Table, path: Path, rows_per_batch: int = 10_000) -> Path:
    """Write ``table`` as an Arrow IPC file (every Arrow type kept) in record batches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=rows_per_batch)
    return path


# -- exact read-back ------------------------------------------------------------------------------

_SQL_TYPE_TIMESTAMP, _SQL_SS_TIME2, _SQL_SS_TIMESTAMPOFFSET = 93, -154, -155
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _stamp_ns(raw: bytes | None) -> int | None:
    """SQL_TIMESTAMP_STRUCT as nanoseconds since 1970 (every year 1-9999)."""
    if raw is None:
        return None
    y, mo, d, h, mi, s, ns = struct.unpack("<h5HI", raw)
    days = dt.date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    return ((days * 24 + h) * 60 + mi) * 60_000_000_000 + s * 1_000_000_000 + ns


def _time_ns(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    h, mi, s, ns = struct.unpack("<3HxxI", raw)
    return ((h * 60 + mi) * 60 + s) * 1_000_000_000 + ns


def _offset_ns(raw: bytes | None) -> tuple[int, int] | None:
    """SQL_SS_TIMESTAMPOFFSET_STRUCT as (UTC nanoseconds since 1970, offset minutes)."""
    if raw is None:
        return None
    y, mo, d, h, mi, s, ns, tzh, tzm = struct.unpack("<6hI2h", raw)
    days = dt.date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    local = ((days * 24 + h) * 60 + mi) * 60_000_000_000 + s * 1_000_000_000 + ns
    offset = tzh * 60 + tzm
    return local - offset * 60_000_000_000, offset


def _ns(values: pa.Array, unit: str) -> list[int | None]:
    per = 1_000_000_000 // _PER_SECOND[unit]
    return [None if v is None else v * per for v in values.cast(pa.int64()).to_pylist()]


def expected_values(name: str, arr: pa.Array | pa.ChunkedArray, sql: SqlType) -> list[Any]:
    """What pyodbc (with :func:`verify`'s converters) returns for column ``name`` when every
    value of ``arr`` was stored exactly in a column of type ``sql``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if isinstance(t, pa.BaseExtensionType):
        if is_uuid(t):
            return [None if v is None else str(v).upper() for v in arr.to_pylist()]
        arr, t = arr.storage, t.storage_type
    if pa.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if sql.name == "uniqueidentifier":
        return [None if v is None else str(_uuid(v)).upper() for v in arr.to_pylist()]
    if pa.types.is_integer(t) and sql.name == "decimal":
        return [None if v is None else Decimal(v) for v in arr.to_pylist()]
    if pa.types.is_floating(t):
        if sql.name == "real":
            return [None if v is None else float(np.float32(v)) for v in arr.to_pylist()]
        return arr.cast(pa.float64()).to_pylist()
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        arr = arr.cast(pa.string() if pa.types.is_string_view(t) else pa.binary())
    if pa.types.is_date(t):
        return arr.cast(pa.date32()).to_pylist()
    if pa.types.is_time(t):
        return _ns(arr.view(pa.int32() if pa.types.is_time32(t) else pa.int64()), t.unit)
    if pa.types.is_timestamp(t):
        ns = _ns(arr.view(pa.int64()), t.unit)
        if t.tz is not None:
            return [None if v is None else (v, 0) for v in ns]  # written as UTC
        return ns
    if pa.types.is_duration(t):
        return arr.view(pa.int64()).to_pylist()
    if pa.types.is_nested(t):
        from engine.bind_casts import bind_spec, cast_for_bind  # the engine's JSON is the mapping

        return cast_for_bind(arr, bind_spec(t, sql)).to_pylist()
    return arr.to_pylist()


def _uuid(raw: bytes) -> Any:
    import uuid

    return uuid.UUID(bytes=raw)


def verify(conn: Any, table_name: str, source: pa.Table,
           types: dict[str, SqlType] | None = None) -> list[str]:
    """Compare every value stored in ``table_name`` with ``source`` (rows matched by
    ``id``); the differences, at most three per column ([] when exact).

    :param conn: a pyodbc connection (output converters are added to it).
    :param table_name: ``schema.table``.
    :param source: the loaded table.
    :param types: the columns' SQL types (default: :func:`planned_types`).
    """
    conn.add_output_converter(_SQL_TYPE_TIMESTAMP, _stamp_ns)
    conn.add_output_converter(_SQL_SS_TIME2, _time_ns)
    conn.add_output_converter(_SQL_SS_TIMESTAMPOFFSET, _offset_ns)
    try:
        names = source.column_names
        select = ", ".join(f"[{n}]" for n in names)
        rows = conn.execute(f"SELECT {select} FROM {table_name} ORDER BY [id]").fetchall()
    finally:
        conn.clear_output_converters()
    types = types or planned_types(source)
    order = pc.sort_indices(source.column("id"))
    problems: list[str] = []
    if len(rows) != source.num_rows:
        problems.append(f"{len(rows)} rows stored, {source.num_rows} sent")
        return problems
    for i, name in enumerate(names):
        want = expected_values(name, _take(source.column(name), order), types[name])
        got = [r[i] for r in rows]
        if got != want:
            bad = [k for k, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
            problems.extend(f"{name} ({types[name].sql()}), row {k}: got {_short(got[k])}, "
                            f"want {_short(want[k])}" for k in bad[:3])
    return problems


def _take(values: pa.ChunkedArray, order: pa.Array) -> pa.Array:
    arr = values.combine_chunks()
    t = arr.type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):  # no take kernel
        return arr.cast(pa.string() if pa.types.is_string_view(t) else pa.binary()).take(order)
    return arr.take(order)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def arrow_megabytes(table: pa.Table) -> float:
    """The table's Arrow buffer size in MB (10^6 bytes), the MB of the MB/s figures."""
    return table.nbytes / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    table = all_types(args.rows)
    write_ipc(table, args.out)
    plan = planned_types(table)
    for name in table.column_names:
        print(f"{name:22s} {table.schema.field(name).type!s:38s} {plan[name].sql()}")
    print(args.out)


MAKERS: dict[str, Callable[[int], pa.Table]] = {"all_types": all_types}

if __name__ == "__main__":
    main()
