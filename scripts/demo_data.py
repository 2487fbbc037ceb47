"""The demo's dataset: deterministic, realistic orders written as Parquet, cached on disk.

Every column is built with numpy and pyarrow compute, a whole file at a time (never
row by row in Python), from one seeded generator per file, so the same version and row
count always give the same bytes. The cache key is ``v<GENERATOR_VERSION>-<rows>``: bump
:data:`GENERATOR_VERSION` whenever the data changes.

Columns (one row per order):

=============  ==============================  =============================================
column         Arrow type                      content
=============  ==============================  =============================================
order_id       int64                           1..rows, unique
order_uuid     arrow.uuid                      random version-4 UUIDs
customer_id    int32                           1..250,000
customer_name  string                          names with accents, CJK, Cyrillic, Greek...
country        string                          ISO 3166 codes
status         string                          order states
quantity       int16                           1..40
amount         decimal128(18,2)                order total, refunds negative
discount       decimal128(18,2)                about 55 % NULL
ordered_at     timestamp(us, Europe/Berlin)    2023-2025
shipped_at     timestamp(us, Europe/Berlin)    ordered_at + 1 h..10 d, NULL when not shipped
note           string                          about 70 % NULL; emoji, CJK, empty strings
=============  ==============================  =============================================

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     files = ensure_dataset(tmp, 1_000)
...     sum(pq.ParquetFile(f).metadata.num_rows for f in files)
1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["GENERATOR_VERSION", "SCHEMA", "default_cache_dir", "ensure_dataset", "generate_file"]

GENERATOR_VERSION = 1
SEED = 20_260_701
FILES = 4
MAX_ROW_GROUP_ROWS = 131_072
TIME_ZONE = "Europe/Berlin"

SCHEMA = pa.schema([
    pa.field("order_id", pa.int64(), nullable=False),
    pa.field("order_uuid", pa.uuid(), nullable=False),
    pa.field("customer_id", pa.int32(), nullable=False),
    pa.field("customer_name", pa.string(), nullable=False),
    pa.field("country", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("quantity", pa.int16(), nullable=False),
    pa.field("amount", pa.decimal128(18, 2), nullable=False),
    pa.field("discount", pa.decimal128(18, 2)),
    pa.field("ordered_at", pa.timestamp("us", tz=TIME_ZONE), nullable=False),
    pa.field("shipped_at", pa.timestamp("us", tz=TIME_ZONE)),
    pa.field("note", pa.string()),
])

_FIRST_NAMES = ["José", "Zoë", "François", "Søren", "Ångström", "Łukasz", "Nuño", "Ólafur",
                "Ayşe", "Dvořák", "María", "Jürgen", "太郎", "花子", "伟", "芳", "민준", "서연",
                "Дмитрий", "Αλέξανδρος", "محمد", "אברהם", "Ngọc", "Anaïs", "Chloé", "Björk",
                "Kofi", "Priya", "Siobhán", "Ōtsuka"]
_LAST_NAMES = ["Álvarez", "Müller", "Lefèvre", "Kierkegård", "Nowak", "Þórsson",
               "Yılmaz",  # noqa: RUF001 (a Turkish dotless i, on purpose)
               "García", "田中", "山田", "王", "李", "김", "박", "Иванов", "Παπαδόπουλος",
               "Nguyễn", "O'Brien", "Smith", "Sharma", "Mensah", "Øvergård"]
_COUNTRIES = ["DE", "FR", "ES", "IT", "NL", "PL", "SE", "NO", "JP", "CN", "KR", "US", "GB",
              "BR", "IN", "GR", "TR", "VN", "IS", "GH"]
_STATUSES = ["placed", "paid", "shipped", "delivered", "cancelled", "returned"]
_STATUS_WEIGHTS = [0.08, 0.12, 0.20, 0.50, 0.06, 0.04]
_NOTES = ["Leave at the door 🚪", "Geschenkverpackung bitte 🎁", "请在下午送货",
          "配達前に電話してください 📞", "¡Gracias! 😊", "Fragile — handle with care", "",
          "Ring twice 🔔🔔", "Позвоните заранее", "Livraison après 18 h, merci",
          "🎂🎉 birthday surprise, don't ring!", "경비실에 맡겨 주세요",
          "Não deixar com o vizinho", "𝄞 sheet music inside", "  spaces kept  "]
_EPOCH_START_US = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
_EPOCH_SPAN_US = 3 * 365 * 86_400 * 1_000_000


def default_cache_dir() -> Path:
    """``$AZSQL_BULK_CACHE/demo``, else ``${XDG_CACHE_HOME:-~/.cache}/azsql-bulk/demo``."""
    root = os.environ.get("AZSQL_BULK_CACHE")
    if root:
        return Path(root) / "demo"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "azsql-bulk" / "demo"


def _files_for(rows: int) -> list[tuple[int, int]]:
    """(first order_id, rows) of each file: FILES files, as even as possible."""
    files = max(1, min(FILES, rows))
    base, extra = divmod(rows, files)
    out, start = [], 1
    for i in range(files):
        n = base + (1 if i < extra else 0)
        out.append((start, n))
        start += n
    return out


def _pick(rng: np.random.Generator, pool: list[str], n: int,
          weights: list[float] | None = None) -> pa.Array:
    """``n`` strings drawn from ``pool``, as a plain (not dictionary) string array."""
    index = rng.choice(len(pool), size=n, p=weights).astype(np.int32)
    return pc.take(pa.array(pool, pa.string()), pa.array(index))


def _decimal_cents(cents: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """decimal128(18,2) from integer cents: the 16-byte two's-complement values, built in bulk."""
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    mask = None if valid is None else pa.array(~valid)
    array = pa.Array.from_buffers(pa.decimal128(18, 2), len(cents),
                                  [None, pa.py_buffer(words.tobytes())])
    return array if mask is None else pc.if_else(mask, pa.scalar(None, array.type), array)


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4 (RFC 9562 section 5.4)
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # variant 10xx
    storage = pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(raw.tobytes())])
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def generate_file(index: int, first_id: int, rows: int) -> pa.Table:
    """The ``index``-th file's orders: ids ``first_id .. first_id + rows - 1``.

    :param index: file number (selects the file's own random stream).
    :param first_id: the first order_id.
    :param rows: rows in the file.
    """
    rng = np.random.default_rng([SEED, GENERATOR_VERSION, index])
    names = pc.binary_join_element_wise(_pick(rng, _FIRST_NAMES, rows),
                                        _pick(rng, _LAST_NAMES, rows), " ")
    cents = np.round(rng.lognormal(mean=8.5, sigma=1.3, size=rows)).astype(np.int64) + 1
    status = _pick(rng, _STATUSES, rows, _STATUS_WEIGHTS)
    refunded = pc.equal(status, "returned").to_numpy(zero_copy_only=False)
    cents = np.where(refunded, -cents, cents)
    cents[rng.random(rows) < 0.0005] = 9_999_999_999_999_999  # the decimal(18,2) maximum
    has_discount = rng.random(rows) < 0.45
    discount = (cents // 10) * has_discount
    ordered = _EPOCH_START_US + rng.integers(0, _EPOCH_SPAN_US, size=rows, dtype=np.int64)
    shipped = ordered + rng.integers(3_600_000_000, 10 * 86_400_000_000, size=rows,
                                     dtype=np.int64)
    not_shipped = pc.is_in(status, pa.array(["placed", "paid", "cancelled"])).to_numpy(
        zero_copy_only=False)
    note_valid = rng.random(rows) < 0.30
    notes = pc.if_else(pa.array(note_valid), _pick(rng, _NOTES, rows), pa.scalar(None, pa.string()))
    ts = pa.timestamp("us", tz=TIME_ZONE)
    columns = [
        pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        _uuids(rng, rows),
        pa.array(rng.integers(1, 250_001, size=rows, dtype=np.int32)),
        names,
        _pick(rng, _COUNTRIES, rows),
        status,
        pa.array(rng.integers(1, 41, size=rows, dtype=np.int16)),
        _decimal_cents(cents, None),
        _decimal_cents(discount, has_discount),
        pa.array(ordered, ts),
        pa.array(shipped, ts, mask=not_shipped),
        notes,
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _row_group_rows(rows_in_file: int) -> int:
    """Several row groups per file, at most MAX_ROW_GROUP_ROWS each."""
    return max(1, min(MAX_ROW_GROUP_ROWS, -(-rows_in_file // 4)))


def ensure_dataset(cache_dir: str | os.PathLike[str], rows: int, *,
                   log=None) -> list[Path]:
    """The Parquet files of a ``rows``-row dataset under ``cache_dir``, generated if missing.

    A finished dataset has a ``manifest.json``; it is built in a temporary sibling
    directory and renamed into place, so an interrupted run never leaves a partial
    dataset that looks complete.

    :param cache_dir: the cache root (see :func:`default_cache_dir`).
    :param rows: total rows (at least 1).
    :param log: optional ``callable(str)`` for progress lines.
    :returns: the files, in order.
    """
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    root = Path(cache_dir)
    final = root / f"v{GENERATOR_VERSION}-{rows}"
    manifest = final / "manifest.json"
    if manifest.exists():
        names = json.loads(manifest.read_text())["files"]
        files = [final / name for name in names]
        if all(f.exists() for f in files):
            return files
        shutil.rmtree(final)  # damaged: rebuild
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".v{GENERATOR_VERSION}-{rows}-", dir=root))
    try:
        names = []
        for index, (first_id, n) in enumerate(_files_for(rows)):
            started = time.monotonic()
            table = generate_file(index, first_id, n)
            name = f"orders-{index:02d}.parquet"
            pq.write_table(table, work / name, row_group_size=_row_group_rows(n),
                           compression="zstd")
            names.append(name)
            if log:
                log(f"  wrote {name}: {n:,} rows in {time.monotonic() - started:.1f} s")
        (work / "manifest.json").write_text(json.dumps(
            {"generator_version": GENERATOR_VERSION, "rows": rows, "files": names}))
        try:
            work.rename(final)
        except OSError:  # another run finished the same dataset first
            if not (final / "manifest.json").exists():
                raise
            shutil.rmtree(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return [final / name for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate (or find cached) demo orders.")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cache-dir", default=None, help="default: " + str(default_cache_dir()))
    args = parser.parse_args(argv)
    files = ensure_dataset(args.cache_dir or default_cache_dir(), args.rows, log=print)
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
