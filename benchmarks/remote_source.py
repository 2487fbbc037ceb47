"""Source throughput: the ``wide`` dataset from a local file vs from Azurite (Blob Storage).

Question (issue 11): how much slower is reading a Parquet source from storage than from
local disk, and which library should the engine read storage through? One run, same
data and machine:

- ``engine``: what a load does: ``open_source(...).batches()`` (row groups on demand,
  sliced to ``--rows-per-batch``), from the local file and from an ``abfss://`` URI
  (engine.remote: azure-storage-blob, ranged GETs with ``If-Match``);
- ``reader``: the same Parquet read (``ParquetFile(f, pre_buffer=True).iter_batches``)
  over each library's file object: the engine's, ``pyarrow.fs.AzureFileSystem`` (Arrow's
  C++ Azure SDK) and ``adlfs`` (fsspec; skipped when not installed, ``.[bench]`` has it).

Each is timed reading all 30 columns and a 3-column projection; best of ``--repeat``.
All storage readers talk HTTPS to one Azurite and authenticate with bearer tokens from
the SQL emulator's managed-identity endpoint (the engine and adlfs through Python
azure-identity, pyarrow through its C++ credential chain). ``--load`` also times
``transfer()`` into the emulator from both places (emulator-bound: context only).

Run: ``.venv/bin/python benchmarks/remote_source.py --rows 200000`` (prints JSON lines,
then a table).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_data
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from azurite import running_azurite  # tests/azurite.py: the shared launcher
from support import environment  # tests/support.py

from azsql_emulator.process import EmulatorProcess
from engine import CredentialOptions, Target, TransferOptions, transfer
from engine.connection import ConnectionOptions
from engine.remote import RemoteFiles, StorageOptions
from engine.sources import SourceOptions, open_source

PROJECTION = ["id", "i32", "f64"]
MI = CredentialOptions(kind="managed-identity")


def best(repeat: int, fn: Callable[[], int]) -> tuple[float, int]:
    """Fastest of ``repeat`` runs of ``fn`` (which returns the rows it read)."""
    times, rows = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - start)
    return min(times), rows


def read_file(opener: Callable[[], Any], columns: list[str] | None, batch: int) -> int:
    pf = pq.ParquetFile(opener(), pre_buffer=True)
    return sum(b.num_rows for b in pf.iter_batches(batch_size=batch, columns=columns))


def read_source(source_arg: Any, storage: StorageOptions | None, columns: list[str] | None,
                batch: int) -> int:
    src = open_source(source_arg, SourceOptions(columns=columns, rows_per_batch=batch),
                      storage=storage)
    return sum(b.data.num_rows for b in src.batches())


def adlfs_opener(azurite: Any, name: str) -> Callable[[], Any] | None:
    try:
        import adlfs
        from azure.identity.aio import ManagedIdentityCredential
    except ImportError:
        return None
    fs = adlfs.AzureBlobFileSystem(account_name=azurite.account,
                                   account_host=f"127.0.0.1:{azurite.port}/{azurite.account}",
                                   credential=ManagedIdentityCredential())
    return lambda: fs.open(f"bench/{name}", "rb")


def pyarrow_opener(azurite: Any, name: str) -> Callable[[], Any]:
    import pyarrow.fs as pafs

    authority = f"127.0.0.1:{azurite.port}"
    fs = pafs.AzureFileSystem(account_name=azurite.account, blob_storage_authority=authority,
                              dfs_storage_authority=authority, blob_storage_scheme="https",
                              dfs_storage_scheme="https")
    return lambda: fs.open_input_file(f"bench/{name}")


def load(emu: Any, source: Any, storage: StorageOptions | None, table: str,
         batch: int) -> tuple[float, int]:
    target = Target(ConnectionOptions(
        server=emu.tds_host, port=emu.tds_port, database=emu.database, credential=MI,
        encrypt="strict", server_certificate=emu.server_cert,
        host_name_in_certificate="localhost"), table)
    src = open_source(source, SourceOptions(rows_per_batch=batch), storage=storage)
    result = transfer(src, target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=batch))
    return result.seconds, result.rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rows-per-batch", type=int, default=10_000)
    parser.add_argument("--row-group", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--load", action="store_true",
                        help="also time transfer() into the emulator (emulator-bound)")
    args = parser.parse_args(argv)

    local = bench_data.parquet_path("wide", args.rows, row_group=args.row_group)
    size = local.stat().st_size
    results: list[dict[str, Any]] = []

    def record(what: str, reader: str, columns: str, seconds: float, rows: int) -> None:
        row = {"what": what, "reader": reader, "columns": columns, "rows": rows,
               "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds),
               "mb_per_second": round(size / seconds / 1e6, 1) if columns == "all" else None}
        results.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory(prefix="azsql-bench-azurite-") as tmp, \
            EmulatorProcess() as emu, running_azurite(Path(tmp)) as azurite:
        bundle = Path(tmp) / "ca.pem"
        bundle.write_bytes(Path(emu.ca_cert).read_bytes() + azurite.cert.read_bytes())
        with environment({**emu.env, "REQUESTS_CA_BUNDLE": str(bundle),
                          "SSL_CERT_FILE": str(bundle)}):
            from azure.identity import ManagedIdentityCredential
            from azure.storage.blob import BlobServiceClient

            blobs = BlobServiceClient(azurite.endpoint, credential=ManagedIdentityCredential())
            blobs.create_container("bench")
            with local.open("rb") as data:
                blobs.get_blob_client("bench", local.name).upload_blob(
                    data, overwrite=True, max_concurrency=4)
            uri = azurite.uri("bench", local.name)
            storage = StorageOptions(credential=MI, endpoint=azurite.endpoint_template)
            remote = RemoteFiles(storage)
            canonical = remote.object(remote.expand(uri, {".parquet"})[0]).uri

            b = args.rows_per_batch
            for label, columns in (("all", None), ("3", PROJECTION)):
                record("engine source", "local file", label,
                       *best(args.repeat, lambda c=columns: read_source(str(local), None, c, b)))
                record("engine source", "engine (azure-storage-blob)", label,
                       *best(args.repeat, lambda c=columns: read_source(uri, storage, c, b)))
                openers: list[tuple[str, Callable[[], Any] | None]] = [
                    ("local file", lambda: str(local)),
                    ("engine (azure-storage-blob)", lambda: remote.open(canonical)),
                    ("pyarrow.fs.AzureFileSystem", pyarrow_opener(azurite, local.name)),
                    ("adlfs", adlfs_opener(azurite, local.name)),
                ]
                for name, opener in openers:
                    if opener is None:
                        print(json.dumps({"reader": name, "skipped": "not installed"}))
                        continue
                    record("parquet reader", name, label, *best(
                        args.repeat, lambda o=opener, c=columns: read_file(o, c, b)))
            if args.load:
                suffix = os.getpid()
                record("transfer() into the emulator", "local file", "all", *load(
                    emu, str(local), None, f"dbo.bench_local_{suffix}", args.rows_per_batch))
                record("transfer() into the emulator", "engine (azure-storage-blob)", "all",
                       *load(emu, uri, storage, f"dbo.bench_remote_{suffix}",
                             args.rows_per_batch))
            remote.close()

    print(f"\nwide, {args.rows:,} rows, {size / 1e6:.1f} MB Parquet, row groups of "
          f"{args.row_group:,}, best of {args.repeat}")
    print(f"{'what':30} {'reader':30} {'cols':>4} {'rows/s':>12} {'MB/s':>7}")
    for r in results:
        mbs = "" if r["mb_per_second"] is None else f"{r['mb_per_second']:.1f}"
        print(f"{r['what']:30} {r['reader']:30} {r['columns']:>4} "
              f"{r['rows_per_second']:>12,} {mbs:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
