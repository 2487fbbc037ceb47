"""``azsql-bulk split SOURCE --shards N``: cut a file source into shards to load separately.

Lists the source once and reads its Parquet footers (see :mod:`engine.shards`), then
prints one shard per line as JSON, or with ``--out DIR`` writes ``DIR/shard-000.json``...
and prints their paths. Each shard is then loaded on its own, by any machine that sees
the same files, under its own default load id::

    azsql-bulk split '/data/orders/*.parquet' --shards 8 --out shards/
    azsql-bulk load shards/shard-003.json --table dbo.orders ...   # on each worker

Storage URIs are listed with the identity in ``$AZSQL_BULK_STORAGE_AUTH`` (else
``$AZSQL_BULK_AUTH``, else DefaultAzureCredential), as ``load`` reads them.

Exit codes: 0 shards written; 1 a file or storage could not be read; 2 usage or
configuration error (no files match among them).
"""

from __future__ import annotations

import argparse
import json
import os
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
from engine.shards import split_source

__all__ = ["register"]

_OPTIONS: tuple[Opt, ...] = (
    Opt("--shards", "how many shards at most (fewer when the source has fewer Parquet row "
        "groups and whole files)", type=positive_int, metavar="N"),
    Opt("--format", "source format when file suffixes do not tell",
        choices=("parquet", "csv", "ipc")),
    Opt("--out", "write each shard to DIR/shard-NNN.json and print the paths (default: "
        "print the shards, one JSON object per line)", metavar="DIR"),
)


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
        source = args.source[0] if len(args.source) == 1 else list(args.source)
        shards = split_source(source, args.shards, format=args.format)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            for shard in shards:
                path = os.path.join(args.out, f"shard-{shard['index']:03d}.json")
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(shard, f, indent=1)
                print(path)
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
