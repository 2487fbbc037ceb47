"""``azsql-bulk load``'s options: the load options' declarations as flags, plus the CLI's own.

The flags of :class:`~engine.options.TransferOptions` and
:class:`~engine.sources.SourceOptions` come from their fields' declarations (see
:mod:`engine.option_spec`): name, help, value kind and default; only the target table
and what shapes this command's output are declared here.

>>> [opt.flag for opt in SOURCE_OPTIONS]
['--column', '--rename', '--rows-per-batch', '--format']
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from engine.cli.arguments import (
    Opt,
    byte_size,
    format_bytes,
    non_negative_float,
    non_negative_int,
    positive_int,
)
from engine.option_spec import OptionSpec, declared, options_from
from engine.options import TransferOptions
from engine.results import Progress
from engine.sources import SourceOptions

__all__ = ["LOAD_OPTIONS", "OUTPUT_OPTIONS", "RERUN_OPTIONS", "SOURCE_OPTIONS", "TABLE",
           "TRANSFER_OPTIONS", "source_options", "transfer_options"]

_PARSERS: dict[str, Callable[[str], Any]] = {
    "count": positive_int, "int": non_negative_int, "seconds": non_negative_float,
    "bytes": byte_size, "text": str, "names": str,
}


def _cli_spelling(choice: str) -> str:
    return choice.replace("_", "-")


def _pair_parser(spelling: str, example: str) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected {spelling} such as {example}, not {text!r}")
        return key.strip(), value.strip()
    return parse


def _flag(f: dataclasses.Field[Any], spec: OptionSpec) -> Opt:
    """The command-line option of one declared field."""
    default = spec.default_on("cli", f)
    text = spec.help + {"names": " (repeatable)", "pairs": " (repeatable)",
                        "bytes": ", e.g. 2GiB"}.get(spec.kind, "")
    common: dict[str, Any] = {"help": text, "metavar": spec.metavar, "dest": f.name}
    if spec.kind == "switch":
        return Opt(spec.flag, action="flag", default=bool(default), **common)
    if spec.kind in ("names", "pairs"):
        parse = _PARSERS["names"] if spec.pair is None else _pair_parser(*spec.pair)
        return Opt(spec.flag, type=parse, action="append", **common)
    if spec.kind == "choice":
        spelled = tuple(_cli_spelling(c) for c in spec.choices)

        def choice(text: str) -> str:
            try:
                return _cli_spelling(spec.engine_choice(text))
            except ValueError:
                raise ValueError(f"{text!r} is not one of {', '.join(spelled)}") from None
        return Opt(spec.flag, type=choice, choices=spelled, default=None if default is None
                   else _cli_spelling(str(default)), **common)
    show = format_bytes if spec.kind == "bytes" else str
    return Opt(spec.flag, type=_PARSERS[spec.kind], default=default, show=show, **common)


def _flags(cls: type) -> tuple[Opt, ...]:
    return tuple(_flag(f, spec) for f, spec in declared(cls) if spec.exposed("cli"))


TABLE = Opt("--table", "target table, schema.table (brackets allowed: [my schema].[t])",
            metavar="SCHEMA.TABLE")
TRANSFER_OPTIONS = _flags(TransferOptions)
SOURCE_OPTIONS = _flags(SourceOptions)
OUTPUT_OPTIONS: tuple[Opt, ...] = (
    Opt("--dry-run", "print the plan (files, rows, Arrow schema, SQL types, DDL, batches); "
        "write nothing and connect to nothing", action="flag"),
    Opt("--json", "print the result as one JSON object, the last line on stdout",
        action="flag"),
    Opt("--progress", "live display (auto: a live view on a terminal, else log lines on "
        "stderr)", choices=("auto", "rich", "log", "off"), default="auto", dest="display"),
    Opt("--progress-interval", "seconds between progress log lines",
        type=non_negative_float, default=5.0, metavar="S"),
    Opt("--log-level", "engine log level", choices=("debug", "info", "warning", "error"),
        default="warning"),
)
RERUN_OPTIONS: tuple[Opt, ...] = (
    Opt("--fresh", "load the source again on purpose, under a new load id (without it, "
        "running the same command again resumes or skips the load the journal holds; "
        "an append then writes the rows twice)", action="flag"),
)
LOAD_OPTIONS = (TABLE, *TRANSFER_OPTIONS, *RERUN_OPTIONS, *SOURCE_OPTIONS, *OUTPUT_OPTIONS)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The declared options' values; an unset repeatable option is None (the default)."""
    return {name: value if value != () else None for name, value in vars(args).items()}


def source_options(args: argparse.Namespace) -> SourceOptions:
    """The :class:`~engine.sources.SourceOptions` of resolved arguments."""
    built: SourceOptions = options_from(SourceOptions, _given(args), "cli")
    return built


def transfer_options(args: argparse.Namespace,
                     progress: Callable[[Progress], Any] | None) -> TransferOptions:
    """The :class:`~engine.options.TransferOptions` of resolved arguments.

    :param args: resolved arguments.
    :param progress: the display's progress callback, or None.
    """
    built: TransferOptions = options_from(TransferOptions, _given(args), "cli",
                                          progress=progress)
    return built
