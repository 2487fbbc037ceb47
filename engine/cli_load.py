"""``azsql-bulk load``: load files into a table from the command line.

Exit codes: 0 loaded; 1 the load failed (nothing committed, or not resumable); 2 a usage
or configuration error (nothing was sent); 3 a partial load that can be resumed (stopped
by a failure, Ctrl-C or SIGTERM): the message prints the exact command that resumes it.
With ``--json`` the last line on stdout is one JSON object, on success and on failure.

    azsql-bulk load 'orders/*.parquet' --server myserver.database.windows.net \\
        --database sales --table dbo.orders --auth managed-identity --workers 4
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.cli import (
    CONNECTION_OPTIONS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    Opt,
    UsageError,
    add_options,
    byte_size,
    connection_options,
    credential_options,
    non_negative_float,
    positive_int,
    resolve,
)
from engine.errors import AzsqlBulkError, ConfigurationError, CredentialError, SourceError

__all__ = ["LOAD_OPTIONS", "add_parser", "resume_command", "run"]

log = logging.getLogger("engine.cli")

_SECRET_ENV = ("AZSQL_BULK_SQL_PASSWORD", "AZSQL_BULK_ACCESS_TOKEN", "AZURE_CLIENT_SECRET",
               "AZURE_CLIENT_CERTIFICATE_PASSWORD", "IDENTITY_HEADER", "MSI_SECRET")


def _sql_type(text: str) -> tuple[str, str]:
    column, sep, sql = text.partition("=")
    if not sep or not column.strip() or not sql.strip():
        raise ValueError(f"expected COLUMN=SQLTYPE such as price=decimal(18,2), not {text!r}")
    return column.strip(), sql.strip()


def _rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise ValueError(f"expected SOURCE=TARGET column names such as ts=order_time, "
                         f"not {text!r}")
    return old.strip(), new.strip()


LOAD_OPTIONS: tuple[Opt, ...] = (
    Opt("--table", "target table, schema.table (brackets allowed: [my schema].[t])",
        metavar="SCHEMA.TABLE"),
    Opt("--mode", "append (journaled inserts), replace (stage, then swap in) or upsert "
        "(stage, then MERGE on --key)", choices=("append", "replace", "upsert"),
        default="append"),
    Opt("--key", "a key column for --mode upsert (repeat for a composite key)",
        action="append", metavar="COL"),
    Opt("--create", "create the table from the source's schema when missing (if-missing), "
        "never, or drop and recreate it with --mode replace (replace-schema)",
        choices=("if-missing", "never", "replace-schema"), default="if-missing"),
    Opt("--sql-type", "SQL type of a column, e.g. price=decimal(18,2) (repeatable)",
        type=_sql_type, action="append", metavar="COL=TYPE"),
    Opt("--column", "a source column to load, in load order (repeatable; default: all)",
        action="append", metavar="COL"),
    Opt("--rename", "load source column SRC into target column DST (repeatable)",
        type=_rename, action="append", metavar="SRC=DST"),
    Opt("--format", "source format when file suffixes do not tell",
        choices=("parquet", "csv", "ipc")),
    Opt("--workers", "parallel connections", type=positive_int, default=4, metavar="N"),
    # the default is engine.sources.DEFAULT_ROWS_PER_BATCH, written out so that --help and
    # argument errors do not import pyarrow (a unit test keeps the two equal)
    Opt("--rows-per-batch", "rows per INSERT transaction; a resumed load must use the value "
        "it started with", type=positive_int, default=50_000, metavar="N"),
    Opt("--max-memory", "ceiling on the Arrow bytes of batches read ahead and in flight "
        "(default 512MiB), e.g. 2GiB",
        type=byte_size, metavar="SIZE"),
    Opt("--load-id", "the load's journal id (default: derived from the source files and the "
        "target, so re-running the same command resumes it)", metavar="ID"),
    Opt("--resume", "skip batches already journaled under the load id (without it, a load "
        "id that already has batches is refused)", action="flag"),
    Opt("--nan-as-null", "write NaN and ±Inf as NULL instead of failing", action="flag"),
    Opt("--max-retries", "replays of one batch after transient errors", type=int, default=5,
        metavar="N"),
    Opt("--token-refresh-margin", "reconnect with a fresh token this many seconds before the "
        "login token expires", type=non_negative_float, default=300.0, metavar="S"),
    Opt("--dry-run", "print the plan (files, rows, Arrow schema, SQL types, DDL, batches); "
        "write nothing and connect to nothing", action="flag"),
    Opt("--json", "print the result as one JSON object, the last line on stdout",
        action="flag"),
    Opt("--progress", "live display (auto: a live view on a terminal, else log lines on "
        "stderr)", choices=("auto", "rich", "log", "off"), default="auto"),
    Opt("--progress-interval", "seconds between progress log lines",
        type=non_negative_float, default=5.0, metavar="S"),
    Opt("--log-level", "engine log level", choices=("debug", "info", "warning", "error"),
        default="warning"),
)

_EPILOG = """\
Every option can also be set as an environment variable AZSQL_BULK_<NAME>
(--rows-per-batch -> AZSQL_BULK_ROWS_PER_BATCH; switches take 1/0); an argument
wins. SOURCE may come from $AZSQL_BULK_SOURCE (several separated by ':').
Secrets are never arguments: --auth sql reads $AZSQL_BULK_SQL_PASSWORD,
--auth access-token reads $AZSQL_BULK_ACCESS_TOKEN (or --access-token-file),
--auth service-principal reads $AZURE_CLIENT_SECRET.

exit codes: 0 loaded; 1 load failed; 2 usage or configuration error;
3 partial load, resumable: run the printed command (it adds --load-id ID --resume).

example:
  azsql-bulk load 'orders/*.parquet' --server myserver.database.windows.net \\
      --database sales --table dbo.orders --auth managed-identity --workers 4
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``load`` subcommand to ``sub`` (the handler is set by the caller)."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "load", help="load Parquet, CSV or Arrow files into a table", allow_abbrev=False,
        description="Load Parquet, CSV or Arrow IPC files (paths, directories, globs) into "
                    "an Azure SQL table, exactly once, over parallel token-authenticated "
                    "connections.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="*", metavar="SOURCE",
                        help="files, directories or globs [env AZSQL_BULK_SOURCE]")
    add_options(parser.add_argument_group("target and load"), LOAD_OPTIONS)
    add_options(parser.add_argument_group("connection"), CONNECTION_OPTIONS)
    return parser


# -- output helpers -----------------------------------------------------------------------------

def _secrets() -> list[str]:
    return [v for k in _SECRET_ENV if len(v := os.environ.get(k, "")) >= 4]


def scrub_text(text: str) -> str:
    """``text`` with the values of secret-holding environment variables replaced by ***."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub_text(record.getMessage())
        record.args = None
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is now (the live display redirects it)."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_logging(level: str) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger("engine")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.captureWarnings(True)


def _say(text: str) -> None:
    print(scrub_text(text), file=sys.stderr, flush=True)


def _emit_json(payload: dict[str, Any]) -> None:
    text = scrub_text(json.dumps(payload, default=str, sort_keys=True))
    print(text, flush=True)


def program_name() -> str:
    """How the user invoked us, for commands we print (``azsql-bulk`` when unclear)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if Path(argv0).name == "azsql-bulk" else "azsql-bulk"


def resume_command(argv: Sequence[str], load_id: str, *, rows_per_batch: int,
                   env_args: Sequence[str] = ()) -> str:
    """The command that resumes a load: the same arguments plus ``--load-id ID --resume``.

    Options set through ``AZSQL_BULK_*`` variables are spelled out (``env_args``), and
    ``--rows-per-batch`` always is, since batch ids depend on it. ``argv`` was checked for
    secrets before anything ran, so it holds none.

    :param argv: the original arguments, starting with ``load``.
    :param load_id: the load's journal id.
    :param rows_per_batch: the batch size the load ran with.
    :param env_args: arguments equivalent to the options taken from the environment.

    >>> resume_command(["load", "a.parquet", "--table", "t", "--dry-run"], "abc",
    ...                rows_per_batch=10)
    'azsql-bulk load a.parquet --table t --rows-per-batch 10 --load-id abc --resume'
    """
    drop_with_value = {"--load-id", "--rows-per-batch"}
    drop = {"--resume", "--dry-run"}
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop_with_value:
            skip = "=" not in arg
            continue
        if name in drop:
            continue
        kept.append(arg)
    kept += [*env_args, "--rows-per-batch", str(rows_per_batch), "--load-id", load_id,
             "--resume"]
    return shlex.join([program_name(), *kept])


def _env_args(args: argparse.Namespace) -> list[str]:
    """Arguments for the options that came from ``AZSQL_BULK_*`` (not from argv)."""
    given = {a.split("=", 1)[0] for a in args.argv if a.startswith("--")}
    out: list[str] = []
    for opt in (*LOAD_OPTIONS, *CONNECTION_OPTIONS):
        if opt.flag in given or opt.env not in os.environ or opt.flag in (
                "--load-id", "--rows-per-batch", "--resume", "--dry-run", "--json"):
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


# -- the command --------------------------------------------------------------------------------

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


def _transfer_options(args: argparse.Namespace, load_id: str,
                      progress: Callable[[Any], None] | None) -> Any:
    from engine.options import TransferOptions

    fields = {f.name for f in dataclasses.fields(TransferOptions)}
    wanted: dict[str, Any] = {
        "workers": args.workers, "rows_per_batch": args.rows_per_batch, "mode": args.mode,
        "create": args.create.replace("-", "_"), "sql_types": dict(args.sql_type),
        "load_id": load_id, "resume": args.resume, "nan_as_null": args.nan_as_null,
        "max_retries": args.max_retries, "token_refresh_margin": args.token_refresh_margin,
        "progress": progress,
    }
    if args.key:
        wanted["keys"] = tuple(args.key)
    if args.max_memory is not None:
        wanted["max_memory_bytes"] = args.max_memory
    unsupported = sorted(k for k in wanted if k not in fields)
    if unsupported:
        flags = ", ".join("--key" if k == "keys" else "--" + k.replace("_bytes", "")
                          .replace("_", "-") for k in unsupported)
        raise UsageError(f"{flags}: not supported by this version of the engine")
    return TransferOptions(**wanted)


def run(args: argparse.Namespace) -> int:
    """Run ``azsql-bulk load`` with parsed arguments; returns the exit code."""
    argv: list[str] = list(getattr(args, "argv", []) or [])
    args.argv = argv
    wants_json = "--json" in argv or os.environ.get("AZSQL_BULK_JSON", "").lower() in (
        "1", "true", "yes", "on")
    state: dict[str, Any] = {}
    try:
        resolve(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS))
        wants_json = args.json
        _configure_logging(args.log_level)
        return _run(args, state)
    except UsageError as exc:
        return _fail(wants_json, EXIT_USAGE, "usage_error", f"{exc}", state)
    except ConfigurationError as exc:  # bad table name, missing file, schema mismatch...
        from engine.transfer import LoadAlreadyJournaled

        message = str(exc)
        if isinstance(exc, LoadAlreadyJournaled) and not args.resume:
            message += (". From the command line: add --resume to skip the batches already "
                        "loaded (the printed command does), or give a new --load-id to load "
                        "the source again")
        return _fail(wants_json, EXIT_USAGE, "configuration_error", message, state,
                     rerun="to skip the batches already loaded, run" if state.get("load_id")
                     and not args.resume else None)
    except CredentialError as exc:
        return _fail(wants_json, EXIT_USAGE, "credential_error",
                     f"no access token: {exc}", state)
    except SourceError as exc:
        return _fail(wants_json, EXIT_FAILED, "source_error", f"{exc}", state)
    except AzsqlBulkError as exc:
        return _failed_load(args, exc, state)


def _run(args: argparse.Namespace, state: dict[str, Any]) -> int:
    from engine.journal import default_load_id
    from engine.options import Target
    from engine.schema import split_table_name
    from engine.sources import open_source

    if not args.table:
        raise UsageError("missing --table (or $AZSQL_BULK_TABLE): name the target table, "
                         "e.g. --table dbo.orders")
    try:
        split_table_name(args.table)
    except ConfigurationError as exc:
        raise UsageError(f"bad --table: {exc}; write it as schema.table, quoting odd names "
                         "with brackets: [my schema].[my.table]") from None
    args.sources = _sources(args)
    from engine.remote import storage_for

    source = open_source(args.sources, columns=list(args.column) if args.column else None,
                         rename=dict(args.rename or ()), rows_per_batch=args.rows_per_batch,
                         fmt=args.format, storage=storage_for(credential_options(args)))
    if args.dry_run:
        return _dry_run(args, source)
    options = connection_options(args, warn=_say)
    _check_reachable(options.server, options.port, timeout=args.login_timeout,
                     attempts=args.connect_attempts)
    target = Target(options, args.table)
    load_id = args.load_id or default_load_id(source.fingerprint, target.describe())
    state["load_id"] = load_id
    state["resume"] = resume_command(args.argv, load_id, rows_per_batch=args.rows_per_batch,
                                     env_args=_env_args(args))
    from engine.progress_display import ProgressDisplay

    display = ProgressDisplay(table=target.qualified, workers=args.workers, load_id=load_id,
                              rows_per_batch=args.rows_per_batch,
                              mode="off" if args.progress == "off" else args.progress,
                              interval=args.progress_interval,
                              # --json keeps stdout for the JSON line alone
                              out=sys.stderr if args.json else None)
    state["display"] = display
    transfer_options = _transfer_options(
        args, load_id, display.update if display.mode != "off" else None)
    result = _transfer_with_signals(source, target, transfer_options, display, state)
    out = result.to_dict()
    summary = (f"loaded {result.rows:,} rows ({result.bytes / 1e6:,.1f} MB) into "
               f"{result.table} in {result.seconds:,.1f} s: {result.rows_per_second:,.0f} "
               f"rows/s, {result.mb_per_second:,.2f} MB/s; {result.retries} retries, "
               f"{result.reconnects} reconnects, {result.token_renewals} token renewals"
               + (f"; {result.batches_skipped} batches already loaded, skipped"
                  if result.batches_skipped else "")
               + f"; load_id {result.load_id}")
    if args.json:
        _say(summary)
        out.update(status="ok", exit_code=EXIT_OK, target=target.describe(),
                   mode=args.mode, source_files=len(source.files),
                   source_rows=source.total_rows)
        _emit_json(out)
    else:
        print(summary, flush=True)
    return EXIT_OK


def _file_layout(path: str, fmt: str, rows_per_batch: int) -> tuple[int | None, int | None, str]:
    """(rows, batches, units) of one file from its metadata; None when only reading tells."""
    import math

    import pyarrow as pa
    import pyarrow.ipc as paipc
    import pyarrow.parquet as pq

    if fmt == "parquet":
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        return (sum(sizes), sum(math.ceil(n / rows_per_batch) for n in sizes),
                f"{len(sizes)} row group(s)")
    if fmt == "ipc":
        with pa.memory_map(path) as mm:
            try:
                reader = paipc.open_file(mm)
            except pa.ArrowInvalid:
                return None, None, "IPC stream"
            sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        return (sum(sizes), sum(math.ceil(n / rows_per_batch) for n in sizes),
                f"{len(sizes)} record batch(es)")
    return None, None, "CSV"


_NO_LOAD_ID = "(derived from the files and the target: give --server and --database to see it)"


def _megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:,.1f}"


def _dry_run(args: argparse.Namespace, source: Any) -> int:
    """Print what a load would do; no connection is made and nothing is written."""
    from engine.schema import create_table_sql, plan_table
    from engine.sources import file_format

    sample = source.batches()
    first = next(sample, None)
    sample.close()  # let go of the reader now: see _Load.run
    plan = plan_table(source.schema, overrides=dict(args.sql_type),
                      sample=first.data if first is not None else None)
    from engine.remote import is_remote

    files = []
    read: dict[str, list[int]] | None = None  # rows per batch of each file, read once
    for path in source.files:
        fmt = file_format(path, args.format)
        remote = is_remote(path)
        if remote:  # objects in storage: count by streaming them (still writes nothing)
            rows, batches, units = None, None, "object"
        else:
            rows, batches, units = _file_layout(path, fmt, args.rows_per_batch)
        if rows is None:  # CSV and IPC streams, objects: count by reading (all in one pass)
            if read is None:
                read = {}
                for b in source.batches():
                    read.setdefault(b.location.source, []).append(b.data.num_rows)
            counted = [n for where, sizes in read.items() for n in sizes
                       if where == path or (remote and where.startswith(path + "@"))]
            rows, batches = sum(counted), len(counted)
        files.append({"path": path, "format": fmt, "rows": rows, "batches": batches,
                      "bytes": None if remote else os.path.getsize(path), "units": units})
    total_rows = sum(f["rows"] for f in files)
    total_batches = sum(f["batches"] for f in files)
    ddl = create_table_sql(plan, args.table)
    server = args.server or "(no --server given)"
    load_id = args.load_id
    if load_id is None and args.server and args.database:
        from engine.journal import default_load_id
        from engine.options import Target

        target = Target(connection_options(args, warn=_say), args.table)  # nothing connects
        load_id = default_load_id(source.fingerprint, target.describe())
    lines = ["dry run: nothing is written and no connection is made", "",
             f"target   {server} / {args.database or '(no --database)'} / {args.table}",
             f"         mode {args.mode}, create {args.create}, {args.workers} worker(s), "
             f"{args.rows_per_batch:,} rows per batch",
             f"load id  {load_id or _NO_LOAD_ID}",
             f"resume   {'yes: batches already journaled are skipped' if args.resume else 'no'}",
             "", f"source   {len(files)} file(s), {total_rows:,} rows"]
    lines += [f"  {f['path']}  {f['format']}, {f['rows']:,} rows, {_megabytes(f['bytes'])} MB, "
              f"{f['units']}" for f in files]
    lines += ["", "columns  (Arrow type -> SQL type)"]
    width = max(len(c.name) for c in plan.columns)
    lines += [f"  {c.name:<{width}}  {c.arrow_type!s:<28} {c.sql_type.sql()}"
              f"{'' if c.nullable else ' NOT NULL'}{'  (from --sql-type)' if c.overridden else ''}"
              for c in plan.columns]
    lines += ["", "DDL (run only if the table is missing and --create allows it)",
              *("  " + line for line in ddl.splitlines()), "",
              f"batches  {total_batches:,} of at most {args.rows_per_batch:,} rows "
              "(cut at file and row-group boundaries)"]
    lines += [f"  {f['path']}: {f['batches']:,} batch(es)" for f in files]
    print("\n".join(lines), flush=True)
    if args.json:
        _emit_json({"status": "dry_run", "exit_code": EXIT_OK, "table": args.table,
                    "load_id": load_id,
                    "files": files, "rows": total_rows, "batches": total_batches,
                    "columns": [{"name": c.name, "arrow_type": str(c.arrow_type),
                                 "sql_type": c.sql_type.sql(), "nullable": c.nullable}
                                for c in plan.columns], "ddl": ddl})
    return EXIT_OK


class _Unreachable(AzsqlBulkError):
    """The server's address does not accept TCP connections."""


def _check_reachable(host: str, port: int, *, timeout: float, attempts: int) -> None:
    """Fail fast, naming the cause, when ``host,port`` cannot be resolved or reached.

    The driver would report either as a login timeout after 15 s or more; a refused or
    silent port is retried like the engine retries transient failures (with backoff).
    """
    import socket
    import time

    for attempt in range(1, attempts + 1):
        try:
            socket.create_connection((host, port), timeout=min(timeout, 15)).close()
            return
        except socket.gaierror as exc:
            raise UsageError(f"cannot resolve server {host!r} ({exc.strerror}); check --server "
                             "(for Azure SQL: <name>.database.windows.net)") from None
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
            if attempt == attempts:
                raise _Unreachable(
                    f"cannot reach server {host},{port}: {problem} (after {attempts} "
                    "attempt(s)). Check --server HOST[,PORT], that the server is running, "
                    "and the network path: firewall rules (Azure SQL: allow this client's "
                    "IP, or use its private endpoint), VPN, proxy") from None
            time.sleep(min(2.0 ** (attempt - 1), 10.0))


def _transfer_with_signals(source: Any, target: Any, options: Any, display: Any,
                           state: dict[str, Any]) -> Any:
    """Run the transfer; SIGINT/SIGTERM ask it to stop at a batch boundary."""
    from engine.transfer import transfer

    cancel = threading.Event()
    supports_cancel = "cancel" in inspect.signature(transfer).parameters
    state["cancel"] = cancel

    def on_signal(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if cancel.is_set() or not supports_cancel:
            display.stop()
            _say(f"azsql-bulk: {name} again: exiting now; batches in flight roll back on the "
                 "server, committed ones stay journaled")
            _say(f"resume with:\n  {state['resume']}")
            os._exit(EXIT_PARTIAL)
        cancel.set()
        display.set_phase("stopping at a batch boundary")
        display.note(f"azsql-bulk: {name}: stopping at the next batch boundary "
                     "(press Ctrl-C again to exit at once)")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with display:
            kwargs: dict[str, Any] = {"cancel": cancel} if supports_cancel else {}
            result = transfer(source, target, options, **kwargs)
            display.stop("done")
            return result
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _fail(wants_json: bool, code: int, status: str, message: str,
          state: dict[str, Any], **extra: Any) -> int:
    prefix = "azsql-bulk load: " + ("error" if code != EXIT_PARTIAL else "stopped")
    _say(f"{prefix}: {message}")
    rerun = extra.pop("rerun", None)
    if state.get("resume") and (code == EXIT_PARTIAL or rerun):
        verb = "resume with" if code == EXIT_PARTIAL else (
            rerun if isinstance(rerun, str) else "after fixing the cause, re-run with")
        _say(f"{verb}:\n  {state['resume']}")
    if wants_json:
        payload = {"status": status, "exit_code": code, "error": message,
                   "load_id": state.get("load_id"), **extra}
        if state.get("resume"):
            payload["resume_command"] = state["resume"]
        _emit_json(payload)
    return code


def _failed_load(args: argparse.Namespace, exc: AzsqlBulkError, state: dict[str, Any]) -> int:
    """A load that started and stopped: exit 3 when resumable, else 1."""
    from engine.errors import ConnectError
    from engine.transfer import TransferError

    display = state.get("display")
    latest = getattr(display, "_latest", None)
    committed_rows = getattr(exc, "rows_committed", None)
    committed_batches = getattr(exc, "batches_committed", None)
    if committed_rows is None and latest is not None:  # an engine without these fields
        committed_rows, committed_batches = latest.rows, latest.batches
    cancelled = type(exc).__name__ == "TransferCancelled" or (
        state.get("cancel") is not None and state["cancel"].is_set())
    journaled = getattr(exc, "resumable", isinstance(exc, TransferError))
    # partial = something of this run is journaled (or an earlier run's, when resuming)
    resumable = bool(journaled) and bool(committed_batches or getattr(args, "resume", False))
    extra = {"error_type": type(exc).__name__, "rows_committed": committed_rows,
             "batches_committed": committed_batches, "resumable": resumable or cancelled}
    wants_json = bool(getattr(args, "json", False))
    if cancelled:
        message = (f"stopped on request after committing {committed_rows or 0:,} rows in "
                   f"{committed_batches or 0:,} batches (load_id {state.get('load_id')}); "
                   "nothing half-written was kept")
        return _fail(wants_json, EXIT_PARTIAL, "cancelled", message, state, **extra)
    if isinstance(exc, _Unreachable):
        return _fail(wants_json, EXIT_FAILED, "unreachable", str(exc), state, **extra)
    if isinstance(exc, ConnectError):
        message = (f"{exc}. Check --server (host,port), that the server is reachable from "
                   "here (firewall rules, private endpoint, VPN) and --encrypt")
        return _fail(wants_json, EXIT_FAILED, "connect_error", message, state, **extra)
    if isinstance(exc, TransferError) and resumable:
        return _fail(wants_json, EXIT_PARTIAL, "partial", str(exc), state, **extra)
    return _fail(wants_json, EXIT_FAILED, "failed", str(exc), state,
                 rerun=isinstance(exc, TransferError), **extra)
