"""Shards: a file source cut into pieces that separate processes or machines load.

:func:`split_source` lists a source once (local paths, directories, globs, ``abfss://``
URIs), reads every Parquet footer once, and deals the data into at most ``n`` shards of
similar size; every row of the source is in exactly one shard. Each shard is loaded on
its own (``engine.transfer(source=shard, ...)``, or one Airflow mapped task per shard):
:func:`engine.sources.open_source` reads exactly its rows, in a fixed order, with the
batch ids and file-relative row numbers the whole source would have, and the default
load id derives from the shard's ranges, so each shard resumes only itself.

A shard is plain JSON (dicts, lists, strings, integers), so it travels through XCom,
template rendering and command lines unchanged::

    {"azsql_bulk_shard": 1,            # the format version; an unknown one is refused
     "index": 0, "shards": 4,          # this shard's place in the split (0-based)
     "bytes": 268435456,               # its share: compressed row-group or file bytes
     "parts": [                        # in source order, never overlapping
       {"path": "/data/big.parquet", "format": "parquet",
        "row_groups": [0, 12],         # [start, stop): row groups start .. stop-1
        "rows": 1200000,               # rows in that range
        "file_bytes": 1073741824, "file_row_groups": 48,
        "mtime_ns": 1733480000123456789},   # a local file's modification time
       {"path": "abfss://c@acct.dfs.core.windows.net/x.csv", "format": "csv",
        "file_bytes": 5120, "etag": "0x8DD..."}]}   # etag: storage objects only

How the data is dealt:

- The unit of a split is a Parquet row group, weighed by its compressed size from the
  footer. A file bigger than a shard's share (total bytes / n) is cut into runs of
  consecutive row groups of about a share each; smaller files stay whole. When that
  gives fewer pieces than ``n``, the heaviest pieces are halved until there are ``n`` or
  every piece is one row group. Pieces are then dealt heaviest first to the lightest
  shard, so one huge file spreads over many shards and shards differ by about a piece.
- CSV and Arrow IPC files are always whole (weighed by their size). A CSV byte range is
  only safe to start at a line break when no quoted value holds a line break, which
  cannot be known without reading the file up to there; and the range's first row
  number (for batch ids and error messages, counted in the file) is not known without
  that read either. So CSV files are never cut.
- Fewer shards than ``n`` come back when there are fewer pieces (row groups and whole
  files) than ``n``; no shard is empty.

What a shard records about each file (size, row-group count, rows of its range, a local
file's modification time and a storage object's ETag) is checked when it is opened: a
file rewritten since the split is refused with :class:`~engine.errors.ObjectChangedError`
instead of loading other rows. A local file whose modification time changed is refused
too, even when its size and row groups are the same (it may have been rewritten with
other values); a copy of the data made without keeping times (``cp`` without ``-p``)
needs a new split.

A shard's default load id (:func:`shard_fingerprint`) derives from what the shard
records (paths, ranges, rows, sizes, row-group counts, modification times, ETags), never
from where the shard file lies or from the files as they are now: the same shard, or a
copy of its file on another machine that sees the same files, resumes the same load;
the checks above refuse it before anything is loaded when the files differ.

Files are listed as a load lists them (:func:`engine.source_files.expand_paths`): a
file named twice (``big.parquet`` and ``*.parquet``) is split once, and directories and
globs skip names starting with ``_`` or ``.`` (Spark's ``_SUCCESS``, ``.crc`` files).

>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "big.parquet")
>>> pq.write_table(pa.table({"id": range(1000)}), path, row_group_size=100)
>>> [s["parts"][0]["row_groups"] for s in split_source(path, 4)]
[[0, 2], [2, 5], [5, 7], [7, 10]]
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigurationError, ObjectChangedError
from engine.remote import RemoteFiles, StorageOptions
from engine.remote_uri import is_remote
from engine.source_files import (
    SUFFIXES,
    FilePart,
    expand_paths,
    file_format,
    parquet_metadata,
)

__all__ = ["SHARD_VERSION", "VERSION_KEY", "describe_shard", "plan_shards", "read_shard_file",
           "shard_fingerprint", "shard_parts", "split_source"]

#: the key that marks a dict as a shard, and the format version this code writes and reads
VERSION_KEY = "azsql_bulk_shard"
SHARD_VERSION = 1
_FORMATS = ("parquet", "csv", "ipc")
#: what a part records about its file; the shard's default load id derives from these
_RECORDED = ("path", "format", "row_groups", "rows", "file_bytes", "file_row_groups",
             "mtime_ns", "etag")


@dataclass(frozen=True)
class _File:
    """What the split learned about one file (the shard records it for the check)."""

    path: str
    fmt: str
    size: int
    etag: str | None
    mtime_ns: int | None
    rg_rows: tuple[int, ...] = ()
    rg_bytes: tuple[int, ...] = ()

    @property
    def units(self) -> tuple[int, ...]:
        """The weights of the pieces the file may be cut between."""
        return self.rg_bytes if self.fmt == "parquet" else (self.size,)


def split_source(source: Any, shards: int, *, format: str | None = None,
                 storage: StorageOptions | None = None) -> list[dict[str, Any]]:
    """Split a file source into at most ``shards`` JSON shards of similar size.

    :param source: a path, directory, glob or storage URI of Parquet, CSV or Arrow IPC
        files, or a list of them (what :func:`engine.transfer` would load).
    :param shards: how many shards at most (at least 1).
    :param format: ``parquet``, ``csv`` or ``ipc`` when file suffixes do not tell.
    :param storage: identity, account and endpoint for ``abfss://`` URIs.
    :returns: the shards, in source order of their first part (see the module doc).
    :raises ConfigurationError: ``shards`` below 1, in-memory data, no files.
    :raises SourceError: a file that cannot be read.

    >>> split_source("/data/orders/*.parquet", 8)  # doctest: +SKIP
    [{'azsql_bulk_shard': 1, 'index': 0, 'shards': 8, 'bytes': ..., 'parts': [...]}, ...]
    """
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ConfigurationError(f"shards must be a whole number of at least 1, not {shards!r}")
    if isinstance(source, Mapping):
        raise ConfigurationError("this source is already a shard; split the files it came "
                                 "from instead")
    if not isinstance(source, (str, os.PathLike)) and not (
            isinstance(source, Sequence) and all(isinstance(s, (str, os.PathLike))
                                                 for s in source)):
        raise ConfigurationError(
            f"only files can be split into shards (a path, directory, glob or URI, or a list "
            f"of them), not {type(source).__name__}; load in-memory data in one process")
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    for path in paths:
        if os.fspath(path).lower().endswith(".json"):
            raise ConfigurationError(
                f"{os.fspath(path)} names a shard file (.json), not a data file; split the "
                "source files it came from instead (the paths in its \"parts\")")
    remote = RemoteFiles(storage)
    try:
        files = [_facts(path, file_format(path, format), remote)
                 for path in expand_paths(paths, remote)]
    finally:
        remote.close()
    if not files:
        raise ConfigurationError(f"no files to split in {source!r}")
    dealt = plan_shards([f.units for f in files], shards)
    return [_shard(files, pieces, index, len(dealt)) for index, pieces in enumerate(dealt)]


def _facts(path: str, fmt: str, remote: RemoteFiles) -> _File:
    mtime: int | None = None
    if remote.owns(path):
        obj = remote.object(path)
        size, etag = obj.size, obj.version
    else:  # absolute: the loading task may run in another directory
        st = os.stat(path)
        path, size, etag, mtime = os.path.abspath(path), st.st_size, None, st.st_mtime_ns
    if fmt != "parquet":
        return _File(path, fmt, size, etag, mtime)
    meta = parquet_metadata(path, remote)
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    return _File(path, fmt, size, etag, mtime, tuple(g.num_rows for g in groups),
                 tuple(sum(g.column(c).total_compressed_size for c in range(g.num_columns))
                       for g in groups))


def _shard(files: list[_File], pieces: list[tuple[int, int, int]], index: int,
           count: int) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for i, start, stop in pieces:
        f = files[i]
        part: dict[str, Any] = {"path": f.path, "format": f.fmt}
        if f.fmt == "parquet":
            part.update(row_groups=[start, stop], rows=sum(f.rg_rows[start:stop]),
                        file_bytes=f.size, file_row_groups=len(f.rg_rows))
        else:
            part.update(file_bytes=f.size)
        if f.mtime_ns is not None:
            part["mtime_ns"] = f.mtime_ns
        if f.etag is not None:
            part["etag"] = f.etag
        parts.append(part)
    weight = sum(sum(files[i].units[a:b]) for i, a, b in pieces)
    return {VERSION_KEY: SHARD_VERSION, "index": index, "shards": count, "bytes": weight,
            "parts": parts}


# -- dealing ----------------------------------------------------------------------------------

def plan_shards(files: Sequence[Sequence[int]], shards: int) -> list[list[tuple[int, int, int]]]:
    """Deal files, each a list of unit weights, into at most ``shards`` lists of pieces.

    A piece ``(file, start, stop)`` is a run of a file's units; the pieces of all shards
    cover every unit exactly once, in no shard is a piece empty unless its file has no
    units at all (an empty Parquet file), and no shard is empty. Within a shard, pieces
    are in file order and adjacent runs of one file are merged.

    :param files: per file, the weights of the units it may be cut between.
    :param shards: how many shards at most.

    >>> plan_shards([[10, 10, 10, 10], [5]], 2)
    [[(0, 0, 2), (1, 0, 1)], [(0, 2, 4)]]
    """
    total = sum(sum(units) for units in files)
    pieces: list[tuple[int, int, int]] = []
    for i, units in enumerate(files):
        size, cuts = sum(units), 1
        if len(units) > 1 and size * shards > total:  # bigger than a shard's share
            cuts = min(len(units), -(-size * shards // total))
        pieces += [(i, start, stop) for start, stop in _cut(units, cuts)]

    def weight(piece: tuple[int, int, int]) -> int:
        return sum(files[piece[0]][piece[1]:piece[2]])

    while len(pieces) < shards:  # more shards wanted: halve the heaviest divisible piece
        divisible = [p for p in pieces if p[2] - p[1] > 1]
        if not divisible:
            break
        i, start, stop = max(divisible, key=lambda p: (weight(p), -p[0], -p[1]))
        pieces.remove((i, start, stop))
        pieces += [(i, start + a, start + b) for a, b in _cut(files[i][start:stop], 2)]
    count = min(shards, len(pieces))
    loads = [0] * count
    dealt: list[list[tuple[int, int, int]]] = [[] for _ in range(count)]
    for piece in sorted(pieces, key=lambda p: (-weight(p), p[0], p[1])):
        # ties go to the shard with fewer pieces, so empty files spread and no shard is empty
        lightest = min(range(count), key=lambda s: (loads[s], len(dealt[s]), s))
        dealt[lightest].append(piece)
        loads[lightest] += weight(piece)
    return sorted((_merged(sorted(shard)) for shard in dealt), key=lambda s: s[0])


def _cut(units: Sequence[int], parts: int) -> list[tuple[int, int]]:
    """Cut a run of units into exactly ``parts`` non-empty runs of similar weight.

    A run closes before the unit whose middle lies past the next ``k/parts`` of the
    weight, or when the units left are just enough for one run each.
    """
    if not units:
        return [(0, 0)]
    total, start, before = sum(units), 0, 0
    runs: list[tuple[int, int]] = []
    for i, w in enumerate(units):
        still = parts - len(runs) - 1  # runs to open after the current one
        if i > start and still > 0 and (len(units) - i == still or
                                        (2 * before + w) * parts > 2 * total * (len(runs) + 1)):
            runs.append((start, i))
            start = i
        before += w
    runs.append((start, len(units)))
    return runs


def _merged(pieces: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    for i, start, stop in pieces:
        if out and out[-1][0] == i and out[-1][2] == start:
            out[-1] = (i, out[-1][1], stop)
        else:
            out.append((i, start, stop))
    return out


# -- reading ----------------------------------------------------------------------------------

def shard_parts(shard: Mapping[str, Any], remote: RemoteFiles,
                origin: str | None = None) -> list[FilePart]:
    """The file parts of a shard, checked against the files as they are now.

    :param shard: a dict from :func:`split_source` (after a JSON round trip too).
    :param remote: lists the shard's storage objects (pinning them to their ETags).
    :param origin: the shard file it was read from, named in errors.
    :raises ConfigurationError: not a shard, or one of a format version this code does not
        read, or a malformed one.
    :raises ObjectChangedError: a file changed since the split (size, row groups, rows or
        ETag differ), or is gone.
    """
    version = shard.get(VERSION_KEY)
    if version is None:
        raise ConfigurationError(
            f"{origin or 'a dict source'} must be a shard written by `azsql-bulk split` or "
            f"split_source (with the key {VERSION_KEY!r}); this one has the keys "
            f"{sorted(map(str, shard))[:8]}")
    if version != SHARD_VERSION:
        raise ConfigurationError(
            f"this shard has format version {version!r}, and this azsql-bulk reads version "
            f"{SHARD_VERSION} only; run the same azsql-bulk version where the source is split "
            "and where the shards are loaded, or split the source again")
    parts = shard.get("parts")
    if not isinstance(parts, list) or not parts:
        raise ConfigurationError(f"{_where(shard, origin)} has no \"parts\" list; {_UNCHANGED}")
    read = [_part(p, n, shard, remote, origin) for n, p in enumerate(parts)]
    for n, part in enumerate(read):  # overlapping parts would load rows twice
        for m, other in enumerate(read[:n]):
            if other.path == part.path and (part.row_groups is None or other.row_groups is None
                                            or max(part.row_groups[0], other.row_groups[0])
                                            < min(part.row_groups[1], other.row_groups[1])):
                raise ConfigurationError(
                    f"{_where(shard, origin)}: parts {m} and {n} both read {part.path}"
                    f"{' (overlapping row groups)' if part.row_groups else ''}, which would "
                    f"load rows twice; {_UNCHANGED}")
    return read


def read_shard_file(path: str) -> dict[str, Any]:
    """A shard saved as JSON (``azsql-bulk split --out DIR`` writes one file per shard).

    :param path: the ``.json`` file.
    :raises ConfigurationError: the file cannot be read, or holds no JSON object.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the shard file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not JSON ({exc}); a .json source must be a shard "
                                 "written by `azsql-bulk split --out DIR`") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} holds a JSON {type(data).__name__}, not a shard; a "
                                 ".json source must be one shard written by `azsql-bulk split`")
    return data


def _part(part: Any, n: int, shard: Mapping[str, Any], remote: RemoteFiles,
          origin: str | None) -> FilePart:
    where = f"{_where(shard, origin)}, part {n}"
    if not isinstance(part, Mapping) or not isinstance(part.get("path"), str) \
            or part.get("format") not in _FORMATS or not _whole(part.get("file_bytes")):
        raise ConfigurationError(f"{where} is malformed: it needs \"path\", \"format\" "
                                 f"(parquet, csv or ipc) and \"file_bytes\" ({part!r}); "
                                 f"{_UNCHANGED}")
    path, fmt = part["path"], part["format"]
    groups = None
    if fmt == "parquet":
        groups = part.get("row_groups")
        if not (isinstance(groups, list) and len(groups) == 2 and all(map(_whole, groups))
                and groups[0] <= groups[1] and _whole(part.get("file_row_groups"))
                and groups[1] <= part["file_row_groups"] and _whole(part.get("rows"))):
            raise ConfigurationError(
                f"{where} has no valid \"row_groups\" [start, stop] within "
                f"\"file_row_groups\", or no \"rows\" ({part!r}); {_UNCHANGED}")
    if is_remote(path):
        path = remote.expand(path, set(SUFFIXES))[0]
        obj = remote.object(path)
        size, etag, mtime = obj.size, obj.version, None
    else:
        try:
            st = os.stat(path)
        except OSError:
            raise ObjectChangedError(f"{path} ({where}) is gone since the source was split; "
                                     "restore it, or split the source again") from None
        size, etag, mtime = st.st_size, None, st.st_mtime_ns
    now: dict[str, Any] = {"file_bytes": size}
    if part.get("mtime_ns") is not None:  # recorded for local files (split by this version)
        now["mtime_ns"] = mtime
    if part.get("etag") is not None:
        now["etag"] = etag
    if groups is not None:
        meta = parquet_metadata(path, remote)
        now["file_row_groups"] = meta.num_row_groups
        if meta.num_row_groups == part["file_row_groups"]:
            now["rows"] = sum(meta.row_group(rg).num_rows for rg in range(*groups))
    changed = {k: (part.get(k), v) for k, v in now.items() if part.get(k) != v}
    if changed:
        facts = "; ".join(f"{k} was {was}, is {is_}" for k, (was, is_) in changed.items())
        why = "" if set(changed) != {"mtime_ns"} else (
            " - only its modification time differs, but the file may have been rewritten "
            "with other values of the same size, or copied without keeping times")
        raise ObjectChangedError(
            f"{path} ({where}) changed since the source was split ({facts}){why}, so the "
            "shard's ranges may no longer name the rows it was made for; split the source "
            "again and load the new shards (under new load ids)")
    return FilePart(path, fmt, None if groups is None else (groups[0], groups[1]))


def shard_fingerprint(shard: Mapping[str, Any]) -> str:
    """A digest of what a shard records about its parts (see the module doc): the same
    shard gives the same digest on any machine, whatever its file is called or when it
    was copied; two shards of one split never share it (their ranges differ).

    :param shard: a shard that :func:`shard_parts` accepted.

    >>> part = {"path": "/d/a.csv", "format": "csv", "file_bytes": 9, "mtime_ns": 1}
    >>> shard_fingerprint({"index": 0, "parts": [part]}) == shard_fingerprint(
    ...     {"index": 3, "shards": 9, "parts": [dict(part)]})
    True
    """
    recorded = [{k: p[k] for k in _RECORDED if p.get(k) is not None} for p in shard["parts"]]
    text = json.dumps([VERSION_KEY, recorded], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_UNCHANGED = "use the shard as `azsql-bulk split` (or split_source) wrote it, unchanged"


def _where(shard: Mapping[str, Any], origin: str | None = None) -> str:
    index, count = shard.get("index"), shard.get("shards")
    place = f"shard {index}/{count}" if index is not None else "the shard"
    return f"{origin}, {place}" if origin else place


def describe_shard(shard: Mapping[str, Any]) -> str:
    """One line for logs: the shard's place and its parts.

    :param shard: a shard from :func:`split_source`.

    >>> describe_shard({"index": 1, "shards": 4, "bytes": 2048, "parts": [
    ...     {"path": "/d/big.parquet", "format": "parquet", "row_groups": [3, 6], "rows": 300},
    ...     {"path": "/d/a.csv", "format": "csv"}]})
    'shard 1 of 4 (2048 bytes): /d/big.parquet row groups 3-5 (300 rows), /d/a.csv'
    """
    parts = []
    for part in shard.get("parts") or []:
        text = str(part.get("path"))
        groups = part.get("row_groups")
        if groups and groups[1] > groups[0]:
            text += f" row groups {groups[0]}-{groups[1] - 1} ({part.get('rows')} rows)"
        parts.append(text)
    return (f"shard {shard.get('index')} of {shard.get('shards')} ({shard.get('bytes')} "
            f"bytes): " + ", ".join(parts))
