"""The benchmark datasets: generated deterministically (seeded, vectorised) and cached as Parquet.

- ``narrow``: 4 columns: int64 id, float64, a short string, a timestamp (datetime2).
- ``wide``: 30 columns: ints of every width, floats, decimal128 (18,4) and (38,10), bool,
  nvarchar(200)-sized text, dates, timestamps with and without time zone
  (datetimeoffset), with NULLs in every other column.
- ``text``: text-heavy: an id and three unicode strings (Latin accents, CJK, emoji) of
  100-700 characters, unique per row (a random ASCII prefix), so Parquet cannot
  dictionary-encode them away. At most 1,339 UTF-8 bytes, so below the 1,600 UTF-16
  units past which the engine sends text in pieces: the long-text path (values split
  and joined by the server) is not measured here.
- ``typed``: 8 columns of the types parameter arrays send as exact text (issue 18): an
  int64 id, decimal128 (18,4), (38,10) and (9,2), two uuids (``arrow.uuid``, so
  uniqueidentifier) and two timestamps with a time zone (datetimeoffset), NULLs in one
  of each kind.

Files are cached under ``$AZSQL_BULK_CACHE/bench`` (default ``~/.cache/azsql-bulk/bench``),
keyed by dataset, row count and ``VERSION``; bump ``VERSION`` when a generator changes.

Run: ``.venv/bin/python benchmarks/bench_data.py --dataset narrow --rows 1000000`` prints
the cached file's path (generating it first when missing).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

VERSION = 1
DATASETS = ("narrow", "wide", "text", "typed")  # append only: the index seeds each
ROW_GROUP = 100_000
_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds


def cache_dir() -> Path:
    root = os.environ.get("AZSQL_BULK_CACHE") or str(Path.home() / ".cache" / "azsql-bulk")
    return Path(root) / "bench"


def _rng(name: str, part: int) -> np.random.Generator:
    return np.random.default_rng([VERSION, DATASETS.index(name), part])


def _ascii(rng: np.random.Generator, rows: int, width: int) -> pa.Array:
    """``rows`` random printable-ASCII strings of exactly ``width`` characters."""
    raw = rng.integers(33, 127, size=(rows, width), dtype=np.uint8)
    return pa.array(raw.view(f"S{width}").ravel(), pa.binary()).cast(pa.string())


def _pool(rng: np.random.Generator, size: int, low: int, high: int, alphabet: str) -> pa.Array:
    """``size`` strings of ``low``..``high`` characters drawn from ``alphabet``."""
    chars = np.array(list(alphabet))
    lengths = rng.integers(low, high + 1, size=size)
    return pa.array(["".join(chars[rng.integers(0, len(chars), size=n)]) for n in lengths])


def _with_nulls(rng: np.random.Generator, arr: pa.Array, fraction: float) -> pa.Array:
    mask = pa.array(rng.random(len(arr)) < fraction)
    return pc.if_else(mask, pa.scalar(None, arr.type), arr)


def _timestamps(rng: np.random.Generator, rows: int, tz: str | None = None) -> pa.Array:
    us = _EPOCH_US + rng.integers(0, 3 * 365 * 86_400_000_000, size=rows)
    return pa.array(us, pa.timestamp("us", tz=tz))


def _decimals(rng: np.random.Generator, rows: int, precision: int, scale: int,
              magnitude: int) -> pa.Array:
    """Exact decimals: unscaled int64 values below ``magnitude``, sign-extended into
    decimal128's 16-byte slots."""
    unscaled = rng.integers(-magnitude, magnitude, size=rows, dtype=np.int64)
    slots = np.empty((rows, 2), dtype=np.int64)
    slots[:, 0], slots[:, 1] = unscaled, unscaled >> 63
    return pa.Array.from_buffers(pa.decimal128(precision, scale), rows,
                                 [None, pa.py_buffer(slots.tobytes())])


def _uuids(rng: np.random.Generator, rows: int, null_fraction: float = 0.0) -> pa.Array:
    """Random (version 4 shaped) uuids as the ``arrow.uuid`` extension type."""
    raw = rng.integers(0, 256, size=(rows, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    storage = pa.Array.from_buffers(pa.binary(16), rows, [None, pa.py_buffer(raw.tobytes())])
    if null_fraction:  # if_else has no kernel for the extension type: null the storage
        storage = _with_nulls(rng, storage, null_fraction)
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def narrow(rows: int, start: int = 0) -> pa.Table:
    """4 columns: id, amount, code (8-16 characters), ts (microseconds)."""
    rng = _rng("narrow", start)
    pool = _pool(rng, 4096, 8, 16, "abcdefghijklmnopqrstuvwxyz0123456789-")
    return pa.table({
        "id": pa.array(np.arange(start, start + rows, dtype=np.int64)),
        "amount": pa.array(np.round(rng.random(rows) * 10_000, 2)),
        "code": pool.take(pa.array(rng.integers(0, len(pool), size=rows))),
        "ts": _timestamps(rng, rows),
    })


def wide(rows: int, start: int = 0) -> pa.Table:
    """30 mixed columns with NULLs in every other one."""
    rng = _rng("wide", start)
    text = _pool(rng, 4096, 20, 200, "abcdefghij klmnopqrstuvwxyzÄÖÜßéèçñ 0123456789")
    short = _pool(rng, 512, 2, 30, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_")

    def ints(dtype: type[np.integer], lo: int, hi: int) -> pa.Array:
        return pa.array(rng.integers(lo, hi, size=rows, dtype=dtype))

    def dec(precision: int, scale: int, magnitude: int) -> pa.Array:
        return _decimals(rng, rows, precision, scale, magnitude)

    cols: dict[str, pa.Array] = {
        "id": pa.array(np.arange(start, start + rows, dtype=np.int64)),
        "i8": ints(np.int8, -128, 127), "i16": ints(np.int16, -32768, 32767),
        "i32": ints(np.int32, -2**31, 2**31 - 1), "i64": ints(np.int64, -2**62, 2**62),
        "u8": ints(np.uint8, 0, 255),
        "f32": pa.array(rng.standard_normal(rows).astype(np.float32)),
        "f64": pa.array(rng.standard_normal(rows) * 1e6),
        "price": dec(18, 4, 10**12), "big": dec(38, 10, 9 * 10**17),
        "flag": pa.array(rng.random(rows) < 0.5),
        "name": text.take(pa.array(rng.integers(0, len(text), size=rows))),
        "label": short.take(pa.array(rng.integers(0, len(short), size=rows))),
        "day": pa.array(rng.integers(0, 20_000, size=rows).astype(np.int32)).cast(pa.date32()),
        "ts_us": _timestamps(rng, rows), "ts_tz": _timestamps(rng, rows, "UTC"),
    }
    extra = 30 - len(cols)
    for k in range(extra):  # more of the same kinds, to reach 30 columns
        kind = k % 4
        cols[f"x{k:02d}"] = (ints(np.int32, -10**6, 10**6) if kind == 0 else
                             pa.array(rng.random(rows) * 100) if kind == 1 else
                             short.take(pa.array(rng.integers(0, len(short), size=rows)))
                             if kind == 2 else _timestamps(rng, rows))
    names = list(cols)
    for i, name in enumerate(names):
        if i % 2 == 1:
            cols[name] = _with_nulls(rng, cols[name], 0.1)
    return pa.table(cols)


def text(rows: int, start: int = 0) -> pa.Table:
    """id and three unicode strings of 100-700 characters, unique per row."""
    rng = _rng("text", start)
    alphabet = ("abcdefghijklmnopqrstuvwxyz ÀÉÎÕÜàéîõüßçñ 数据库加载测试中文字符 "
                "データベース 한국어 😀🚀✓ ")
    pool = _pool(rng, 1024, 84, 684, alphabet)
    cols: dict[str, pa.Array] = {"id": pa.array(np.arange(start, start + rows, dtype=np.int64))}
    for name in ("title", "body", "note"):
        body = pool.take(pa.array(rng.integers(0, len(pool), size=rows)))
        cols[name] = pc.binary_join_element_wise(_ascii(rng, rows, 16), body, "")
    return pa.table(cols)


def typed(rows: int, start: int = 0) -> pa.Table:
    """id, three decimals, two uuids, two datetimeoffsets; NULLs in one of each kind."""
    rng = _rng("typed", start)
    return pa.table({
        "id": pa.array(np.arange(start, start + rows, dtype=np.int64)),
        "price": _decimals(rng, rows, 18, 4, 10**12),
        "big": _decimals(rng, rows, 38, 10, 9 * 10**17),
        "small": _with_nulls(rng, _decimals(rng, rows, 9, 2, 10**8), 0.1),
        "order_id": _uuids(rng, rows),
        "customer_id": _uuids(rng, rows, 0.1),
        "created": _timestamps(rng, rows, "UTC"),
        "changed": _with_nulls(rng, _timestamps(rng, rows, "UTC"), 0.1),
    })


def table(name: str, rows: int, start: int = 0) -> pa.Table:
    """``rows`` rows of dataset ``name`` (deterministic for a given ``start``)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {name!r}")
    makers = {"narrow": narrow, "wide": wide, "text": text, "typed": typed}
    return makers[name](rows, start)


def parquet_path(name: str, rows: int, row_group: int = ROW_GROUP) -> Path:
    """The cached Parquet file of ``rows`` rows of ``name``; generated when missing.

    Written row group by row group (``row_group`` rows each), so generating 10M rows
    never holds more than one row group in memory.
    """
    suffix = "" if row_group == ROW_GROUP else f"-rg{row_group}"
    path = cache_dir() / f"{name}-{rows}{suffix}-v{VERSION}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, row_group):
            part = table(name, min(row_group, rows - start), start)
            if writer is None:
                writer = pq.ParquetWriter(tmp, part.schema, compression="snappy")
            writer.write_table(part, row_group_size=row_group)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="narrow")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-group", type=int, default=ROW_GROUP)
    args = parser.parse_args()
    print(parquet_path(args.dataset, args.rows, args.row_group))


if __name__ == "__main__":
    main()
