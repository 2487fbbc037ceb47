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

The generators live in the engine (:mod:`engine.bench.datasets`, which ``azsql-bulk bench``
loads from); this module caches their tables as Parquet for the benchmark scripts. The
``orders`` dataset is the engine's too, but :data:`DATASETS` (the scripts' default sweeps)
keeps to the first four.

Files are cached under ``$AZSQL_BULK_CACHE/bench`` (default ``~/.cache/azsql-bulk/bench``),
keyed by dataset, row count and ``VERSION``; bump ``VERSION`` when a generator changes.

Run: ``.venv/bin/python benchmarks/bench_data.py --dataset narrow --rows 1000000`` prints
the cached file's path (generating it first when missing).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.bench import datasets as _datasets
from engine.bench.datasets import VERSION, narrow, text, typed, wide

__all__ = ["DATASETS", "ROW_GROUP", "VERSION", "cache_dir", "narrow", "parquet_path", "table",
           "text", "typed", "wide"]

DATASETS = _datasets.DATASETS[:4]  # the benchmark scripts' sweeps; table() takes "orders" too
ROW_GROUP = 100_000


def cache_dir() -> Path:
    root = os.environ.get("AZSQL_BULK_CACHE") or str(Path.home() / ".cache" / "azsql-bulk")
    return Path(root) / "bench"


def table(name: str, rows: int, start: int = 0) -> pa.Table:
    """``rows`` rows of dataset ``name`` (deterministic for a given ``start``)."""
    return _datasets.table(name, rows, start)


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
