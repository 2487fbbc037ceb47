"""The command that resumes a stopped load: the same arguments plus ``--load-id ID --resume``.

>>> resume_command(["load", "a.parquet", "--table", "t", "--dry-run"], "abc",
...                rows_per_batch=10)
'azsql-bulk load a.parquet --table t --rows-per-batch 10 --load-id abc --resume'
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Iterable, Sequence

from engine.cli.arguments import Opt
from engine.cli.console import program_name

__all__ = ["env_args", "resume_command"]

_DROP_WITH_VALUE = {"--load-id", "--rows-per-batch"}
_DROP = {"--resume", "--dry-run", "--fresh"}  # --fresh's new load id is spelled out
# never spelled out from the environment: the resume command sets them itself, or they
# only shape this run's output
_NOT_FROM_ENV = {"--load-id", "--rows-per-batch", "--resume", "--dry-run", "--json", "--fresh"}


def resume_command(argv: Sequence[str], load_id: str | None, *, rows_per_batch: int,
                   env_args: Sequence[str] = ()) -> str:
    """The command that resumes a load.

    Options set through ``AZSQL_BULK_*`` variables are spelled out (``env_args``), and
    ``--rows-per-batch`` always is, since batch ids depend on it. ``argv`` was checked for
    secrets before anything ran, so it holds none.

    :param argv: the original arguments, starting with ``load``.
    :param load_id: the load's journal id; None when the engine has not derived it yet
        (running the same command again derives the same one).
    :param rows_per_batch: the batch size the load ran with.
    :param env_args: arguments equivalent to the options taken from the environment.
    """
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DROP_WITH_VALUE:
            skip = "=" not in arg
            continue
        if name in _DROP:
            continue
        kept.append(arg)
    kept += [*env_args, "--rows-per-batch", str(rows_per_batch)]
    kept += ["--load-id", load_id] if load_id else []
    return shlex.join([program_name(), *kept, "--resume"])


def env_args(args: argparse.Namespace, options: Iterable[Opt]) -> list[str]:
    """Arguments for the options that came from ``AZSQL_BULK_*`` (not from argv).

    :param args: resolved arguments, with ``argv`` and ``sources``.
    :param options: the command's options.
    """
    given = {a.split("=", 1)[0] for a in args.argv if a.startswith("--")}
    out: list[str] = []
    for opt in options:
        if opt.flag in given or opt.env not in os.environ or opt.flag in _NOT_FROM_ENV:
            continue
        value = getattr(args, opt.dest)
        if opt.action == "flag":
            out += [opt.flag] if value else []
        elif opt.action == "append":
            for item in value:
                out += [opt.flag, "=".join(item) if isinstance(item, tuple) else str(item)]
        elif value is not None:
            out += [opt.flag, str(value)]
    if not args.source and os.environ.get("AZSQL_BULK_SOURCE"):
        out = list(args.sources) + out
    return out
