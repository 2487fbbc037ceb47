"""Source files: finding them, telling their format, and reading them unit by unit.

:mod:`engine.sources` turns what this module yields into batches with ids. A *unit* is
the part of a file a batch never crosses: a Parquet row group, an Arrow IPC record batch,
or a whole CSV / IPC stream (read sequentially, so its row offsets repeat exactly). A
Parquet file can be read over a range of its row groups (a shard, see
:mod:`engine.shards`); row numbers stay relative to the file.

>>> file_format("a/b.PQ"), file_format("x.data", "csv")
('parquet', 'csv')
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq

from engine.errors import ConfigurationError, SourceError
from engine.remote import RemoteFiles
from engine.remote_uri import GLOB_CHARS, is_remote, parse_uri

__all__ = ["CSV_BLOCK_SIZE", "SUFFIXES", "FilePart", "Unit", "expand_paths", "file_format",
           "file_rows", "file_schema", "file_units", "open_input",
           "parquet_metadata"]

CSV_BLOCK_SIZE = 8 << 20  # fixed, so CSV row offsets and ids repeat exactly between runs
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv",
            ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc", ".arrows": "ipc"}

#: (file label, unit index or None, the unit's first row in the file or None, its batches)
Unit = tuple[str, int | None, int | None, Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class FilePart:
    """A file to read, or for Parquet a range of its row groups.

    :param path: local path or canonical storage URI.
    :param fmt: ``parquet``, ``csv`` or ``ipc``.
    :param row_groups: Parquet row groups ``(start, stop)``, stop exclusive; None: all.
    """

    path: str
    fmt: str
    row_groups: tuple[int, int] | None = None


def expand_paths(paths: Sequence[str | os.PathLike[str]], remote: RemoteFiles | None = None
                 ) -> list[str]:
    """The files that paths, directories and globs (local, or storage URIs) name, in order.

    A file named more than once (``big.parquet`` and ``*.parquet``, a directory and a file
    in it, a symlink and its target) is listed once, where it first appears, so no load
    or split reads its rows twice. Directories and globs skip files whose name, or the
    name of a folder between them and the directory, starts with ``_`` or ``.`` (Spark's
    ``_SUCCESS``, ``.crc`` checksums, hidden files), as pyarrow datasets do; a file named
    explicitly is read whatever its name.

    :param paths: what a source lists.
    :param remote: lists and remembers ``abfs[s]://`` and ``az://`` objects.
    :raises ConfigurationError: a path that does not exist, a glob matching nothing, a
        directory without Parquet, CSV or Arrow files.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.csv", "_SUCCESS", ".a.csv.crc"): _ = (d / name).write_text("x\\n1\\n")
    >>> [os.path.basename(f) for f in expand_paths([d / "a.csv", str(d / "*"), d])]
    ['a.csv']
    """
    files: list[str] = []
    for raw in paths:
        text = os.fspath(raw)
        if remote is not None and is_remote(text):
            files.extend(_shown(text, remote.expand(text, set(SUFFIXES)), remote))
        elif any(ch in text for ch in "*?["):
            matched = [m for m in sorted(glob.glob(text, recursive=True)) if os.path.isfile(m)]
            root = os.path.dirname(text[:min(text.index(c) for c in "*?[" if c in text)])
            kept = [m for m in matched  # below the glob's fixed folder: no _x or .x name
                    if not any(map(_hidden, Path(os.path.relpath(m, root or ".")).parts))]
            if not kept:
                skipped = f" (only {len(matched)} skipped file(s) whose names start with '_' " \
                    f"or '.', such as {os.path.basename(matched[0])!r}; name such a file " \
                    "explicitly to load it)" if matched else ""
                raise ConfigurationError(f"no files match {text!r}{skipped}")
            files.extend(kept)
        elif os.path.isdir(text):
            found = sorted(str(p) for p in Path(text).rglob("*")
                           if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not any(map(_hidden, p.relative_to(text).parts)))
            if not found:
                raise ConfigurationError(f"directory {text!r} holds no Parquet, CSV or Arrow "
                                         f"files ({', '.join(sorted(SUFFIXES))}) whose names "
                                         "do not start with '_' or '.'")
            files.extend(found)
        elif os.path.isfile(text):
            files.append(text)
        else:
            raise ConfigurationError(f"source {text!r} does not exist")
    return _once(files, remote)


def _shown(text: str, uris: list[str], remote: RemoteFiles) -> list[str]:
    """Of the objects a storage URI named, those a listing keeps: the object itself, or
    under a prefix or glob those with no ``_x`` / ``.x`` name below the named folder."""
    named = parse_uri(text).path
    magic = GLOB_CHARS.search(named)
    if magic:
        fixed = named[:magic.start()]
        fixed = fixed[:fixed.rfind("/") + 1]
    else:
        fixed = named.rstrip("/") + "/" if named.strip("/") else ""
    kept = [u for u in uris if remote.object(u).name == named or not any(
        map(_hidden, remote.object(u).name.removeprefix(fixed).split("/")))]
    if uris and not kept:
        raise ConfigurationError(
            f"{text} names only objects whose names start with '_' or '.' (such as "
            f"{uris[0]}), which listings skip; name such an object exactly to load it")
    return kept


def _hidden(name: str) -> bool:
    """A name directory listings and globs skip: Spark/Hive markers, checksums, dotfiles."""
    return name.startswith(("_", "."))


def _once(files: list[str], remote: RemoteFiles | None) -> list[str]:
    """``files`` without repeats of one file (compared by its real, absolute path; a
    storage URI as listed, which is canonical), first occurrence first."""
    seen: set[str] = set()
    out: list[str] = []
    for f in files:
        key = f if remote is not None and is_remote(f) else \
            os.path.normcase(os.path.realpath(f))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def file_format(path: str, fmt: str | None = None) -> str:
    """``parquet``, ``csv`` or ``ipc``: ``fmt`` when given, else from the path's suffix.

    :param path: a file path or URI.
    :param fmt: an explicit format, checked.
    :raises ConfigurationError: an unknown format or suffix.
    """
    if fmt:
        if fmt not in ("parquet", "csv", "ipc"):
            raise ConfigurationError(f"the source format must be parquet, csv or ipc, not "
                                     f"{fmt!r}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        raise ConfigurationError(
            f"{path} is a .json file, read as a shard only when it is the one source named; "
            "load one shard per command, and split data files, not shards")
    if suffix not in SUFFIXES:
        raise ConfigurationError(
            f"cannot tell the format of {path!r} from its suffix ({', '.join(sorted(SUFFIXES))}"
            "); give the format: parquet, csv or ipc (--format on the command line)")
    return SUFFIXES[suffix]


def open_input(path: str, remote: RemoteFiles | None) -> Any:
    """The path for a local file (Arrow opens it), a ranged reader for a remote object."""
    return remote.open(path) if remote is not None and remote.owns(path) else path


def file_schema(path: str, fmt: str, csv_schema: pa.Schema | None,
                remote: RemoteFiles | None = None) -> pa.Schema:
    """The Arrow schema of one file (for CSV: ``csv_schema`` when given, else inferred).

    :param path: local path or a URI ``remote`` listed.
    :param fmt: its format.
    :param csv_schema: explicit CSV column types.
    :param remote: the storage client that listed ``path``, if it is an object.
    :raises SourceError: the file cannot be opened as ``fmt``.
    """
    src = open_input(path, remote)
    try:
        if fmt == "parquet":
            return pq.read_schema(src)
        if fmt == "ipc":
            with (pa.memory_map(src) if isinstance(src, str) else src) as mm:
                try:
                    return paipc.open_file(mm).schema
                except pa.ArrowInvalid:
                    mm.seek(0)
                    return paipc.open_stream(mm).schema
        if csv_schema is not None:
            return csv_schema
        with pacsv.open_csv(src, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE)) \
                as reader:
            return reader.schema
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(f"cannot open {path} as {fmt}: {exc}; check that the file is "
                          f"complete and really {fmt}") from None


def parquet_metadata(path: str, remote: RemoteFiles | None = None) -> pq.FileMetaData:
    """A Parquet file's footer: its row groups, their rows and sizes.

    :param path: local path or a URI ``remote`` listed.
    :param remote: the storage client that listed ``path``, if it is an object.
    :raises SourceError: not a readable Parquet file.
    """
    try:
        return pq.ParquetFile(open_input(path, remote)).metadata
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(f"cannot open {path} as Parquet: {exc}; check that the file is "
                          "complete and really parquet") from None


def file_rows(part: FilePart, remote: RemoteFiles | None = None) -> int | None:
    """Rows in a file part when its metadata tells (Parquet, IPC file), else None.

    :param part: the file, or a range of its row groups.
    :param remote: the storage client that listed the part's path, if it is an object.
    :raises SourceError: the file cannot be read.
    """
    path, fmt = part.path, part.fmt
    if fmt == "parquet":
        meta = parquet_metadata(path, remote)
        start, stop = part.row_groups or (0, meta.num_row_groups)
        return sum(meta.row_group(rg).num_rows for rg in range(start, stop))
    if fmt != "ipc":
        return None
    src = open_input(path, remote)
    try:
        with (pa.memory_map(src) if isinstance(src, str) else src) as mm:
            try:
                reader = paipc.open_file(mm)
                return sum(reader.get_batch(i).num_rows
                           for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                return None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


# pyarrow's message for a value that does not convert names the column, not the row
_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]+: "
                             r"invalid value '(.*)'$", re.DOTALL)


def _csv_batches(reader: pacsv.CSVStreamingReader, path: str, src: Any,
                 read: pacsv.ReadOptions) -> Iterator[pa.RecordBatch]:
    rows = 0
    try:
        for batch in reader:
            rows += batch.num_rows
            yield batch
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(f"cannot read {path} as CSV after row {rows}: {exc}"
                          f"{_csv_row(src, exc, read)}; fix the file or pass an explicit "
                          "csv_schema (batches before this point were read normally)") from None


def _csv_row(src: Any, exc: Exception, read: pacsv.ReadOptions) -> str:
    """Where a value that failed to convert is (its column, row and line), found by
    reading that one column again as text; empty when that cannot be told."""
    match = _CSV_CONVERSION.search(str(exc))
    if match is None or not isinstance(src, str):
        return ""
    index, value = int(match.group(1)), match.group(2)
    try:
        names = pacsv.open_csv(src, read_options=read).schema.names
        name = names[index]
        text = pacsv.open_csv(src, read_options=read, convert_options=pacsv.ConvertOptions(
            include_columns=[name], column_types={name: pa.string()},
            strings_can_be_null=False))
        row = 0
        for batch in text:
            found = pc.index(batch.column(0), value).as_py()
            if found >= 0:
                row += found
                header = 0 if read.column_names and not read.skip_rows else 1
                return (f" (column {name!r}, data row {row}, line {row + 1 + header} when "
                        "no value spans lines)")
            row += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, IndexError):
        return ""
    return ""


def file_units(part: FilePart, names: list[str], csv_schema: pa.Schema | None,
               rows_per_batch: int, remote: RemoteFiles | None = None) -> Iterator[Unit]:
    """The units of one file part, in file order, each with its first row in the file.

    :param part: the file, or a range of its Parquet row groups.
    :param names: the columns to read.
    :param csv_schema: explicit CSV column types.
    :param rows_per_batch: the largest batch Parquet is asked for.
    :param remote: the storage client that listed the part's path, if it is an object.
    :raises SourceError: the file cannot be opened (read errors surface while iterating).
    """
    path, fmt = part.path, part.fmt
    src = open_input(path, remote)
    if src is not path:  # ids name the object's URI and version: <uri>@<etag>
        path = remote.label(path)  # type: ignore[union-attr]
    if fmt == "parquet":
        try:
            pf = pq.ParquetFile(src, pre_buffer=not isinstance(src, str))
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise SourceError(f"cannot open {path} as Parquet: {exc}") from None
        meta = pf.metadata
        start, stop = part.row_groups or (0, meta.num_row_groups)
        first = sum(meta.row_group(rg).num_rows for rg in range(start))  # rows of the file
        for rg in range(start, stop):
            rows = meta.row_group(rg).num_rows
            yield path, rg, first, pf.iter_batches(batch_size=rows_per_batch, row_groups=[rg],
                                                   columns=names)
            first += rows
    elif fmt == "ipc":
        mm = pa.memory_map(src) if isinstance(src, str) else src
        try:
            reader = paipc.open_file(mm)
        except pa.ArrowInvalid:
            mm.seek(0)
            stream = paipc.open_stream(mm)
            yield path, None, 0, (b.select(names) for b in stream)
            return
        first = 0
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i).select(names)
            yield path, i, first, iter([batch])
            first += batch.num_rows
    else:
        convert = pacsv.ConvertOptions(column_types=csv_schema, include_columns=names) \
            if csv_schema is not None else pacsv.ConvertOptions(include_columns=names)
        read = pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE,
                                 column_names=csv_schema.names if csv_schema else None,
                                 skip_rows=1 if csv_schema else 0)
        try:
            reader = pacsv.open_csv(src, read_options=read, convert_options=convert)
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise SourceError(f"cannot parse {path} as CSV: {exc}{_csv_row(src, exc, read)}; "
                              "fix the file or pass an explicit csv_schema") from None
        yield path, None, 0, _csv_batches(reader, path, src, read)
