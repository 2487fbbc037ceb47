"""``azsql-bulk verify SOURCE --table T``: does the table hold what the source holds?

Streams the source once and compares, through the engine's own connection (the same
connection options as ``load``): the row count, every column's non-null count, the sums of
numeric columns, the total lengths of text columns, the time ranges, the rows per value of
low-cardinality columns and a sample of whole rows (see :mod:`engine.verify`). Every
difference is printed with its column, what was compared, the source's value (expected)
and the table's (found); the text output groups them per column and check and shows a few
of each with a count of the rest (``--json`` lists them all). The first line says what was
compared: "matches the source" only when every source row was compared whole; otherwise
how many rows were, since a change confined to other rows' high-cardinality values can
pass the counts and sums.

Exit codes: 0 the table matches; 1 it differs (or a query failed); 2 usage or
configuration error (a missing table among them).

    azsql-bulk verify 'orders/*.parquet' --table dbo.orders --server srv.database.windows.net \\
        --database sales --auth managed-identity --key order_id
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.arguments import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Opt,
    UsageError,
    add_options,
    non_negative_int,
    positive_int,
    resolve,
    split_list,
)
from engine.cli.connection_args import CONNECTION_OPTIONS, connection_options
from engine.cli.console import configure_logging, emit_json, say
from engine.cli.load_args import SOURCE_OPTIONS, TABLE, source_options
from engine.errors import AzsqlBulkError, ConfigurationError, CredentialError
from engine.names import TableName
from engine.options import Target
from engine.verify import (
    DEFAULT_MAX_VALUES,
    DEFAULT_SAMPLE_ROWS,
    MAX_VALUES,
    Difference,
    VerifyReport,
    verify_table,
)

__all__ = ["register"]

#: differences shown per column and check in the text output
SHOWN = 3

_EPILOG = """\
compared: rows; non-null values of every column; sums of numeric columns (integers and
decimals exactly, floats within a relative 1e-9); the total length of text columns; the
smallest and largest values of
timestamp, date and time columns; rows per value of columns with at most
--max-values distinct values (at most 2,000); --sample-rows whole rows, looked up in
batches by --key (an integer, text or decimal column), else by all their integer and text
values (without such columns: by their decimal, date, float and boolean values), and
compared whole. Sources with nanosecond timestamps are compared
at the table's 100 ns. The source is streamed, never held in memory.

exit codes: 0 the table matches the source; 1 it differs, or a query failed; 2 usage or
configuration error (a table that does not exist among them).
"""
_OPTIONS: tuple[Opt, ...] = (
    TABLE,
    Opt("--key", "an integer, text or decimal column that identifies a row, to look sample "
        "rows up by (repeat for a composite key; default: all the row's integer and text "
        "values, else its decimal, date, float and boolean values)",
        action="append", metavar="COL"),
    Opt("--sample-rows", "source rows to compare whole (0: none)", type=non_negative_int,
        default=DEFAULT_SAMPLE_ROWS, metavar="N"),
    Opt("--max-values", f"columns with at most this many distinct values are compared "
        f"value by value (at most {MAX_VALUES:,})", type=positive_int,
        default=DEFAULT_MAX_VALUES, metavar="N"),
    Opt("--json", "print the report as one JSON object, the last line on stdout",
        action="flag"),
    Opt("--log-level", "engine log level", choices=("debug", "info", "warning", "error"),
        default="warning"),
)


def register(sub: Any) -> None:
    """Add the ``verify`` command to the ``azsql-bulk`` parser's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "verify", help="compare a loaded table with its source", allow_abbrev=False,
        description="Compare a table with the files it was loaded from: counts, sums, "
                    "rows per value and sample rows. Same connection and source options as "
                    "`load`.", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="+", metavar="SOURCE",
                        help="the files, directories or globs that were loaded")
    add_options(parser.add_argument_group("verify"), _OPTIONS)
    add_options(parser.add_argument_group("source"), SOURCE_OPTIONS)
    add_options(parser.add_argument_group("connection"), CONNECTION_OPTIONS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``azsql-bulk verify``; returns the exit code."""
    wants_json = "--json" in (getattr(args, "argv", None) or [])
    try:
        resolve(args, (*_OPTIONS, *SOURCE_OPTIONS, *CONNECTION_OPTIONS))
        wants_json = args.json
        configure_logging(args.log_level)
        if not args.table:
            raise UsageError("missing --table (or $AZSQL_BULK_TABLE): the table to verify")
        try:
            table = TableName.parse(args.table)
        except ConfigurationError as exc:
            raise UsageError(f"bad --table: {exc}") from None
        if args.max_values > MAX_VALUES:
            raise UsageError(f"--max-values {args.max_values:,} is too large: the values are "
                             "bound as parameters of one query and Azure SQL takes at most "
                             f"2,100; give at most {MAX_VALUES:,}")
        keys = [k for given in args.key or () for k in split_list(given)]
        target = Target(connection_options(args, warn=say), table)
        report = verify_table(list(args.source), target, source_options=source_options(args),
                              keys=keys, sample_rows=args.sample_rows,
                              max_values=args.max_values)
    except UsageError as exc:
        return _fail(wants_json, EXIT_USAGE, "usage_error", str(exc))
    except CredentialError as exc:
        return _fail(wants_json, EXIT_USAGE, "credential_error", f"no access token: {exc}")
    except ConfigurationError as exc:
        return _fail(wants_json, EXIT_USAGE, "configuration_error", str(exc))
    except AzsqlBulkError as exc:
        return _fail(wants_json, EXIT_FAILED, "failed", str(exc))
    code = EXIT_OK if report.ok else EXIT_FAILED
    if wants_json:
        emit_json({"status": "ok" if report.ok else "differs", "exit_code": code,
                   **report.to_dict()})
    else:
        print(_text(report))
    return code


def _text(report: VerifyReport) -> str:
    head = f"{report.table}: {report.rows:,} source rows, {report.checks:,} checks: "
    if not report.ok:
        head += f"{len(report.differences):,} difference(s)"
    elif report.rows and report.sampled >= report.rows:
        head += "matches the source (every row compared whole)"
    else:
        head += (f"no difference found; {report.sampled:,} of {report.rows:,} rows compared "
                 "whole, the others by counts, sums, text lengths, ranges and per-value counts "
                 "only (a change to high-cardinality values of other rows can pass: raise "
                 "--sample-rows)")
    lines = [head]
    groups: dict[tuple[str | None, str], list[Difference]] = {}
    for d in report.differences:
        groups.setdefault((d.column, _check(d.what)), []).append(d)
    for (column, check), found in groups.items():
        lines += [f"  {d.describe()}" for d in found[:SHOWN]]
        if len(found) > SHOWN:
            lines.append(f"  {column or 'table'}: {check}: and {len(found) - SHOWN:,} more "
                         "(--json lists them all)")
    lines += [f"  note: {n}" for n in report.notes]
    if report.not_sampled:
        lines.append(f"  note: {report.not_sampled:,} sample rows drawn were not compared")
    return "\n".join(lines)


def _check(what: str) -> str:
    """The check a difference comes from: ``sample row (id=3)`` -> ``sample row``."""
    for check in ("sample row", "rows with value"):
        if what.startswith(check):
            return check
    return what


def _fail(wants_json: bool, code: int, status: str, message: str) -> int:
    say(f"azsql-bulk verify: error: {message}")
    if wants_json:
        emit_json({"status": status, "exit_code": code, "error": message})
    return code
