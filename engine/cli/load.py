"""``azsql-bulk load``: load files into a table from the command line.

Running the same command again finishes a stopped load and is a no-op for a finished
one (the load journal makes it safe); ``--fresh`` loads again under a new load id.

Exit codes: 0 loaded (or already loaded); 1 the load failed (nothing committed, or not
resumable); 2 a usage or configuration error (nothing was sent); 3 a partial load that
can be resumed (stopped by a failure, Ctrl-C or SIGTERM): running the same command again
finishes it, and the message prints that command with the load id.
With ``--json`` the last line on stdout is one JSON object, on success and on failure.

The command reads no data itself: it hands the paths and the
:class:`~engine.sources.SourceOptions` to :func:`engine.transfer.transfer`, which opens
the source once (``--dry-run`` opens it to show the plan, and loads nothing).

    azsql-bulk load 'orders/*.parquet' --server myserver.database.windows.net \\
        --database sales --table dbo.orders --auth managed-identity --workers 4
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.batch_size import BatchSize
from engine.cli.arguments import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    UsageError,
    add_options,
    resolve,
)
from engine.cli.connection_args import CONNECTION_OPTIONS, connection_options
from engine.cli.console import configure_logging, emit_json, say
from engine.cli.dry_run import dry_run
from engine.cli.load_args import (
    LOAD_OPTIONS,
    OUTPUT_OPTIONS,
    RERUN_OPTIONS,
    SOURCE_OPTIONS,
    TABLE,
    TRANSFER_OPTIONS,
    source_options,
    transfer_options,
)
from engine.cli.resume import env_args, resume_command
from engine.connection import ConnectionFactory, probe_problem, probe_server
from engine.errors import (
    AzsqlBulkError,
    ConfigurationError,
    ConnectError,
    CredentialError,
    LoadAlreadyJournaled,
    SourceError,
    TransferCancelled,
    TransferError,
)
from engine.journal import JOURNAL_SCHEMA
from engine.journal_admin import JournalAdmin
from engine.names import TableName
from engine.options import Target, TransferOptions
from engine.progress_display import ProgressDisplay
from engine.rejects import REJECTS_TABLE
from engine.results import Progress, TransferResult
from engine.sources import SourceOptions
from engine.transfer import transfer

__all__ = ["register", "run"]

_EPILOG = """\
Every option can also be set as an environment variable AZSQL_BULK_<NAME>
(--rows-per-batch -> AZSQL_BULK_ROWS_PER_BATCH; switches take 1/0); an argument
wins. SOURCE may come from $AZSQL_BULK_SOURCE (several separated by ':').
Secrets are never arguments: --auth sql reads $AZSQL_BULK_SQL_PASSWORD,
--auth access-token reads $AZSQL_BULK_ACCESS_TOKEN (or --access-token-file),
--auth service-principal reads $AZURE_CLIENT_SECRET.

Running the same command again is safe: the load journal in the target database
records every committed batch, so a stopped load resumes where it stopped and a
finished one does nothing ("already loaded"). --fresh loads the source again on
purpose, under a new load id. `azsql-bulk journal` lists and forgets loads.

exit codes: 0 loaded (or already loaded); 1 load failed; 2 usage or configuration
error; 3 partial load, resumable: run the same command again (or the printed one,
which names the load id).

example:
  azsql-bulk load 'orders/*.parquet' --server myserver.database.windows.net \\
      --database sales --table dbo.orders --auth managed-identity --workers 4
"""


def register(sub: Any) -> None:
    """Add the ``load`` command to the ``azsql-bulk`` parser's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "load", help="load Parquet, CSV or Arrow files into a table", allow_abbrev=False,
        description="Load Parquet, CSV or Arrow IPC files (paths, directories, globs) into "
                    "an Azure SQL table, exactly once, over parallel token-authenticated "
                    "connections.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="*", metavar="SOURCE",
                        help="files, directories or globs [env AZSQL_BULK_SOURCE]")
    add_options(parser.add_argument_group("target and load"),
                (TABLE, *TRANSFER_OPTIONS, *RERUN_OPTIONS))
    add_options(parser.add_argument_group("source"), SOURCE_OPTIONS)
    add_options(parser.add_argument_group("output"), OUTPUT_OPTIONS)
    add_options(parser.add_argument_group("connection"), CONNECTION_OPTIONS)
    parser.set_defaults(handler=run)


@dataclass
class _State:
    """What a failure message needs: the load id and the command that resumes the load."""

    argv: list[str]
    wants_json: bool = False
    load_id: str | None = None
    resume: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    env_args: list[str] = field(default_factory=list)
    rows_per_batch: int = 0
    batches_skipped: int = 0
    size: BatchSize | None = None
    display: ProgressDisplay | None = None

    def sized(self, size: BatchSize) -> None:
        """Take the engine's rows per batch: the resume command and the display use it,
        and a size the engine picked (columnstore target, the journal's) is said."""
        self.size, self.rows_per_batch = size, size.rows
        if size.reason not in ("default", "chosen"):
            text = f"azsql-bulk load: {size.describe()}"
            if self.display is not None:
                self.display.note(text)
            else:
                say(text)
        if self.display is not None:
            self.display.rows_per_batch = size.rows
        self.learn(None)

    def learn(self, load_id: str | None) -> None:
        """Take the load id the engine derived; the resume command names it."""
        if load_id:
            self.load_id = load_id
        if self.rows_per_batch:
            self.resume = resume_command(self.argv, self.load_id,
                                         rows_per_batch=self.rows_per_batch,
                                         env_args=self.env_args)


def _sources(args: argparse.Namespace) -> list[str]:
    if args.source:
        return list(args.source)
    env = os.environ.get("AZSQL_BULK_SOURCE", "")
    # ':' separates sources, except the one in a URI's scheme (abfss://...)
    found = [s for s in re.split(r":(?!//)", env) if s.strip()]
    if not found:
        raise UsageError("no SOURCE given: name Parquet, CSV or Arrow files, directories or "
                         "globs (or set $AZSQL_BULK_SOURCE)")
    return found


def run(args: argparse.Namespace) -> int:
    """Run ``azsql-bulk load`` with parsed arguments; returns the exit code."""
    state = _State(argv=list(getattr(args, "argv", []) or []))
    args.argv = state.argv
    state.wants_json = "--json" in state.argv or os.environ.get(
        "AZSQL_BULK_JSON", "").lower() in ("1", "true", "yes", "on")
    try:
        resolve(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS))
        state.wants_json = args.json
        configure_logging(args.log_level)
        return _run(args, state)
    except UsageError as exc:
        return _fail(state, EXIT_USAGE, "usage_error", f"{exc}")
    except LoadAlreadyJournaled as exc:  # resume switched off ($AZSQL_BULK_RESUME=0)
        state.learn(exc.load_id)
        return _fail(state, EXIT_USAGE, "configuration_error",
                     f"{exc}. From the command line: leave resume on (the default) to skip "
                     "the batches already loaded (the printed command does), or add --fresh "
                     "to load the source again", rerun="to skip the batches already loaded, run")
    except ConfigurationError as exc:  # bad table name, missing file, schema mismatch...
        return _fail(state, EXIT_USAGE, "configuration_error", str(exc))
    except CredentialError as exc:
        return _fail(state, EXIT_USAGE, "credential_error", f"no access token: {exc}")
    except SourceError as exc:
        return _fail(state, EXIT_FAILED, "source_error", f"{exc}")
    except AzsqlBulkError as exc:
        return _failed_load(args, exc, state)


def _run(args: argparse.Namespace, state: _State) -> int:
    if not args.table:
        raise UsageError("missing --table (or $AZSQL_BULK_TABLE): name the target table, "
                         "e.g. --table dbo.orders")
    try:
        table = TableName.parse(args.table)
    except ConfigurationError as exc:
        raise UsageError(f"bad --table: {exc}; write it as schema.table, quoting odd names "
                         "with brackets: [my schema].[my.table]") from None
    args.sources = _sources(args)
    if args.fresh:
        if args.load_id:
            raise UsageError("--fresh picks a new load id; leave out --load-id (or leave out "
                             "--fresh to run the load with that id)")
        args.load_id = uuid.uuid4().hex  # nothing journaled under it: every batch loads
    read = source_options(args)
    if args.dry_run:
        return dry_run(args, read)
    target = Target(connection_options(args, warn=say), table)
    display = ProgressDisplay(table=str(target.table), workers=args.workers,
                              load_id=args.load_id or "", rows_per_batch=read.rows_per_batch,
                              mode=args.display, interval=args.progress_interval,
                              # --json keeps stdout for the JSON line alone
                              out=sys.stderr if args.json else None)
    def progress(snapshot: Progress) -> None:
        state.batches_skipped = max(state.batches_skipped, snapshot.batches_skipped)
        if snapshot.load_id and snapshot.load_id != state.load_id:
            state.learn(snapshot.load_id)  # the engine derived it: the resume command names it
            display.load_id = snapshot.load_id
        if display.mode != "off":
            display.update(snapshot)

    load = transfer_options(args, progress)
    state.env_args = env_args(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS))
    state.rows_per_batch, state.display = read.rows_per_batch, display
    state.learn(args.load_id)
    c = target.connection
    _check_reachable(c.server, c.port, timeout=args.login_timeout,
                     attempts=args.connect_attempts)
    if args.fresh:
        say(f"azsql-bulk load: --fresh: loading every batch again under the new load id "
            f"{args.load_id}")
    result = _transfer_with_signals(args.sources, target, load, read, display, state)
    if result.rows == 0 and result.batches == 0 and result.batches_skipped:
        return _already_loaded(args, target, result)
    summary = (f"loaded {result.rows:,} rows ({result.bytes / 1e6:,.1f} MB) into "
               f"{result.table} in {result.seconds:,.1f} s: {result.rows_per_second:,.0f} "
               f"rows/s, {result.mb_per_second:,.2f} MB/s; {result.retries} retries, "
               f"{result.reconnects} reconnects, {result.token_renewals} token renewals"
               + (f"; {result.batches_skipped} batches already loaded, skipped"
                  if result.batches_skipped else "")
               + f"; {transport_text(result)}"
               + (f"; {state.size.describe()}" if state.size is not None
                  and state.size.reason not in ("default", "chosen") else "")
               + f"; load_id {result.load_id}")
    if result.rows_rejected:
        where = ", ".join(filter(None, (args.reject_file, f"[{JOURNAL_SCHEMA}].[{REJECTS_TABLE}]")))
        summary += f"; {result.rows_rejected:,} rows rejected"
        say(f"azsql-bulk load: warning: {result.rows_rejected:,} row(s) were rejected "
            f"(within --max-errors {args.max_errors:,}); they are in {where}")
    if args.json:
        say(summary)
        sizing = {"rows_per_batch": state.size.rows, "rows_per_batch_reason":
                  state.size.reason} if state.size is not None else {}
        emit_json({**result.to_dict(), "status": "ok", "exit_code": EXIT_OK,
                   "target": target.describe(), "mode": args.mode, **sizing})
    else:
        print(summary, flush=True)
    return EXIT_OK


class _Unreachable(AzsqlBulkError):
    """The server's address does not accept TCP connections."""


def _already_loaded(args: argparse.Namespace, target: Target, result: TransferResult) -> int:
    """Every batch was journaled before this run: say so, with when the load completed."""
    completed = None
    try:  # one more query; the answer stands without it
        with ConnectionFactory(target.connection) as factory:
            completed = JournalAdmin(factory).get(result.load_id).last_commit
    except AzsqlBulkError as exc:
        say(f"azsql-bulk load: could not read when the load completed: {exc}")
    when = completed.strftime("%Y-%m-%d %H:%M:%S UTC") if completed else "an earlier run"
    message = (f"already loaded: load id {result.load_id}, completed at {when} "
               f"({result.batches_skipped:,} batches journaled into {result.table}); nothing "
               "was changed. Add --fresh to load the source again")
    if args.json:
        say(message)
        emit_json({**result.to_dict(), "status": "ok", "exit_code": EXIT_OK,
                   "already_loaded": True,
                   "completed_at": completed.isoformat() if completed else None,
                   "target": target.describe(), "mode": args.mode})
    else:
        print(message, flush=True)
    return EXIT_OK


def transport_text(result: TransferResult) -> str:
    """Which transport wrote the rows, and why not bulk copy when it did not.

    >>> from engine.results import TransferResult
    >>> transport_text(TransferResult("t", "x", 1, 1, 1.0, 1, 0, 0, 0, 0, False,
    ...                transport="parameter-arrays", transport_reason="small batches"))
    'via parameter arrays (small batches)'
    """
    if result.rows == 0 and result.batches_skipped:
        return "nothing left to load"
    text = "via " + result.transport.replace("-", " ")
    if result.transport != "bulk-copy" and result.transport_reason:
        text += f" ({result.transport_reason})"
    return text


def _check_reachable(host: str, port: int, *, timeout: float, attempts: int) -> None:
    """Fail fast, naming the cause, when ``host,port`` cannot be resolved or reached.

    The driver would report either as a login timeout after 15 s or more; a refused or
    silent port is tried again with backoff, as the engine retries transient failures.
    """
    try:
        probe_server(host, port, timeout=min(timeout, 15), attempts=attempts)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve server {host!r} ({exc.strerror}); check --server "
                         "(for Azure SQL: <name>.database.windows.net)") from None
    except OSError as exc:
        raise _Unreachable(
            f"cannot reach server {host},{port}: {probe_problem(exc)} (after {attempts} "
            "attempt(s)). Check --server HOST[,PORT], that the server is running, and the "
            "network path: firewall rules (Azure SQL: allow this client's IP, or use its "
            "private endpoint), VPN, proxy") from None


def _transfer_with_signals(sources: list[str], target: Target, options: TransferOptions,
                           read: SourceOptions, display: ProgressDisplay,
                           state: _State) -> TransferResult:
    """Run the transfer; SIGINT/SIGTERM ask it to stop at a batch boundary."""
    def on_signal(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if state.cancel.is_set():
            display.stop()
            say(f"azsql-bulk: {name} again: exiting now; batches in flight roll back on the "
                "server, committed ones stay journaled")
            say(f"resume with:\n  {state.resume}")
            os._exit(EXIT_PARTIAL)
        state.cancel.set()
        display.set_phase("stopping at a batch boundary")
        display.note(f"azsql-bulk: {name}: stopping at the next batch boundary "
                     "(press Ctrl-C again to exit at once)")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with display:
            result = transfer(sources, target, options, source_options=read,
                              cancel=state.cancel, on_batch_size=state.sized)
            display.stop("done", final=transport_text(result))
            return result
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _fail(state: _State, code: int, status: str, message: str, *, rerun: str | None = None,
          **extra: Any) -> int:
    """Say what failed; name the resume command when batches are journaled to resume."""
    prefix = "azsql-bulk load: " + ("error" if code != EXIT_PARTIAL else "stopped")
    say(f"{prefix}: {message}")
    resumable = code == EXIT_PARTIAL or rerun is not None
    if state.resume and resumable:
        say(f"{'resume with' if code == EXIT_PARTIAL else rerun}:\n  {state.resume}")
    if state.wants_json:
        payload = {"status": status, "exit_code": code, "error": message,
                   "load_id": state.load_id, **extra}
        if state.resume and resumable:
            payload["resume_command"] = state.resume
        emit_json(payload)
    return code


def _failed_load(args: argparse.Namespace, exc: AzsqlBulkError, state: _State) -> int:
    """A load that started and stopped: exit 3 when resumable, else 1."""
    committed_rows: int | None = None
    committed_batches: int | None = None
    if isinstance(exc, TransferError):
        state.learn(exc.load_id)
        committed_rows, committed_batches = exc.rows_committed, exc.batches_committed
    cancelled = isinstance(exc, TransferCancelled) or state.cancel.is_set()
    # partial = something of this run is journaled (or an earlier run's, when resuming)
    resumable = isinstance(exc, TransferError) and exc.resumable and bool(
        committed_batches or state.batches_skipped)
    extra: dict[str, Any] = {"error_type": type(exc).__name__, "rows_committed": committed_rows,
             "batches_committed": committed_batches, "resumable": resumable or cancelled}
    if cancelled:
        message = (f"stopped on request after committing {committed_rows or 0:,} rows in "
                   f"{committed_batches or 0:,} batches (load_id {state.load_id}); "
                   "nothing half-written was kept")
        return _fail(state, EXIT_PARTIAL, "cancelled", message, **extra)
    if isinstance(exc, _Unreachable):
        return _fail(state, EXIT_FAILED, "unreachable", str(exc), **extra)
    if isinstance(exc, ConnectError):
        message = (f"{exc}. Check --server (host,port), that the server is reachable from "
                   "here (firewall rules, private endpoint, VPN) and --encrypt")
        return _fail(state, EXIT_FAILED, "connect_error", message, **extra)
    if resumable:
        return _fail(state, EXIT_PARTIAL, "partial", str(exc), **extra)
    return _fail(state, EXIT_FAILED, "failed", str(exc), **extra)
