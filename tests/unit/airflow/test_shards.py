"""The DAG-facing split: JSON shards that the operator's engine load reads exactly."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_integration.shards import SplitSourceError, describe_shard, split_source
from engine.errors import ConfigurationError
from engine.sources import open_source


def test_split_source_expands_a_glob_and_each_shard_loads_its_rows(tmp_path):
    for i in range(5):
        pq.write_table(pa.table({"x": list(range(i * 10, i * 10 + 10))}),
                       tmp_path / f"part-{i}.parquet")
    shards = split_source(str(tmp_path / "*.parquet"), 2)
    assert len(shards) == 2
    # XCom stores JSON: a shard survives the round trip and still opens
    shards = json.loads(json.dumps(shards))
    assert sorted(p["path"] for s in shards for p in s["parts"]) == sorted(
        str(tmp_path / f"part-{i}.parquet") for i in range(5))
    assert sorted(len(s["parts"]) for s in shards) == [2, 3]
    rows = sorted(x for s in shards for b in open_source(s).batches()
                  for x in b.data.column("x").to_pylist())
    assert rows == list(range(50))
    assert describe_shard(shards[0]).startswith("shard 0 of 2 (")


def test_a_source_without_files_fails_without_retries(tmp_path):
    with pytest.raises(SplitSourceError, match="no files match") as info:
        split_source(str(tmp_path / "2026-01-01" / "*.parquet"), 4)
    # Airflow fails the task at once; engine callers still see a ConfigurationError
    assert isinstance(info.value, AirflowFailException)
    assert isinstance(info.value, ConfigurationError)
    with pytest.raises(SplitSourceError, match="at least 1"):
        split_source(str(tmp_path), 0)


def test_the_split_reads_storage_with_the_connections_identity(monkeypatch, tmp_path):
    import airflow_integration.shards as shards

    monkeypatch.setenv("AIRFLOW_CONN_AZSQL_SPLIT", '{"conn_type": "azure_sql_bulk", "host": '
                       '"srv", "schema": "db", "extra": {"auth": "managed_identity", '
                       '"managed_identity_client_id": "mi-client"}}')
    seen = {}
    real = shards.split_into_shards

    def spy(source, n, **kwargs):
        seen.update(kwargs)
        return real(source, n, **kwargs)

    monkeypatch.setattr(shards, "split_into_shards", spy)
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "a.parquet")
    assert len(split_source(str(tmp_path / "a.parquet"), 2, conn_id="azsql_split")) == 1
    credential = seen["storage"].credential
    assert (credential.kind, credential.client_id) == ("managed-identity", "mi-client")
