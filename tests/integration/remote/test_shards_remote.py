"""Shards of objects in Blob Storage (Azurite, OAuth) loaded one by one into the SQL emulator.

The split lists the objects and reads their Parquet footers once; loading a shard lists
nothing (it asks storage for each of its objects' properties, to compare the version
with the one the split saw) and reads only its row groups. Rows are read back through
pyodbc and compared exactly; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from loads import check_exact, connection_options, journal_rows, rows_table

from engine import CredentialOptions, Target, TransferOptions, transfer
from engine.errors import ConfigurationError, ObjectChangedError, TransferCancelled
from engine.remote import RemoteFiles, StorageOptions
from engine.shards import split_source
from engine.sources import SourceOptions, open_source

pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration

MI = CredentialOptions(kind="managed-identity")
GROUP = 2_000  # rows per row group


def put_parquet(azurite, container: str, objects: dict[str, tuple[int, int]]) -> None:
    """Upload ``name -> (rows, first id)`` as Parquet with GROUP-row groups."""
    from azure.identity import ManagedIdentityCredential
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient(azurite.endpoint, credential=ManagedIdentityCredential())
    if not client.get_container_client(container).exists():
        client.create_container(container)
    for name, (rows, first) in objects.items():
        out = io.BytesIO()
        pq.write_table(rows_table(rows, first), out, row_group_size=GROUP)
        client.get_blob_client(container, name).upload_blob(out.getvalue(), overwrite=True)


@pytest.fixture
def listings(monkeypatch) -> list[str]:
    """The prefixes RemoteFiles lists (each a List Blobs request), in order."""
    seen: list[str] = []
    real = RemoteFiles._list

    def counting(self, container, uri, prefix, endpoint=""):
        seen.append(prefix)
        return real(self, container, uri, prefix, endpoint)

    monkeypatch.setattr(RemoteFiles, "_list", counting)
    return seen


def test_a_big_object_spreads_over_shards_that_load_exactly(
        azurite, storage_env, emu_proc, reader, listings, monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ENDPOINT", azurite.endpoint_template)
    # one object of 12 row groups, bigger than the two others together
    put_parquet(azurite, "orders", {"d/p-0.parquet": (12 * GROUP, 0),
                                    "d/p-1.parquet": (GROUP, 12 * GROUP),
                                    "d/p-2.parquet": (GROUP, 13 * GROUP)})
    storage = StorageOptions(credential=MI, endpoint=azurite.endpoint_template)
    shards = split_source(azurite.uri("orders", "d/*.parquet"), 4, storage=storage)
    assert listings == ["d/"]  # the glob's one listing, in the splitting call
    shards = json.loads(json.dumps(shards))  # as XCom hands them to the mapped tasks
    assert len(shards) == 4
    big = [p for s in shards for p in s["parts"] if p["path"].endswith("p-0.parquet")]
    assert len(big) >= 3 and all(p["etag"] and p["file_row_groups"] == 12 for p in big)

    table = f"dbo.remote_shards_{os.getpid()}"
    target = Target(connection_options(emu_proc, MI), table)
    read = SourceOptions(rows_per_batch=1_000)
    results = [transfer(shard, target, TransferOptions(workers=1), source_options=read)
               for shard in shards]
    assert listings == ["d/"]  # loading the shards listed nothing
    total = 14 * GROUP
    assert sum(r.rows for r in results) == total
    assert [r.rows for r in results] == [sum(p.get("rows", 0) for p in s["parts"])
                                         for s in shards]
    check_exact(reader, table, total)
    # each shard its own load: its own id, its own journal rows
    assert len({r.load_id for r in results}) == 4
    assert [journal_rows(reader, r.load_id)[1] for r in results] == [r.rows for r in results]
    again = transfer(shards[0], target, TransferOptions(workers=1), source_options=read)
    assert (again.load_id, again.rows, again.batches_skipped) == (
        results[0].load_id, 0, results[0].batches)
    check_exact(reader, table, total)


def test_an_object_rewritten_after_the_split_is_refused(azurite, storage_env):
    put_parquet(azurite, "rewritten", {"d/p.parquet": (4 * GROUP, 0)})
    storage = StorageOptions(credential=MI, endpoint=azurite.endpoint_template)
    shards = split_source(azurite.uri("rewritten", "d/p.parquet"), 2, storage=storage)
    assert len(shards) == 2
    # the same row groups, other rows: the object's version (ETag) tells
    put_parquet(azurite, "rewritten", {"d/p.parquet": (4 * GROUP, 100)})
    with pytest.raises(ObjectChangedError, match=r"p.parquet \(shard 1/2, part 0\) changed "
                                                 r"since the source was split \(.*etag was"):
        open_source(shards[1], storage=storage)


def test_a_stopped_shard_resumes_where_it_stopped(azurite, storage_env, emu_proc, reader,
                                                 monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ENDPOINT", azurite.endpoint_template)
    put_parquet(azurite, "resumed", {"d/p.parquet": (8 * GROUP, 0)})
    storage = StorageOptions(credential=MI, endpoint=azurite.endpoint_template)
    first, second = split_source(azurite.uri("resumed", "d/p.parquet"), 2, storage=storage)
    table = f"dbo.remote_shard_resume_{os.getpid()}"
    target = Target(connection_options(emu_proc, MI), table)
    read = SourceOptions(rows_per_batch=500)
    stop = threading.Event()
    options = TransferOptions(workers=1, progress=lambda p: p.batches and stop.set())
    with pytest.raises(TransferCancelled) as info:  # stops after its first committed batch
        transfer(second, target, options, source_options=read, cancel=stop)
    done = info.value.rows_committed
    assert 0 < done < second["parts"][0]["rows"]
    rest = transfer(second, target, TransferOptions(workers=1), source_options=read)
    assert rest.rows == second["parts"][0]["rows"] - done and rest.batches_skipped == done // 500
    whole = transfer(first, target, TransferOptions(workers=1), source_options=read)
    assert whole.rows == first["parts"][0]["rows"]
    check_exact(reader, table, 8 * GROUP)


def test_the_cli_splits_into_files_that_load_on_their_own(
        azurite, storage_env, emu_proc, reader, tmp_path):
    put_parquet(azurite, "cli", {"d/p-0.parquet": (6 * GROUP, 0), "d/p-1.parquet": (GROUP,
                                                                                  6 * GROUP)})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZSQL_BULK_")}
    env.update(storage_env, AZSQL_BULK_AUTH="managed-identity",
               AZSQL_BULK_STORAGE_ENDPOINT=azurite.endpoint_template)
    cli = str(Path(sys.executable).with_name("azsql-bulk"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([cli, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    files = run("split", azurite.uri("cli", "d/"), "--shards", "3", "--out",
                str(tmp_path / "shards")).stdout.split()
    assert [Path(f).name for f in files] == ["shard-000.json", "shard-001.json",
                                             "shard-002.json"]
    table = f"dbo.remote_cli_shards_{os.getpid()}"
    connection = ["--table", table, "--rows-per-batch", "1000",
                  "--server", f"{emu_proc.tds_host},{emu_proc.tds_port}",
                  "--database", emu_proc.database, "--encrypt", "strict",
                  "--server-certificate", emu_proc.server_cert,
                  "--host-name-in-certificate", "localhost", "--login-timeout", "15"]
    loaded = 0
    for path in files:
        rows = sum(p["rows"] for p in json.loads(Path(path).read_text())["parts"])
        assert f"loaded {rows:,} rows" in run("load", path, *connection).stdout
        loaded += rows
    assert loaded == 7 * GROUP
    check_exact(reader, table, 7 * GROUP)


def test_storage_listings_skip_spark_markers_and_name_each_object_once(azurite, storage_env,
                                                                       monkeypatch):
    """A Spark output folder in storage: ``_SUCCESS``, ``_temporary/`` and ``.crc`` objects
    are skipped by a prefix and by a glob, an object named twice is listed once, and an
    object named exactly is read whatever its name."""
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ENDPOINT", azurite.endpoint_template)
    put_parquet(azurite, "spark", {"out/part-0.parquet": (GROUP, 0),
                                   "out/_temporary/0/part-9.parquet": (GROUP, 5 * GROUP),
                                   "out/_x.parquet": (GROUP, 7 * GROUP)})
    from azure.identity import ManagedIdentityCredential
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient(azurite.endpoint, credential=ManagedIdentityCredential())
    for name in ("out/_SUCCESS", "out/.part-0.parquet.crc"):
        client.get_blob_client("spark", name).upload_blob(b"", overwrite=True)
    storage = StorageOptions(credential=MI, endpoint=azurite.endpoint_template)
    part0 = azurite.uri("spark", "out/part-0.parquet")
    for named in ([azurite.uri("spark", "out/")], [azurite.uri("spark", "out/*")],
                  [azurite.uri("spark", "out/**")], [part0, azurite.uri("spark", "out/")]):
        source = open_source(named if len(named) > 1 else named[0], storage=storage)
        assert [f.rsplit("/", 1)[1] for f in source.files] == ["part-0.parquet"], named
        assert source.total_rows == GROUP
    assert open_source(azurite.uri("spark", "out/_x.parquet"), storage=storage).total_rows \
        == GROUP
    with pytest.raises(ConfigurationError, match="names only objects whose names start"):
        open_source(azurite.uri("spark", "out/_*"), storage=storage)
