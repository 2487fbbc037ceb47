"""``azsql-bulk split SOURCE --shards N``: cut a file source into shards to load separately.

Lists the source once and reads its Parquet footers (see :mod:`engine.shards`), then
prints one shard per line as JSON, or with ``--out DIR`` writes ``DIR/shard-000.json``...
and prints their paths. Each shard is then loaded on its own, by any machine that sees
the same files (same paths, sizes and modification times), under its own default load
id, which derives from what the shard records, so a copy of a shard file resumes::

    azsql-bulk split '/data/orders/*.parquet' --shards 8 --out shards/
    azsql-bulk load shards/shard-003.json --table dbo.orders ...   # on each worker

``--out DIR`` never leaves two splits side by side, where a loop over ``DIR/*.json``
would load rows twice: when DIR already holds ``shard-*.json`` files, split refuses
(exit 2) and names them; with ``--replace`` it deletes them first, after checking that
each one is a shard (a ``shard-NNN.json`` file holding a shard), and only once the new
split has been made. Other files in DIR are left alone.

Directories and globs skip files whose names start with ``_`` or ``.`` (Spark's
``_SUCCESS``, ``.crc`` checksums), and a file named twice is split once.

Storage URIs are listed with the identity in ``$AZSQL_BULK_STORAGE_AUTH`` (else
``$AZSQL_BULK_AUTH``, else DefaultAzureCredential), as ``load`` reads them.

Exit codes: 0 shards written; 1 a file or storage could not be read, or a shard could not
be written; 2 usage or configuration error (no files match, ``--out`` holds an earlier
split's shards, ``--out`` cannot be created).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

from engine.cli.arguments import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Opt,
    UsageError,
    add_options,
    positive_int,
    resolve,
)
from engine.cli.console import say
from engine.errors import AzsqlBulkError, ConfigurationError
from engine.shards import VERSION_KEY, split_source

__all__ = ["register"]

_OPTIONS: tuple[Opt, ...] = (
    Opt("--shards", "how many shards at most (fewer when the source has fewer Parquet row "
        "groups and whole files)", type=positive_int, metavar="N"),
    Opt("--format", "source format when file suffixes do not tell",
        choices=("parquet", "csv", "ipc")),
    Opt("--out", "write each shard to DIR/shard-NNN.json and print the paths (default: "
        "print the shards, one JSON object per line); refused when DIR holds shard-*.json "
        "files already", metavar="DIR"),
    Opt("--replace", "with --out: delete the shard-NNN.json files of an earlier split in DIR "
        "(after the new split is made)", action="flag"),
)
_SHARD_NAME = re.compile(r"shard-\d{3,}\.json")


def register(sub: Any) -> None:
    """Add the ``split`` command to the ``azsql-bulk`` parser's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "split", help="cut a file source into shards that load separately",
        allow_abbrev=False,
        description="Deal Parquet row-group ranges and whole CSV/IPC files into shards of "
                    "similar size; `azsql-bulk load SHARD.json` loads one.")
    parser.add_argument("source", nargs="+", metavar="SOURCE",
                        help="files, directories, globs or abfss:// URIs")
    add_options(parser.add_argument_group("split"), _OPTIONS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``azsql-bulk split``; returns the exit code."""
    try:
        resolve(args, _OPTIONS)
        if not args.shards:
            raise UsageError("missing --shards N: how many shards to cut the source into")
        if args.replace and not args.out:
            raise UsageError("--replace works with --out DIR only")
        earlier = _earlier_shards(args.out, args.replace) if args.out else []
        source = args.source[0] if len(args.source) == 1 else list(args.source)
        shards = split_source(source, args.shards, format=args.format)
        if args.out:
            _write(args.out, shards, earlier)
        else:
            for shard in shards:
                print(json.dumps(shard))
    except ConfigurationError as exc:
        say(f"azsql-bulk split: error: {exc}")
        return EXIT_USAGE
    except (AzsqlBulkError, OSError) as exc:
        say(f"azsql-bulk split: error: {exc}")
        return EXIT_FAILED
    return EXIT_OK


def _earlier_shards(out: str, replace: bool) -> list[str]:
    """The ``shard-*.json`` files in ``out`` (none when it does not exist yet).

    :param out: the ``--out`` directory.
    :param replace: whether ``--replace`` was given.
    :raises UsageError: ``out`` is not a directory; it holds shard files and ``replace``
        is off; with ``replace``, one of them is not a shard this command would write.
    """
    if not os.path.exists(out):
        return []
    if not os.path.isdir(out):
        raise UsageError(f"--out {out} is not a directory; pass a directory for the shards")
    found = sorted(n for n in os.listdir(out) if n.startswith("shard-") and n.endswith(".json"))
    paths = [os.path.join(out, n) for n in found]
    if found and not replace:
        listed = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise UsageError(
            f"--out {out} already holds {len(found)} shard file(s) of an earlier split "
            f"({listed}); a loop over its *.json would load both splits' rows. Pass an "
            "empty or new directory, or --replace to delete those files")
    strange = [p for p in paths if not (_SHARD_NAME.fullmatch(os.path.basename(p))
                                        and _is_shard(p))]
    if strange:
        raise UsageError(
            f"--replace deletes only shard-NNN.json files holding a shard, and {strange[0]} "
            "is not one; move it away or pass another --out directory (nothing was deleted)")
    return paths


def _is_shard(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and VERSION_KEY in data


def _write(out: str, shards: list[dict[str, Any]], earlier: list[str]) -> None:
    """Delete the earlier split's files, then write one file per shard and print its path.

    :raises UsageError: ``out`` cannot be created.
    :raises OSError: a file cannot be deleted or written (the message names it).
    """
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the --out directory {out}: {exc.strerror}; pass a "
                         "directory you can write to") from None
    for path in earlier:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OSError(f"cannot delete {path} of the earlier split (--replace): "
                          f"{exc.strerror}; no new shard was written") from None
    for shard in shards:
        path = os.path.join(out, f"shard-{shard['index']:03d}.json")
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(shard, f, indent=1)
        except OSError as exc:
            raise OSError(f"cannot write {path}: {exc.strerror}; the shards printed above "
                          "were written, the others were not") from None
        print(path)
