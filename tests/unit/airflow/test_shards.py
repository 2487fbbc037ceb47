"""Shards for dynamic task mapping: every file exactly once, similar sizes, stable order."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_integration.shards import split_files, split_source
from engine.errors import ConfigurationError


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40),
       st.integers(min_value=1, max_value=10))
def test_shards_partition_the_files_and_keep_their_order(sizes, shards):
    files = [f"f{i:03d}.parquet" for i in range(len(sizes))]
    weight = dict(zip(files, sizes, strict=True)).__getitem__
    dealt = split_files(files, shards, size=weight)
    assert len(dealt) == min(shards, len(files)) and all(dealt)
    assert sorted(f for shard in dealt for f in shard) == files  # each exactly once
    for shard in dealt:
        assert shard == sorted(shard)
    loads = [sum(map(weight, shard)) for shard in dealt]
    # greedy dealing: no shard exceeds the lightest by more than the largest file
    assert max(loads) - min(loads) <= max(sizes)


def test_bad_arguments():
    with pytest.raises(ConfigurationError, match="at least 1"):
        split_files(["a"], 0)
    with pytest.raises(ConfigurationError, match="no files"):
        split_files([], 2)


def test_split_source_expands_a_glob(tmp_path):
    for i in range(5):
        pq.write_table(pa.table({"x": list(range(i * 10, i * 10 + 10))}),
                       tmp_path / f"part-{i}.parquet")
    shards = split_source(str(tmp_path / "*.parquet"), 2)
    assert len(shards) == 2
    assert sorted(f for s in shards for f in s) == sorted(
        str(tmp_path / f"part-{i}.parquet") for i in range(5))
    assert sorted(len(s) for s in shards) == [2, 3]
