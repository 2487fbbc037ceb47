"""Sources in Blob Storage (Azurite over HTTPS with OAuth) loaded into the SQL emulator.

Every storage request carries a bearer token that azure-identity's
ManagedIdentityCredential got from the SQL emulator's managed-identity endpoint, the same
identity that logs in to the database. Rows are read back through pyodbc and compared
exactly; nothing is mocked.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
import pytest
from loads import check_exact, connection_options, journal_rows, rows_table
from support import environment

from engine import CredentialError, CredentialOptions, Target, TransferOptions, transfer
from engine.errors import ConfigurationError, ObjectChangedError, TransferError
from engine.remote import StorageOptions
from engine.sources import Source, SourceOptions, open_source

pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration

ACCOUNT = "devstoreaccount1"  # Azurite's built-in account
MI = CredentialOptions(kind="managed-identity")
PARTITIONS = [("eu", "2026-01-01"), ("eu", "2026-01-02"), ("us", "2026-01-01")]
ROWS_PER_FILE = 6_000


def service(azurite):
    """A Blob client for uploads, with the same managed identity (no key, no SAS)."""
    from azure.identity import ManagedIdentityCredential
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(azurite.endpoint, credential=ManagedIdentityCredential())


def upload(client, container: str, name: str, data: bytes) -> str:
    blob = client.get_blob_client(container, name)
    return str(blob.upload_blob(data, overwrite=True)["etag"]).strip('"')


def parquet_bytes(table: pa.Table, row_group_size: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group_size)
    return out.getvalue()


@pytest.fixture(scope="module")
def hive_dataset(azurite, emu_proc, ca_bundle):
    """sales/region=../day=../part-0.parquet: 3 partitions, 3 row groups each, ids 0..17,999.

    The partition keys live in the paths only (as Spark and pyarrow write them).
    """
    with environment(dict(emu_proc.env, REQUESTS_CA_BUNDLE=str(ca_bundle))):
        client = service(azurite)
        client.create_container("sales")
        etags = {}
        for i, (region, day) in enumerate(PARTITIONS):
            name = f"sales/region={region}/day={day}/part-0.parquet"
            data = parquet_bytes(rows_table(ROWS_PER_FILE, i * ROWS_PER_FILE), 2_000)
            etags[name] = upload(client, "sales", name, data)
        upload(client, "sales", "sales/_SUCCESS", b"")  # what Spark leaves; not data
    return etags


def mi_target(emu_proc, table: str) -> Target:
    return Target(connection_options(emu_proc, MI), table)


def storage(azurite) -> StorageOptions:
    return StorageOptions(credential=MI, endpoint=azurite.endpoint_template)


# -- loading ------------------------------------------------------------------------------------

def test_hive_dataset_loads_exactly_once_with_the_same_identity(
        azurite, hive_dataset, storage_env, emu_proc, reader):
    total = ROWS_PER_FILE * len(PARTITIONS)
    source = open_source(azurite.uri("sales", "sales/"), SourceOptions(rows_per_batch=1_500),
                         storage=storage(azurite))
    # listing: the three Parquet objects in name order, not _SUCCESS
    assert [f.split(f"@{ACCOUNT}/", 1)[1] for f in source.files] == list(hive_dataset)
    assert source.total_rows == total
    # ids carry the object's URI and the ETag storage reports for it
    ids = [b.batch_id for b in source.batches()]
    assert len(ids) == len(set(ids)) == len(PARTITIONS) * 3 * 2  # 2,000-row groups / 1,500
    for name, etag in hive_dataset.items():
        assert sum(i.startswith(f"abfss://sales@{ACCOUNT}/{name}@{etag}#") for i in ids) == 6

    table = f"dbo.remote_hive_{os.getpid()}"
    target = mi_target(emu_proc, table)
    options = TransferOptions(workers=2)
    first = transfer(source, target, options)
    assert (first.rows, first.batches) == (total, 18)
    check_exact(reader, table, total)
    assert journal_rows(reader, first.load_id) == (18, total)

    # reopening the same objects gives the same load id: everything is skipped
    again = transfer(open_source(azurite.uri("sales", "sales/**/*.parquet"),
                                 SourceOptions(rows_per_batch=1_500), storage=storage(azurite)),
                     target, options)
    assert again.load_id == first.load_id
    assert (again.rows, again.batches_skipped) == (0, 18)
    check_exact(reader, table, total)


def test_transfer_takes_the_uri_and_the_identity_from_the_environment(
        azurite, hive_dataset, storage_env, emu_proc, reader, monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_AUTH", "managed-identity")
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ENDPOINT", azurite.endpoint_template)
    table = f"dbo.remote_env_{os.getpid()}"
    uri = f"abfss://sales@{ACCOUNT}/sales/region=eu/*/*.parquet"
    result = transfer(uri, mi_target(emu_proc, table), TransferOptions(),
                      source_options=SourceOptions(rows_per_batch=2_000))
    assert (result.rows, result.batches) == (2 * ROWS_PER_FILE, 6)
    check_exact(reader, table, 2 * ROWS_PER_FILE)


def test_cli_loads_an_abfss_uri(azurite, hive_dataset, storage_env, emu_proc, reader):
    table = f"dbo.remote_cli_{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZSQL_BULK_")}
    env.update(storage_env, AZSQL_BULK_AUTH="managed-identity",
               AZSQL_BULK_STORAGE_ENDPOINT=azurite.endpoint_template)
    cli = str(Path(sys.executable).with_name("azsql-bulk"))
    args = ["load", azurite.uri("sales", "sales/"), "--table", table, "--workers", "2",
            "--rows-per-batch", "2000", "--server", f"{emu_proc.tds_host},{emu_proc.tds_port}",
            "--database", emu_proc.database, "--encrypt", "strict",
            "--server-certificate", emu_proc.server_cert,
            "--host-name-in-certificate", "localhost", "--login-timeout", "15"]
    proc = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loaded 18,000 rows" in proc.stdout
    check_exact(reader, table, ROWS_PER_FILE * len(PARTITIONS))

    missing = subprocess.run([cli, *args[:1], azurite.uri("sales", "nothing/here.parquet"),
                              *args[2:]], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
    assert missing.returncode != 0
    assert f"abfss://sales@{ACCOUNT}/nothing/here.parquet does not exist" in missing.stderr

    # --dry-run lists the objects with their rows (streamed, not downloaded to disk) and
    # writes nothing; --auth given only as an argument is also storage's identity
    env.pop("AZSQL_BULK_AUTH")
    dry_table = f"dbo.remote_dry_{os.getpid()}"
    dry = subprocess.run([cli, *args[:3], dry_table, *args[4:], "--auth", "managed-identity",
                          "--dry-run"], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "18,000 rows" in dry.stdout and "? MB" in dry.stdout
    (exists,) = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
                               "WHERE TABLE_NAME = ?", dry_table.split(".")[1]).fetchone()
    assert exists == 0


def test_csv_and_arrow_ipc_objects_read_like_local_files(azurite, storage_env, tmp_path):
    client = service(azurite)
    client.create_container("formats")
    table = rows_table(5_000)
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    upload(client, "formats", "d/rows.csv", sink.getvalue())
    sink = io.BytesIO()
    with paipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=1_000)
    upload(client, "formats", "d/rows.arrow", sink.getvalue())
    for name in ("rows.csv", "rows.arrow"):
        source = open_source(azurite.uri("formats", f"d/{name}"),
                             SourceOptions(rows_per_batch=700, columns=["id", "name"]),
                             storage=storage(azurite))
        got = pa.Table.from_batches([b.data for b in source.batches()])
        assert got.equals(table.select(["id", "name"])), name


# -- failures -----------------------------------------------------------------------------------

def test_missing_container_and_object_are_named(azurite, hive_dataset, storage_env):
    with pytest.raises(ConfigurationError, match=r"container 'nosuch' does not exist in "
                       rf"storage account '{ACCOUNT}'"):
        open_source(azurite.uri("nosuch", "sales/"), storage=storage(azurite))
    with pytest.raises(ConfigurationError, match=r"abfss://sales@devstoreaccount1/sales/"
                       r"region=eu/part-9\.parquet does not exist .*az storage fs file list"):
        open_source(azurite.uri("sales", "sales/region=eu/part-9.parquet"),
                    storage=storage(azurite))
    with pytest.raises(ConfigurationError, match=r"no objects match .*\*\.csv"):
        open_source(azurite.uri("sales", "sales/*/*.csv"), storage=storage(azurite))


def test_a_token_for_another_audience_is_refused(azurite, hive_dataset, storage_env, emu_proc):
    """Azurite checks the audience: a database token cannot read storage."""
    from azure.core.credentials import AccessToken

    class DatabaseToken:
        def get_token(self, *scopes, **kwargs):
            return AccessToken(emu_proc.issue_token(), 2**31 - 1)

    with pytest.raises(CredentialError, match="Storage Blob Data Reader"):
        open_source(azurite.uri("sales", "sales/"), storage=StorageOptions(
            token_credential=DatabaseToken(), endpoint=azurite.endpoint_template))


def test_an_object_replaced_mid_load_stops_the_load_naming_it(
        azurite, storage_env, emu_proc, reader):
    client = service(azurite)
    client.create_container("changing")
    name = "d/part-0.parquet"
    # larger than the footer read (64 KiB), which is fetched once and reused
    old = upload(client, "changing", name, parquet_bytes(rows_table(40_000), 10_000))
    source = open_source(azurite.uri("changing", "d/"), SourceOptions(rows_per_batch=10_000),
                         storage=storage(azurite))
    replaced: list[str] = []

    def units():  # overwrite the object once its first row group has been read
        for n, unit in enumerate(source._units()):
            if n == 1:
                replaced.append(upload(client, "changing", name,
                                       parquet_bytes(rows_table(40_000, 100_000), 10_000)))
            yield unit

    racing = Source(source.schema, source.total_rows, source.fingerprint, source.files,
                    source.rows_per_batch, units)
    table = f"dbo.remote_changed_{os.getpid()}"
    with pytest.raises(TransferError) as caught:
        transfer(racing, mi_target(emu_proc, table), TransferOptions(workers=1))
    error = caught.value
    assert isinstance(error.__cause__, ObjectChangedError)
    assert (f"abfss://changing@{ACCOUNT}/{name} changed while it was being loaded: it was "
            f"version {old} when the load started and is now {replaced[0]}") in str(error)
    # only the first row group, from the old version, was committed
    assert error.rows_committed == 10_000
    check_exact(reader, table, 10_000)


def test_reads_fetch_only_the_projected_columns_of_the_row_groups_read(
        azurite, storage_env, monkeypatch):
    import engine.remote as remote

    client = service(azurite)
    client.create_container("streaming")
    table = rows_table(60_000)
    data = parquet_bytes(table, 10_000)
    upload(client, "streaming", "d/p.parquet", data)
    fetched: list[int] = []
    real = remote._BlobReader._download

    def counting(self, offset, length):
        fetched.append(length)
        return real(self, offset, length)

    monkeypatch.setattr(remote._BlobReader, "_download", counting)
    source = open_source(azurite.uri("streaming", "d/p.parquet"),
                         SourceOptions(columns=["id"], rows_per_batch=10_000),
                         storage=storage(azurite))
    batches = source.batches()
    first = next(batches)  # one row group of one column
    assert first.data.column("id").to_pylist() == list(range(10_000))
    # the footer read (64 KiB) and one of 18 column chunks (6 row groups x 3 columns)
    assert sum(fetched) < 65_536 + len(data) // 9
    rest = sum(b.data.num_rows for b in batches)
    assert rest == 50_000
    assert sum(fetched) < len(data) // 2  # "amount" and "name" never left storage


# -- rejected rows written to storage -----------------------------------------------------------

def test_a_reject_file_in_storage_is_written_with_the_loads_identity(
        azurite, storage_env, emu_proc, reader, monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_STORAGE_ENDPOINT", azurite.endpoint_template)
    client = service(azurite)
    client.create_container("rejects")
    table = f"dbo.remote_rejects_{os.getpid()}"
    reader.execute(f"CREATE TABLE {table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(20) NULL)")
    source = rows_table(4_000)
    ids = source.column("id").to_pylist()
    for at in (5, 1_234, 3_999):
        ids[at] = None  # NULL into NOT NULL: set aside
    source = source.set_column(0, "id", pa.array(ids, pa.int64()))
    uri = f"abfss://rejects@{ACCOUNT}/nightly/orders-rejects.parquet"
    result = transfer(source, mi_target(emu_proc, table),
                      TransferOptions(workers=2, create="never", max_errors=5, reject_file=uri),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert (result.rows, result.rows_rejected) == (3_997, 3)
    data = client.get_blob_client("rejects", "nightly/orders-rejects.parquet") \
        .download_blob().readall()
    written = pq.read_table(io.BytesIO(data)).to_pylist()
    assert [(r["source_row"], r["column_name"], r["error_number"]) for r in written] == [
        (5, "id", 515), (1_234, "id", 515), (3_999, "id", 515)]
    assert {r["load_id"] for r in written} == {result.load_id}
