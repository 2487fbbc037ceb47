"""``azsql-bulk journal``: the load journal as a command (list, show, forget, prune).

Every load journals its committed batches in the target database
(``[azsql_bulk].[load_journal]``, see :mod:`engine.journal`); that is what lets the same
``azsql-bulk load`` command finish a stopped load and do nothing for a finished one.
These commands read it and clean it up, with the same connection options as ``load``;
the work is :class:`engine.journal_admin.JournalAdmin`'s.

Exit codes: 0 done; 1 failed (or a confirmation was declined); 2 usage or configuration
error (an unknown load id among them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from engine.cli.arguments import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Opt,
    UsageError,
    add_options,
    resolve,
)
from engine.cli.connection_args import CONNECTION_OPTIONS, connection_options
from engine.cli.console import configure_logging, emit_json, say
from engine.connection import ConnectionFactory
from engine.errors import AzsqlBulkError, ConfigurationError, CredentialError
from engine.journal_admin import (
    BatchRecord,
    Forgotten,
    JournalAdmin,
    LoadSummary,
    parse_age,
)

__all__ = ["register"]

_EPILOG = """\
The journal is [azsql_bulk].[load_journal] in the target database: one row per
committed batch. It makes running the same `azsql-bulk load` command again safe: a
stopped load resumes, a finished one does nothing. Forget a load (or prune old ones)
once it will not be run again; running it afterwards loads every batch again.

exit codes: 0 done; 1 failed or not confirmed; 2 usage or configuration error.
"""
_COMMON: tuple[Opt, ...] = (
    Opt("--json", "print the result as one JSON object, the last line on stdout",
        action="flag"),
    Opt("--log-level", "engine log level", choices=("debug", "info", "warning", "error"),
        default="warning"),
)
_CONFIRM = (Opt("--yes", "do not ask for confirmation", action="flag"),)


class _Age:
    """An age as parsed (:func:`parse_age`) and as the user wrote it."""

    def __init__(self, text: str) -> None:
        self.delta = parse_age(text)
        self.text = text.strip()

    def __str__(self) -> str:
        return self.text


_PRUNE = (Opt("--older-than", "forget loads whose last commit is older than this age "
              "(e.g. 30d, 12h, 2w)", type=_Age, metavar="AGE"),
          Opt("--dry-run", "list the loads that would be forgotten; forget nothing",
              action="flag"))


def register(sub: Any) -> None:
    """Add the ``journal`` command and its subcommands to the ``azsql-bulk`` parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "journal", help="list, show, forget or prune loads in the load journal",
        allow_abbrev=False, description="The load journal of a database: which loads "
        "committed what, and when. Same connection options as `load`.", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION")
    actions.required = True
    specs: list[tuple[str, str, Callable[..., int], tuple[Opt, ...], bool]] = [
        ("list", "the loads in the journal: id, table, mode, state, batches, rows, first "
                 "and last commit, login", _list, (), False),
        ("show", "one load and its batches by source file", _show, (), True),
        ("forget", "delete one load's journal rows (and its staging table); asks first",
         _forget, _CONFIRM, True),
        ("prune", "forget the loads whose last commit is older than --older-than; asks first",
         _prune, (*_PRUNE, *_CONFIRM), False),
    ]
    for name, text, handler, own, takes_id in specs:
        p = actions.add_parser(name, help=text, description=text, allow_abbrev=False)
        if takes_id:
            p.add_argument("load_id", metavar="LOAD_ID", help="the load's id (journal list)")
        options = (*own, *_COMMON)
        add_options(p.add_argument_group("options"), options)
        add_options(p.add_argument_group("connection"), CONNECTION_OPTIONS)
        p.set_defaults(handler=_runner(handler, options))


def _runner(handler: Callable[..., int], options: Sequence[Opt]) -> Callable[[Any], int]:
    def run(args: argparse.Namespace) -> int:
        wants_json = "--json" in (getattr(args, "argv", None) or [])
        try:
            resolve(args, (*options, *CONNECTION_OPTIONS))
            wants_json = args.json
            configure_logging(args.log_level)
            factory = ConnectionFactory(connection_options(args, warn=say))
            try:
                return handler(args, JournalAdmin(factory))
            finally:
                factory.close()
        except UsageError as exc:
            return _fail(args, wants_json, EXIT_USAGE, "usage_error", str(exc))
        except CredentialError as exc:
            return _fail(args, wants_json, EXIT_USAGE, "credential_error",
                         f"no access token: {exc}")
        except ConfigurationError as exc:
            return _fail(args, wants_json, EXIT_USAGE, "configuration_error", str(exc))
        except AzsqlBulkError as exc:
            return _fail(args, wants_json, EXIT_FAILED, "failed", str(exc))
    return run


def _fail(args: argparse.Namespace, wants_json: bool, code: int, status: str,
          message: str) -> int:
    say(f"azsql-bulk journal {args.journal_command}: error: {message}")
    if wants_json:
        emit_json({"status": status, "exit_code": code, "error": message})
    return code


# -- formatting ------------------------------------------------------------------------------
def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {4, 5, 6}  # batches, rows, rejects
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in rows)


def _line(s: LoadSummary) -> list[str]:
    return [s.load_id, s.table, s.mode or "-", s.state, f"{s.batches:,}", f"{s.rows:,}",
            f"{s.rejects:,}", _when(s.first_commit), _when(s.last_commit),
            ", ".join(s.logins) or "-"]


_HEADINGS = ["LOAD ID", "TABLE", "MODE", "STATE", "BATCHES", "ROWS", "REJECTS",
             "FIRST COMMIT (UTC)", "LAST COMMIT (UTC)", "LOGIN"]


def _describe(s: LoadSummary) -> str:
    return (f"load {s.load_id} into {s.table} ({s.mode or 'mode not journaled'}, {s.state}: "
            f"{s.batches:,} batches, {s.rows:,} rows"
            + (f", {s.rejects:,} rejected" if s.rejects else "")
            + f", last commit {_when(s.last_commit)} UTC)")


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """Ask on stderr, read stdin; anything but y/yes (or no answer) declines."""
    if args.yes:
        return True
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


# -- actions ---------------------------------------------------------------------------------
def _list(args: argparse.Namespace, admin: JournalAdmin) -> int:
    loads = admin.loads()
    if args.json:
        emit_json({"status": "ok", "exit_code": EXIT_OK, "loads": [s.to_dict() for s in loads]})
    elif not loads:
        print(f"no loads in the journal of {admin.factory.where}")
    else:
        print(_table([_HEADINGS, *(_line(s) for s in loads)]))
    return EXIT_OK


def _by_source(batches: list[BatchRecord]) -> dict[str, list[BatchRecord]]:
    grouped: dict[str, list[BatchRecord]] = {}
    for b in batches:
        grouped.setdefault(b.source, []).append(b)
    return grouped


def _show(args: argparse.Namespace, admin: JournalAdmin) -> int:
    summary, batches = admin.show(args.load_id)
    grouped = _by_source(batches)
    if args.json:
        emit_json({"status": "ok", "exit_code": EXIT_OK, "load": summary.to_dict(),
                   "sources": [{"source": source, "batches": len(items),
                                "rows": sum(b.rows for b in items),
                                "batch_list": [b.to_dict() for b in items]}
                               for source, items in grouped.items()]})
        return EXIT_OK
    print(_table([_HEADINGS, _line(summary)]))
    if summary.staged and summary.state != "complete":
        print(f"staging table {summary.target}")
    for source, items in grouped.items():
        print(f"\n{source}: {len(items):,} batches, {sum(b.rows for b in items):,} rows")
        for b in items:
            where = b.batch_id[len(source):] or b.batch_id
            print(f"  {where:<24} {b.rows:>12,} rows  {_when(b.committed_at)}"
                  + (f"  {b.login}" if b.login else ""))
    return EXIT_OK


def _forgotten_text(f: Forgotten) -> str:
    return (f"forgot load {f.load.load_id} ({f.journal_rows:,} journal rows)"
            + (f"; dropped its staging table {f.dropped_stage}" if f.dropped_stage else ""))


def _forget(args: argparse.Namespace, admin: JournalAdmin) -> int:
    summary = admin.get(args.load_id)  # an unknown id is refused before asking
    question = (f"forget {_describe(summary)}? Rows it loaded stay in the table; running "
                "it again loads every batch again"
                + (f"; its staging table {summary.target} is dropped" if summary.staged
                   and summary.state != "complete" else "") + ".")
    if not _confirm(args, question):
        say("azsql-bulk journal forget: not confirmed; nothing was forgotten "
            "(--yes skips the question)")
        if args.json:
            emit_json({"status": "not_confirmed", "exit_code": EXIT_FAILED})
        return EXIT_FAILED
    forgotten = admin.forget(args.load_id)
    if args.json:
        emit_json({"status": "ok", "exit_code": EXIT_OK, "forgotten": forgotten.to_dict()})
    else:
        print(_forgotten_text(forgotten))
    return EXIT_OK


def _prune(args: argparse.Namespace, admin: JournalAdmin) -> int:
    if args.older_than is None:
        raise UsageError("prune needs --older-than AGE (e.g. 30d): loads whose last commit "
                         "is older are forgotten")
    candidates = admin.prune(args.older_than.delta, dry_run=True)
    if not candidates:
        if args.json:
            emit_json({"status": "ok", "exit_code": EXIT_OK, "forgotten": []})
        else:
            print(f"no load's last commit is older than {args.older_than}")
        return EXIT_OK
    listing = "\n".join(f"  {_describe(f.load)}" for f in candidates)
    if args.dry_run:
        if args.json:
            emit_json({"status": "dry_run", "exit_code": EXIT_OK,
                       "would_forget": [f.load.to_dict() for f in candidates]})
        else:
            print(f"would forget {len(candidates)} load(s):\n{listing}")
        return EXIT_OK
    say(f"{len(candidates)} load(s) last committed more than {args.older_than} ago:\n{listing}")
    if not _confirm(args, f"forget these {len(candidates)} load(s)?"):
        say("azsql-bulk journal prune: not confirmed; nothing was forgotten "
            "(--yes skips the question)")
        if args.json:
            emit_json({"status": "not_confirmed", "exit_code": EXIT_FAILED})
        return EXIT_FAILED
    forgotten = admin.prune(args.older_than.delta,
                            only={f.load.load_id for f in candidates})
    if args.json:
        emit_json({"status": "ok", "exit_code": EXIT_OK,
                   "forgotten": [f.to_dict() for f in forgotten]})
    else:
        print("\n".join(_forgotten_text(f) for f in forgotten))
    return EXIT_OK
