"""``azsql-bulk load --dry-run``: what a load would do; no connection, nothing written.

It opens the source (to count files, rows and batches and to plan the SQL types), and
derives the default load id exactly as the engine will.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import pyarrow as pa
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from engine.batch_size import COLUMNSTORE_ROWS_PER_BATCH, is_chosen
from engine.cli.arguments import EXIT_OK
from engine.cli.connection_args import connection_options, credential_options
from engine.cli.console import emit_json, say
from engine.cli.load_args import transfer_options
from engine.journal import default_load_id
from engine.options import Target
from engine.plan import create_table_sql, plan_table
from engine.remote import storage_for
from engine.remote_uri import is_remote
from engine.source_files import FilePart
from engine.sources import Source, SourceOptions, file_format, open_source

__all__ = ["dry_run"]

_NO_LOAD_ID = "(derived from the files and the target: give --server and --database to see it)"


def _file_layout(part: FilePart, rows_per_batch: int) -> tuple[int | None, int | None, str]:
    """(rows, batches, units) of one file (or a shard's row groups of it) from its metadata;
    None when only reading tells."""
    path, fmt = part.path, part.fmt
    if fmt == "parquet":
        meta = pq.ParquetFile(path).metadata
        start, stop = part.row_groups or (0, meta.num_row_groups)
        sizes = [meta.row_group(i).num_rows for i in range(start, stop)]
        groups = (f"{len(sizes)} row group(s)" if part.row_groups is None
                  else f"row groups {start}-{stop - 1} of {meta.num_row_groups}")
        return sum(sizes), sum(math.ceil(n / rows_per_batch) for n in sizes), groups
    if fmt == "ipc":
        with pa.memory_map(path) as mm:
            try:
                reader = paipc.open_file(mm)
            except pa.ArrowInvalid:
                return None, None, "IPC stream"
            sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        return (sum(sizes), sum(math.ceil(n / rows_per_batch) for n in sizes),
                f"{len(sizes)} record batch(es)")
    return None, None, "CSV"


def _part_bytes(part: FilePart) -> int:
    """The file's size, or for a shard's row groups their compressed size."""
    if part.row_groups is None:
        return os.path.getsize(part.path)
    meta = pq.ParquetFile(part.path).metadata
    return sum(meta.row_group(i).column(c).total_compressed_size
               for i in range(*part.row_groups) for c in range(meta.num_columns))


def _megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:,.1f}"


def _files(source: Source, read: SourceOptions) -> list[dict[str, Any]]:
    """Per file: path, format, rows, batches, bytes and units (row groups...)."""
    files = []
    counted: dict[str, list[int]] | None = None  # rows per batch of each file, read once
    parts = source.parts or tuple(FilePart(p, file_format(p, read.format)) for p in source.files)
    for part in parts:
        path, fmt = part.path, part.fmt
        remote = is_remote(path)
        if remote:  # objects in storage: count by streaming them (still writes nothing)
            rows, batches, units = None, None, "object"
        else:
            rows, batches, units = _file_layout(part, read.rows_per_batch)
        if rows is None:  # CSV and IPC streams, objects: count by reading (all in one pass)
            if counted is None:
                counted = {}
                for b in source.batches():
                    counted.setdefault(b.location.source, []).append(b.data.num_rows)
            sizes = [n for where, found in counted.items() for n in found
                     if where == path or (remote and where.startswith(path + "@"))]
            rows, batches = sum(sizes), len(sizes)
        files.append({"path": path, "format": fmt, "rows": rows, "batches": batches,
                      "bytes": None if remote else _part_bytes(part), "units": units})
    return files


def dry_run(args: argparse.Namespace, read: SourceOptions) -> int:
    """Print the plan of the load ``args`` describe; returns the exit code.

    :param args: resolved ``load`` arguments.
    :param read: the source options.
    """
    source = open_source(args.sources, read, storage=storage_for(credential_options(args)))
    sample = source.batches()
    first = next(sample, None)
    sample.close()  # let go of the reader now
    plan = plan_table(source.schema, overrides=dict(args.sql_types),
                      sample=first.data if first is not None else None)
    files = _files(source, read)
    total_rows = sum(f["rows"] for f in files)
    total_batches = sum(f["batches"] for f in files)
    ddl = create_table_sql(plan, args.table)
    load_id = args.load_id
    if load_id is None and args.server and args.database:
        target = Target(connection_options(args, warn=say), args.table)  # nothing connects
        load_id = default_load_id(source.fingerprint, target,
                                  options=transfer_options(args, None), source_options=read)
    rows_per_batch = read.rows_per_batch
    size_note = "" if is_chosen(rows_per_batch) else (
        f" (the default; a table with a clustered columnstore index would raise it to "
        f"{COLUMNSTORE_ROWS_PER_BATCH:,}, which the dry run cannot see)")
    lines = ["dry run: nothing is written and no connection is made", "",
             f"target   {args.server or '(no --server given)'} / "
             f"{args.database or '(no --database)'} / {args.table}",
             f"         mode {args.mode}, create {args.create}, {args.workers} worker(s), "
             f"{rows_per_batch:,} rows per batch{size_note}",
             f"load id  {load_id or _NO_LOAD_ID}",
             f"resume   {'yes: batches already journaled are skipped' if args.resume else 'no'}",
             "", f"source   {len(files)} file(s), {total_rows:,} rows"]
    lines += [f"  {f['path']}  {f['format']}, {f['rows']:,} rows, {_megabytes(f['bytes'])} MB, "
              f"{f['units']}" for f in files]
    lines += ["", "columns  (Arrow type -> SQL type)"]
    width = max(len(c.name) for c in plan.columns)
    lines += [f"  {c.name:<{width}}  {c.arrow_type!s:<28} {c.sql_type.sql()}"
              f"{'' if c.nullable else ' NOT NULL'}{'  (from --sql-type)' if c.overridden else ''}"
              for c in plan.columns]
    lines += ["", "DDL (run only if the table is missing and --create allows it)",
              *("  " + line for line in ddl.splitlines()), "",
              f"batches  {total_batches:,} of at most {rows_per_batch:,} rows "
              "(cut at file and row-group boundaries)"]
    lines += [f"  {f['path']}: {f['batches']:,} batch(es)" for f in files]
    print("\n".join(lines), flush=True)
    if args.json:
        emit_json({"status": "dry_run", "exit_code": EXIT_OK, "table": args.table,
                   "load_id": load_id, "files": files, "rows": total_rows,
                   "batches": total_batches, "rows_per_batch": int(rows_per_batch),
                   "rows_per_batch_chosen": is_chosen(rows_per_batch),
                   "columns": [{"name": c.name, "arrow_type": str(c.arrow_type),
                                "sql_type": c.sql_type.sql(), "nullable": c.nullable}
                               for c in plan.columns], "ddl": ddl})
    return EXIT_OK
