"""Split a file source into shards for ``AzureSqlBulkLoadOperator.partial(...).expand(...)``.

Each shard is a list of files; together the shards hold every file of the source exactly
once, and each mapped task loads its shard under its own load id (its map index is part
of it), so retries of one shard resume that shard only. Files are dealt largest first to
the lightest shard, so shards carry similar byte counts; within a shard, files keep the
source's order. The split is by whole file: one large file is one shard's work.

>>> split_files(["a.parquet", "b.parquet", "c.parquet"], 2,
...             size=lambda f: {"a.parquet": 30, "b.parquet": 20, "c.parquet": 15}[f])
[['a.parquet'], ['b.parquet', 'c.parquet']]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from engine.errors import ConfigurationError
from engine.sources import open_source

__all__ = ["split_files", "split_source"]


def split_files(files: Sequence[str], shards: int,
                size: Callable[[str], int] = os.path.getsize) -> list[list[str]]:
    """Deal ``files`` into at most ``shards`` non-empty lists of similar total size.

    :param files: the files, in load order.
    :param shards: how many shards at most (fewer when there are fewer files).
    :param size: a file's weight (default: its size in bytes).
    :raises ConfigurationError: ``shards`` below 1, or no files.
    """
    if shards < 1:
        raise ConfigurationError(f"shards must be at least 1, not {shards}")
    if not files:
        raise ConfigurationError("no files to split into shards")
    order = {f: i for i, f in enumerate(files)}
    count = min(shards, len(order))
    loads = [0] * count
    dealt: list[list[str]] = [[] for _ in range(count)]
    for f in sorted(order, key=lambda f: (-size(f), order[f])):
        # ties go to the shard with fewer files, so no shard stays empty (empty files too)
        lightest = min(range(count), key=lambda i: (loads[i], len(dealt[i]), i))
        dealt[lightest].append(f)
        loads[lightest] += size(f)
    return [sorted(shard, key=order.__getitem__) for shard in dealt]


def split_source(source: Any, shards: int) -> list[list[str]]:
    """Expand a path, directory, glob or list of them and split its files into shards.

    :param source: what ``engine.transfer`` would load (files only, not in-memory data).
    :param shards: how many shards at most.

    >>> split_source("/data/orders/*.parquet", 4)  # doctest: +SKIP
    [['/data/orders/part-0.parquet', ...], ...]
    """
    return split_files(open_source(source).files, shards)
