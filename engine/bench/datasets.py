"""The benchmark datasets, generated deterministically (seeded, vectorised), and the batch
stream ``azsql-bulk bench`` loads from them.

- ``narrow``: 4 columns: int64 id, float64, a short string, a timestamp (datetime2).
- ``wide``: 30 columns: ints of every width, floats, decimal128 (18,4) and (38,10), bool,
  nvarchar(200)-sized text, dates, timestamps with and without time zone
  (datetimeoffset), with NULLs in every other column.
- ``text``: text-heavy: an id and three unicode strings (Latin accents, CJK, emoji) of
  100-700 characters, unique per row (a random ASCII prefix). At most 1,339 UTF-8 bytes,
  below the 1,600 UTF-16 units past which the engine sends text in pieces.
- ``typed``: 8 columns of the types parameter arrays send as exact text: an int64 id,
  decimal128 (18,4), (38,10) and (9,2), two uuids and two timestamps with a time zone,
  NULLs in one of each kind.
- ``orders``: 13 columns shaped like an order-lines fact table: ids, a customer, dates,
  a status and a currency from small sets, quantities, decimal prices and totals, a
  country code, a UTC timestamp and an optional note (NULL in most rows).

The same ``(dataset, rows, start)`` always gives the same rows; ``VERSION`` is part of
the seed (bump it when a generator changes). ``benchmarks/bench_data.py`` caches these
tables as Parquet for the benchmark scripts.

A benchmark step must measure the load, not the generator: :func:`pool` makes one
table once, and :func:`stream` deals batches of exactly ``rows_per_batch`` rows out of it
(zero-copy slices, wrapping around), for a number of rows or until a deadline.

>>> narrow(3).column_names
['id', 'amount', 'code', 'ts']
>>> [b.num_rows for b in stream(narrow(5), 2, rows=7)]
[2, 2, 2, 1]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DATASETS", "VERSION", "narrow", "orders", "pool", "stream", "table", "text",
           "typed", "wide"]

VERSION = 1
DATASETS = ("narrow", "wide", "text", "typed", "orders")  # append only: the index seeds each
_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds


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


_STATUSES = ("placed", "paid", "packed", "shipped", "delivered", "returned", "cancelled")
_CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "JPY")
_COUNTRIES = ("DE", "FR", "NL", "US", "GB", "SE", "CH", "JP", "ES", "IT", "PL", "CA")


def orders(rows: int, start: int = 0) -> pa.Table:
    """13 columns of order lines: order_line_id, order_id, customer_id, order_date,
    status, quantity, unit_price and line_total (decimal(18,2)), discount_pct
    (decimal(5,2)), currency, ship_country, created_at (UTC) and note (mostly NULL)."""
    rng = _rng("orders", start)
    ids = np.arange(start, start + rows, dtype=np.int64)
    quantity = rng.integers(1, 50, size=rows, dtype=np.int64)
    cents = rng.integers(99, 250_000, size=rows, dtype=np.int64)
    discount = rng.choice(np.array([0, 0, 0, 500, 1000, 1500, 2500], dtype=np.int64), rows)
    total = quantity * cents * (10_000 - discount) // 10_000  # cents, discount in 1/100 %
    notes = _pool(rng, 256, 10, 80, "abcdefghijklmnopqrstuvwxyz ,.!?0123456789")

    def pick(values: tuple[str, ...]) -> pa.Array:
        return pa.array(values).take(pa.array(rng.integers(0, len(values), size=rows)))

    return pa.table({
        "order_line_id": pa.array(ids),
        "order_id": pa.array(ids // 4 + 10_000_000),
        "customer_id": pa.array(rng.integers(1, 2_000_000, size=rows, dtype=np.int32)),
        "order_date": pa.array(rng.integers(19_000, 20_500, size=rows).astype(np.int32))
        .cast(pa.date32()),
        "status": pick(_STATUSES),
        "quantity": pa.array(quantity.astype(np.int16)),
        "unit_price": _scaled(cents, 18, 2),
        "discount_pct": _scaled(discount, 5, 2),
        "line_total": _scaled(total, 18, 2),
        "currency": pick(_CURRENCIES),
        "ship_country": pick(_COUNTRIES),
        "created_at": _timestamps(rng, rows, "UTC"),
        "note": _with_nulls(rng, notes.take(pa.array(rng.integers(0, len(notes), size=rows))),
                            0.85),
    })


def _scaled(unscaled: np.ndarray, precision: int, scale: int) -> pa.Array:
    """decimal128 values from their unscaled int64 integers."""
    slots = np.empty((len(unscaled), 2), dtype=np.int64)
    slots[:, 0], slots[:, 1] = unscaled, unscaled >> 63
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(unscaled),
                                 [None, pa.py_buffer(slots.tobytes())])


_MAKERS: dict[str, Callable[[int, int], pa.Table]] = {
    "narrow": narrow, "wide": wide, "text": text, "typed": typed, "orders": orders}


def table(name: str, rows: int, start: int = 0) -> pa.Table:
    """``rows`` rows of dataset ``name`` (deterministic for a given ``start``).

    :param name: one of :data:`DATASETS`.
    :param rows: how many rows.
    :param start: the first row's index (ids start there; the seed depends on it).
    :raises ValueError: an unknown dataset.
    """
    if name not in _MAKERS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {name!r}")
    return _MAKERS[name](rows, start)


def pool(name: str, rows: int) -> pa.RecordBatch:
    """``rows`` rows of dataset ``name`` as one contiguous record batch, to deal from.

    :param name: one of :data:`DATASETS`.
    :param rows: how many rows (at least 1).
    """
    return table(name, max(1, rows)).combine_chunks().to_batches()[0]


def stream(source: pa.Table | pa.RecordBatch, rows_per_batch: int, *, rows: int | None = None,
           until: float | Callable[[], float | None] | None = None,
           cancel: threading.Event | None = None,
           clock: Callable[[], float] = time.monotonic) -> Iterator[pa.RecordBatch]:
    """Batches of ``rows_per_batch`` rows dealt from ``source`` (wrapping around), until
    ``rows`` rows were dealt, ``clock()`` reaches ``until``, or ``cancel`` is set.

    :param source: the rows to deal from (at least one).
    :param rows_per_batch: rows per batch (the last batch of ``rows`` may be shorter).
    :param rows: stop after this many rows (None: no limit).
    :param until: stop before the first batch that would start at or after this
        ``clock()`` time, or a function giving that time (None while the deadline is not
        known yet: a step's clock starts at its first commit). One of ``rows`` and
        ``until`` is needed.
    :param cancel: stop when it is set.
    :param clock: the clock ``until`` is on.
    :raises ValueError: no rows in ``source``, or neither ``rows`` nor ``until``.
    """
    if rows is None and until is None:
        raise ValueError("stream() needs rows or until, else it never ends")
    whole = source.combine_chunks().to_batches()[0] if isinstance(source, pa.Table) else source
    if whole.num_rows == 0:
        raise ValueError("stream() needs at least one row to deal from")
    def before_deadline() -> bool:
        deadline = until() if callable(until) else until
        return deadline is None or clock() < deadline

    dealt, offset = 0, 0
    while (rows is None or dealt < rows) and before_deadline() \
            and not (cancel is not None and cancel.is_set()):
        want = rows_per_batch if rows is None else min(rows_per_batch, rows - dealt)
        parts = []
        need = want
        while need:
            take = min(need, whole.num_rows - offset)
            parts.append(whole.slice(offset, take))
            offset = (offset + take) % whole.num_rows
            need -= take
        yield parts[0] if len(parts) == 1 else pa.concat_batches(parts)
        dealt += want
