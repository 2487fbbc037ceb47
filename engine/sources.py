"""Sources: stream any supported input as Arrow batches with deterministic batch ids.

A load is exactly-once because every batch has an id derived from where its rows sit in
the source, so a retried or resumed load can skip what is already journaled. Ids are
built from *units* the source itself defines and that do not move between runs:

- Parquet: file path, row group, slice within the row group;
- Arrow IPC file (Feather v2): file path, record batch, slice;
- Arrow IPC stream and CSV: file path and the row offset within the file (both are read
  sequentially; a CSV is parsed in fixed-size blocks, so offsets repeat exactly);
- in-memory data (pyarrow Table / RecordBatchReader / polars): the row offset.

A shard (:mod:`engine.shards`) reads some row groups of some files with the same ids and
file-relative row numbers as the whole source, so shards never share a batch id.

Slices never cross a unit, and each is at most ``rows_per_batch`` rows, so the same
source and the same ``rows_per_batch`` give the same ids. Changing ``rows_per_batch``
changes the ids: a resumed load must use the value it started with.

>>> import pyarrow as pa
>>> src = open_source(pa.table({"x": range(5)}), SourceOptions(rows_per_batch=2))
>>> [(b.batch_id, b.data.num_rows) for b in src.batches()]
[('mem:0', 2), ('mem:2', 2), ('mem:4', 1)]
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from engine.batch_size import DEFAULT_ROWS_PER_BATCH
from engine.errors import ConfigurationError, SourceError
from engine.remote import RemoteFiles, StorageOptions
from engine.shards import read_shard_file, shard_fingerprint, shard_parts
from engine.source_files import (
    FilePart,
    Unit,
    expand_paths,
    file_format,
    file_rows,
    file_schema,
    file_units,
)

__all__ = ["Source", "SourceBatch", "SourceLocation", "SourceOptions", "open_source"]



@dataclass(frozen=True)
class SourceLocation:
    """Where a batch's rows come from, for ids and for error messages.

    :param source: file path, or ``<memory>``.
    :param unit: row group (Parquet) or record batch (IPC file) index, else None.
    :param first_row: 0-based row of the batch's first row within the file (or the
        in-memory source), when known.
    :param rows: number of rows in the batch.
    """

    source: str
    unit: int | None
    first_row: int | None
    rows: int

    def describe(self, row_in_batch: int | None = None) -> str:
        """``file.parquet, row group 3, row 120345`` (0-based rows, as Arrow counts)."""
        parts = [self.source]
        if self.unit is not None:
            parts.append(f"unit {self.unit}")
        if self.first_row is not None:
            row = self.first_row + (row_in_batch or 0)
            parts.append(f"row {row}" if row_in_batch is not None
                         else f"rows {self.first_row}-{self.first_row + self.rows - 1}")
        return ", ".join(parts)


@dataclass(frozen=True)
class SourceBatch:
    """One slice of at most ``rows_per_batch`` rows, with its deterministic id."""

    batch_id: str
    data: pa.RecordBatch
    location: SourceLocation


@dataclass
class Source:
    """An opened source: its (projected, renamed) schema and a way to stream it.

    :param schema: the Arrow schema after projection and renaming.
    :param total_rows: rows in the source when known without reading it (Parquet and
        IPC metadata, in-memory tables), else None.
    :param _fingerprint: a digest, or a function computing it once when
        :attr:`fingerprint` is first read, of what identifies the source: paths, sizes and
        modification times of files; for a shard, what the shard records about its parts
        (:func:`engine.shards.shard_fingerprint`: ranges, sizes, modification times and
        ETags as the split saw them, which opening it checked); the schema and the
        Arrow buffers of an in-memory table (the same values chunked differently digest
        differently); a random id for a stream (RecordBatchReader, LazyFrame), which
        cannot be read twice, so resuming one needs an explicit ``load_id``. The engine
        derives the default ``load_id`` from it.
    :param files: the files, in load order (empty for in-memory sources).
    """

    schema: pa.Schema
    total_rows: int | None
    _fingerprint: str | Callable[[], str] = field(repr=False)
    files: list[str]
    rows_per_batch: int
    _units: Callable[[], Iterable[Unit]] = field(repr=False)
    _rename: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: a stream (RecordBatchReader, LazyFrame) can be read once; files and tables again
    replayable: bool = True
    _read: bool = field(default=False, repr=False)
    #: the options it was opened with (their columns and renames name the load)
    options: SourceOptions | None = field(default=None, repr=False)
    #: the file parts read, in order: whole files, or a shard's row-group ranges
    parts: tuple[FilePart, ...] = ()

    @property
    def fingerprint(self) -> str:
        """The digest (see above); an in-memory table is hashed on first use only, so a
        load with an explicit ``load_id`` never reads the table twice."""
        if callable(self._fingerprint):
            self._fingerprint = self._fingerprint()
        return self._fingerprint

    def batches(self) -> Generator[SourceBatch, None, None]:
        """Stream the batches, each at most ``rows_per_batch`` rows, in a stable order.

        :raises ConfigurationError: a one-shot stream read a second time.
        """
        if self._read and not self.replayable:
            raise ConfigurationError("this source is a one-shot stream (RecordBatchReader or "
                                     "polars LazyFrame) and was already read; open it again")
        self._read = True
        for source, unit, first_row, stream in self._units():
            yield from _slice_unit(source, unit, first_row, stream, self.rows_per_batch,
                                   self._rename)


def _slice_unit(source: str, unit: int | None, first_row: int | None,
                stream: Iterator[pa.RecordBatch], rows_per_batch: int,
                rename: Mapping[str, str]) -> Iterator[SourceBatch]:
    """Re-slice one unit's batches to exactly ``rows_per_batch`` (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    offset = first_row or 0
    prefix = source if unit is None else f"{source}#{unit}"

    def emit(batch: pa.RecordBatch) -> SourceBatch:
        nonlocal offset
        if rename:
            batch = batch.rename_columns([rename.get(n, n) for n in batch.schema.names])
        slice_id = f"{prefix}:{offset - (first_row or 0)}"  # rows into the unit
        loc = SourceLocation(source, unit, offset if first_row is not None else None,
                             batch.num_rows)
        offset += batch.num_rows
        return SourceBatch(slice_id, batch, loc)

    try:
        for batch in stream:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            while pending_rows >= rows_per_batch:
                table = pa.Table.from_batches(pending)
                head = table.slice(0, rows_per_batch).combine_chunks().to_batches()
                yield emit(head[0] if head else pa.RecordBatch.from_pylist([], table.schema))
                rest = table.slice(rows_per_batch)
                pending = rest.combine_chunks().to_batches() if rest.num_rows else []
                pending_rows = rest.num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        where = f"{source}" + (f", unit {unit}" if unit is not None else "")
        raise SourceError(f"cannot read {where} near row {offset + pending_rows}: {exc}; "
                          "check that the file is complete and in the expected format "
                          "(batches before this point were read normally)") from None
    if pending_rows:
        table = pa.Table.from_batches(pending).combine_chunks()
        yield emit(table.to_batches()[0])


# -- opening --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceOptions:
    """How to read a source: which columns, under which names, in which batches.

    Read only by :func:`open_source`; everything here that changes what a load writes
    (columns, renames) is part of the load's default id.

    :param columns: source columns to load, in this order (default: all).
    :param rename: source column name -> target column name, e.g. ``{"ts": "order_time"}``.
    :param rows_per_batch: rows per batch, so per INSERT transaction and journal row
        (default 50,000: against 10,000 it gave 1.4x the rows/s for 0.9x the client CPU;
        see benchmarks/README.md; 102,400 into a clustered columnstore index, see
        :mod:`engine.batch_size`). Batch ids depend on it, so a resumed load keeps the
        value it started with (the journal records it).
    :param format: ``parquet``, ``csv`` or ``ipc`` when file suffixes do not tell.
    :param csv_schema: explicit CSV column types (default: inferred by Arrow).

    >>> SourceOptions(columns=["id"], rename={"id": "order_id"}).columns
    ('id',)
    """

    columns: tuple[str, ...] | None = field(default=None, metadata={  # see engine.option_spec
        "help": "the source columns to load, in load order (default: all)", "kind": "names",
        "flag": "--column", "metavar": "COL"})
    rename: Mapping[str, str] = field(default_factory=dict, metadata={
        "help": "new names: source column SRC is loaded into target column DST", "kind": "pairs",
        "metavar": "SRC=DST", "pair": ("SOURCE=TARGET column names", "ts=order_time")})
    rows_per_batch: int = field(default=DEFAULT_ROWS_PER_BATCH, metadata={
        "help": "rows per INSERT transaction (by default 102400 into a table with a "
                "clustered columnstore index); a resumed load keeps the value it started "
                "with",
        "kind": "count", "metavar": "N"})
    format: str | None = field(default=None, metadata={"kind": "choice", "choices": (
        "parquet", "csv", "ipc"), "help": "source format when file suffixes do not tell"})
    csv_schema: pa.Schema | None = field(default=None, metadata={"kind": "object",
        "help": "explicit CSV column types (default: inferred)", "not_exposed": dict.fromkeys(
            ("cli", "airflow"), "a pyarrow.Schema is neither text nor JSON: call transfer()")})

    def __post_init__(self) -> None:
        if self.rows_per_batch < 1:
            raise ConfigurationError(f"rows_per_batch must be at least 1, not "
                                     f"{self.rows_per_batch}")
        if self.columns is not None:
            columns = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)
            if not columns:
                raise ConfigurationError("columns is empty: name at least one source column, "
                                         "or leave it out to load every column")
            if len(set(columns)) != len(columns):
                raise ConfigurationError(f"columns names a column twice: {list(columns)}")
            object.__setattr__(self, "columns", columns)
        rename = dict(self.rename or {})
        bad = [k for k, v in rename.items() if not isinstance(k, str) or not isinstance(v, str)
               or not v.strip()]
        if bad:
            raise ConfigurationError(f"rename maps source column names to new, non-empty names; "
                                     f"check the entries for {bad}")
        targets = [v.casefold() for v in rename.values()]
        twice = sorted({v for v in rename.values() if targets.count(v.casefold()) > 1})
        if twice:
            raise ConfigurationError(f"rename gives two columns the same name: {twice}")
        object.__setattr__(self, "rename", MappingProxyType(rename))


def open_source(source: Any, options: SourceOptions | None = None, *,
                storage: StorageOptions | None = None) -> Source:
    """Open a pyarrow/polars object, a path, a directory or a glob as a :class:`Source`.

    :param source: pyarrow ``Table``, ``RecordBatchReader`` or ``dataset.Dataset``; polars
        ``DataFrame`` or ``LazyFrame`` (collected in streaming batches); a path,
        directory or glob of Parquet, CSV or Arrow IPC/Feather files (a list of them too);
        or a shard (a dict from :func:`engine.shards.split_source`, or a ``.json`` file
        holding one): exactly its rows.
    :param options: columns, renames, batch size, format (default :class:`SourceOptions`).
    :param storage: identity, account and endpoint for ``abfs[s]://`` and ``az://`` URIs
        (default: from the environment, see :class:`~engine.remote.StorageOptions`).
    :raises ConfigurationError: unknown columns, no files, an unknown format, a shard of
        an unknown format version.
    :raises SourceError: a file that cannot be opened or read; a shard's file that changed
        since the shard was made (:class:`~engine.errors.ObjectChangedError`).
    """
    options = options or SourceOptions()
    opened = _open(source, options, storage)
    opened.options = options
    return opened


def _open(source: Any, options: SourceOptions, storage: StorageOptions | None) -> Source:
    columns, csv_schema, fmt = options.columns, options.csv_schema, options.format
    rows_per_batch, rename = options.rows_per_batch, dict(options.rename)
    if isinstance(source, (pa.Table, pa.RecordBatchReader)) or _is_polars(source):
        return _open_memory(source, columns, rename, rows_per_batch)
    if isinstance(source, pads.Dataset):
        files = list(getattr(source, "files", []) or [])
        if not files:
            raise ConfigurationError("a pyarrow Dataset without files cannot be loaded "
                                     "exactly once; pass a Table or the file paths instead")
        fmt = fmt or _dataset_format(source)
        return _open_files([FilePart(f, file_format(f, fmt)) for f in files], columns, rename,
                           csv_schema, rows_per_batch)
    remote = RemoteFiles(storage)  # abfs[s]:// and az:// objects, pinned to their ETags
    origin = None
    if not isinstance(source, Mapping):  # else a shard from split_source: parts of files
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        shard_files = [os.fspath(p) for p in paths if os.fspath(p).lower().endswith(".json")
                       and not any(c in os.fspath(p) for c in "*?[")]  # a glob: not one
        if shard_files and len(paths) > 1:
            raise ConfigurationError(
                f"a shard file ({shard_files[0]}) must be the only source: load one shard "
                f"per command (each shard loads, resumes and verifies on its own, under its "
                f"own load id); {len(paths)} sources were given")
        if not shard_files:
            return _open_files(
                [FilePart(f, file_format(f, fmt)) for f in expand_paths(paths, remote)],
                columns, rename, csv_schema, rows_per_batch, remote)
        origin = shard_files[0]
        source = read_shard_file(origin)  # a shard saved by `azsql-bulk split`
    parts = shard_parts(source, remote, origin)
    return _open_files(parts, columns, rename, csv_schema, rows_per_batch, remote,
                       recorded=shard_fingerprint(source))


def _is_polars(obj: Any) -> bool:
    module = type(obj).__module__
    return module.startswith("polars") and type(obj).__name__ in ("DataFrame", "LazyFrame")


def _dataset_format(ds: pads.Dataset) -> str:
    name = type(getattr(ds, "format", None)).__name__.lower()
    for fmt in ("parquet", "csv", "ipc"):
        if fmt in name:
            return fmt
    return "parquet"


def _project(schema: pa.Schema, columns: Sequence[str] | None, rename: Mapping[str, str],
             where: str) -> list[str]:
    names = list(columns) if columns is not None else schema.names
    missing = [c for c in names if c not in schema.names]
    unknown_renames = [c for c in rename if c not in names]
    if missing or unknown_renames:
        raise ConfigurationError(
            f"{where}: " + "; ".join(
                ([f"columns not in the source: {missing}"] if missing else [])
                + ([f"renamed columns not loaded: {unknown_renames}"] if unknown_renames
                   else []))
            + f"; the source has {schema.names}")
    final = [rename.get(n, n) for n in names]
    folded = [n.casefold() for n in final]
    clashes = sorted({n for n in final if folded.count(n.casefold()) > 1})
    if clashes:
        raise ConfigurationError(
            f"{where}: after renaming, {clashes} name more than one loaded column (SQL Server "
            "column names ignore case); rename or leave out one of them")
    return names


def _renamed(schema: pa.Schema, names: list[str], rename: Mapping[str, str]) -> pa.Schema:
    fields = [schema.field(n) for n in names]
    return pa.schema([f.with_name(rename.get(f.name, f.name)) for f in fields],
                     metadata=schema.metadata)


def _open_memory(source: Any, columns: Sequence[str] | None, rename: dict[str, str],
                 rows_per_batch: int) -> Source:
    total: int | None = None
    table: pa.Table | None = None
    stream: Iterator[pa.RecordBatch] | None = None
    if _is_polars(source):
        if type(source).__name__ == "LazyFrame":
            schema = source.limit(0).collect().to_arrow().schema
            names = _project(schema, columns, rename, "polars LazyFrame")
            chunks = source.select(names).collect_batches(chunk_size=rows_per_batch, lazy=True)
            stream = (b for df in chunks for b in df.to_arrow().to_batches())
        else:
            table = source.to_arrow()
            schema = table.schema
            names = _project(schema, columns, rename, "polars DataFrame")
            table = table.select(names)
            total = table.num_rows
    elif isinstance(source, pa.Table):
        schema = source.schema
        names = _project(schema, columns, rename, "pyarrow Table")
        table = source.select(names)
        total = table.num_rows
    else:
        schema = source.schema
        names = _project(schema, columns, rename, "RecordBatchReader")
        stream = (b.select(names) for b in source)
    out_schema = _renamed(schema, names, rename)
    if table is not None:
        fixed = table
        return Source(out_schema, total, lambda: _table_digest(fixed, out_schema)[:32], [],
                      rows_per_batch, lambda: [("mem", None, 0, iter(fixed.to_batches()))],
                      rename)
    assert stream is not None
    once: Iterator[pa.RecordBatch] = stream
    digest = uuid.uuid4().hex  # a stream: nothing to recognise it by next time
    return Source(out_schema, total, digest[:32], [], rows_per_batch,
                  lambda: [("mem", None, 0, once)], rename, replayable=False)


def _table_digest(table: pa.Table, schema: pa.Schema) -> str:
    """blake2b over the schema, the row count and every buffer of every column.

    Two different tables with the same shape must not share a default load id (the
    second load would be skipped as already journaled), so the values themselves count.
    Hashing runs at memory speed, in C, without copying the table.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(schema.to_string().encode())
    h.update(str(table.num_rows).encode())
    for column in table.columns:
        for chunk in column.chunks:
            h.update(f"|{chunk.offset}:{len(chunk)}".encode())
            for buf in chunk.buffers():
                h.update(b"-" if buf is None else memoryview(buf))
    return h.hexdigest()



def _open_files(parts: list[FilePart], columns: Sequence[str] | None, rename: dict[str, str],
                csv_schema: pa.Schema | None, rows_per_batch: int,
                remote: RemoteFiles | None = None, recorded: str | None = None) -> Source:
    """The parts as a source; ``recorded`` (a shard's digest of what the split saw, which
    shard_parts checked against the files) stands for the files' live identity."""
    if not parts:
        raise ConfigurationError("the source matched no files")
    first = parts[0]
    schema = file_schema(first.path, first.fmt, csv_schema, remote)
    names = _project(schema, columns, rename, first.path)
    total: int | None = 0
    identity = hashlib.sha256()
    if recorded is not None:
        identity.update(f"shard|{recorded}\n".encode())
    for part in parts:
        f = part.path
        if recorded is None and remote is not None and remote.owns(f):  # URI, size, ETag
            identity.update(f"{remote.identity(f)}\n".encode())
        elif recorded is None:
            st = os.stat(f)
            identity.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        if total is not None:
            rows = file_rows(part, remote)
            total = None if rows is None else total + rows
    out_schema = _renamed(schema, names, rename)
    identity.update(out_schema.to_string().encode())

    def units() -> Iterator[Unit]:
        for part in parts:
            yield from file_units(part, names, csv_schema, rows_per_batch, remote)

    files = list(dict.fromkeys(part.path for part in parts))
    return Source(out_schema, total, identity.hexdigest()[:32], files, rows_per_batch,
                  units, rename, parts=tuple(parts))
