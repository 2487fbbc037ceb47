"""``azsql-bulk bench``: how fast your database takes loads, and with how few connections.

Runs a sweep of loads (``--workers`` x ``--rows-per-batch`` x ``--transport``) of a
generated dataset (``--dataset``) or a sample of your own files (``--source``) into
scratch tables of its own (``[azsql_bulk_bench].[step_<run>_<n>]``, dropped after each
step unless ``--keep``; never a user table; a ``--schema`` that already exists gets a note
that the scratch tables go next to its tables), each step for ``--rows`` rows or
``--duration`` seconds. For every step it shows the client's figures and what the server
saw (its log write as a percent of the database's log-rate cap, CPU, data IO, the
log-rate governor's waits) and, at the end, the fewest workers that reach the cap: a
table, a PNG chart, ``--html`` and ``--json`` (see engine/bench/recommend.py).

It refuses to start, naming the grant, when the identity may not create the scratch
schema or tables, insert, or use the load journal (the checks ``azsql-bulk doctor``
makes). Without ``VIEW DATABASE STATE`` it still runs and says which figures it could
not see and the GRANT that would show them.

Exit codes: 0 measured; 1 every step failed; 2 a usage or configuration error, or a
missing permission (nothing was loaded); 130 stopped by Ctrl-C (SIGINT) or SIGTERM: the
running step stops at a batch boundary, the scratch tables are dropped and what was
measured is printed (the stopped step with the rows it loaded; only steps that finished are
used for the recommendation, and the output says so).

    azsql-bulk bench --server myserver.database.windows.net --database sales \\
        --auth azure-cli --workers 1,2,4,8 --rows-per-batch 50000,102400 --duration 60
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.bench import datasets
from engine.bench.recommend import Recommendation, pick_words, recommend
from engine.bench.report import (
    html_page,
    no_answer,
    payload,
    rich_table,
    stopped_note,
    write_chart,
)
from engine.bench.scratch import SCRATCH_SCHEMA, ScratchSpace
from engine.bench.server_view import ServerView, Unseen, open_view
from engine.bench.sweep import StepPlan, StepResult, Sweep, plan_steps, rates_words
from engine.cli.arguments import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Opt,
    UsageError,
    add_options,
    non_negative_float,
    positive_int,
    resolve,
)
from engine.cli.connection_args import CONNECTION_OPTIONS, connection_options
from engine.cli.console import configure_logging, emit_json, say
from engine.cli.doctor import ROLE_FOR, denied, permissions_check
from engine.cli.load_args import OUTPUT_OPTIONS
from engine.connection import ConnectionFactory, close_quietly
from engine.errors import AzsqlBulkError, ConfigurationError, DatabaseError
from engine.options import TRANSPORTS
from engine.progress_display import ProgressDisplay
from engine.sources import SourceOptions, open_source

__all__ = ["EXIT_INTERRUPTED", "register", "run"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
DEFAULT_DURATION = 60.0  # seconds per step: four of Azure's 15-second resource-stats rows
POOL_ROWS = 200_000  # rows generated (or sampled) once; every step deals batches from them


def _ints(text: str) -> tuple[int, ...]:
    """``1,2,4,8`` -> (1, 2, 4, 8) (each at least 1; ``102_400`` is fine).

    >>> _ints("1, 2,102_400")
    (1, 2, 102400)
    """
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            values.append(positive_int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a whole number of at least 1 (give a "
                             "comma-separated list such as 1,2,4,8)") from None
    if not values:
        raise ValueError(f"expected a comma-separated list of whole numbers, not {text!r}")
    return tuple(values)


def _transports(text: str) -> tuple[str, ...]:
    values = tuple(part.strip().replace("_", "-") for part in text.split(",") if part.strip())
    wrong = [v for v in values if v not in TRANSPORTS]
    if wrong or not values:
        raise ValueError(f"expected transports from {', '.join(TRANSPORTS)}, "
                         f"comma-separated, not {text!r}")
    return values


def _duration(text: str) -> float:
    value = non_negative_float(text)
    if value <= 0:
        raise ValueError(f"expected a number of seconds above 0, not {text!r}")
    return value


BENCH_OPTIONS: tuple[Opt, ...] = (
    Opt("--workers", "worker counts to try, comma-separated", type=_ints, default=(1, 2, 4, 8),
        metavar="N,N", show=lambda v: ",".join(map(str, v))),
    Opt("--rows-per-batch", "batch sizes to try, comma-separated", type=_ints,
        default=(102_400,), metavar="N,N", show=lambda v: ",".join(map(str, v))),
    Opt("--transport", "transports to try, comma-separated (" + ", ".join(TRANSPORTS) + ")",
        type=_transports, default=("auto",), metavar="T,T", show=",".join),
    Opt("--duration", "seconds each step loads, from its first committed batch (default "
        f"{DEFAULT_DURATION:.0f} when --rows is not given)", type=_duration, metavar="S"),
    Opt("--rows", "rows per step, instead of --duration", type=positive_int, metavar="N"),
    Opt("--dataset", "the generated data: narrow (4 columns), wide (30), text (long "
        "unicode), typed (decimals, uuids, offsets) or orders (13, an order-lines table)",
        choices=datasets.DATASETS, default="narrow"),
    Opt("--source", "benchmark with a sample of your own files instead (Parquet, CSV, "
        "Arrow; local or abfss://; repeatable)", action="append", metavar="PATH"),
    Opt("--sample-rows", "rows read from --source (or generated) once, which every step "
        "deals its batches from", type=positive_int, default=POOL_ROWS, metavar="N"),
    Opt("--keep", "keep the scratch tables and the steps' journal rows", action="flag"),
    Opt("--schema", "the scratch schema (created when missing, dropped at the end when "
        "this run created it)", default=SCRATCH_SCHEMA, metavar="NAME"),
    Opt("--chart", "where the PNG chart goes (needs matplotlib: the bench extra)",
        default="azsql-bulk-bench.png", metavar="PATH"),
    Opt("--no-chart", "write no chart", action="flag"),
    Opt("--html", "also write a self-contained HTML report (chart, table, recommendation)",
        metavar="PATH"),
    # --json, --progress, --progress-interval, --log-level: as load's
    *(opt for opt in OUTPUT_OPTIONS if opt.flag != "--dry-run"),
)


def register(sub: Any) -> None:
    """Add the ``bench`` command to the ``azsql-bulk`` parser's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "bench", help="measure how fast a database takes loads, and with how few connections",
        allow_abbrev=False, description=__doc__.split("\n\n")[1].replace("``", ""),
        epilog=__doc__.split("\n\n")[-2] + "\n\nexample:\n" + __doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(parser.add_argument_group("sweep"), BENCH_OPTIONS[:10])
    add_options(parser.add_argument_group("output"), BENCH_OPTIONS[10:])
    add_options(parser.add_argument_group("connection"), CONNECTION_OPTIONS)
    parser.set_defaults(handler=run)


class _Refused(AzsqlBulkError):
    """The identity lacks a permission the benchmark needs (the message names the grant)."""


def run(args: argparse.Namespace) -> int:
    """Run ``azsql-bulk bench`` with parsed arguments; returns the exit code."""
    wants_json = "--json" in (getattr(args, "argv", None) or [])
    try:
        resolve(args, (*BENCH_OPTIONS, *CONNECTION_OPTIONS))
        wants_json = args.json
        configure_logging(args.log_level)
        if args.rows is not None and args.duration is not None:
            raise UsageError("give --rows or --duration per step, not both")
        if args.rows is None and args.duration is None:
            args.duration = DEFAULT_DURATION
        if args.source and "--dataset" in (getattr(args, "argv", None) or []):
            raise UsageError("give --source or --dataset, not both")
        connection = connection_options(args, warn=say)
        data = _pool(args)
        return _bench(args, connection, data)
    except (UsageError, ConfigurationError) as exc:
        return _fail(wants_json, EXIT_USAGE, "usage_error", str(exc))
    except _Refused as exc:
        return _fail(wants_json, EXIT_USAGE, "permission_denied", str(exc))
    except AzsqlBulkError as exc:
        return _fail(wants_json, EXIT_FAILED, "failed", str(exc))
    except KeyboardInterrupt:  # Ctrl-C while the data was prepared: nothing was written
        return _fail(wants_json, EXIT_INTERRUPTED, "stopped",
                     "stopped before anything was loaded")


def _fail(wants_json: bool, code: int, status: str, message: str) -> int:
    say(f"azsql-bulk bench: {'refusing to run' if status == 'permission_denied' else 'error'}"
        f": {message}")
    if wants_json:
        emit_json({"status": status, "exit_code": code, "error": message})
    return code


def _pool(args: argparse.Namespace) -> pa.RecordBatch:
    """The rows every step deals from: a sample of ``--source``, or a generated dataset."""
    biggest = max(args.rows_per_batch)
    want = max(biggest, min(args.rows or args.sample_rows, args.sample_rows))
    if not args.source:
        return datasets.pool(args.dataset, want)
    opened = open_source(list(args.source), SourceOptions(rows_per_batch=min(want, 100_000)))
    parts: list[pa.RecordBatch] = []
    have = 0
    batches = opened.batches()
    try:
        for batch in batches:
            parts.append(batch.data)
            have += batch.data.num_rows
            if have >= want:
                break
    finally:
        batches.close()
    if not have:
        raise UsageError(f"--source {' '.join(args.source)} holds no rows to benchmark with")
    return pa.Table.from_batches(parts).slice(0, want).combine_chunks().to_batches()[0]


def _refusal(what: str, error: DatabaseError, user: str, schema: str) -> AzsqlBulkError:
    """The refusal naming the grant (doctor's roles) when the server denied ``what``."""
    if not denied(error):
        return error
    role = ROLE_FOR.get(what, "db_ddladmin")
    on = "the database" if what == "CREATE SCHEMA" else f"schema {schema}"
    return _Refused(f"missing {what} on {on} ({error}). What to do: as the database's "
                    f"Microsoft Entra admin run ALTER ROLE {role} ADD MEMBER [{user}];")


def _check_permissions(factory: ConnectionFactory, scratch: ScratchSpace) -> str:
    """Make sure the scratch schema exists and this identity may load into it; the user.

    :raises _Refused: a permission is missing (the message names the grant).
    """
    conn = factory.connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT USER_NAME()")
        user = str(cursor.fetchall()[0][0])
        conn.commit()
        try:
            scratch.ensure_schema(factory)
        except DatabaseError as exc:
            raise _refusal("CREATE SCHEMA", exc, user, scratch.schema) from None
        try:
            probe = scratch.create_probe(factory)
        except DatabaseError as exc:
            raise _refusal("CREATE TABLE", exc, user, scratch.schema) from None
        check = permissions_check(conn, str(probe))  # doctor's probes: SELECT, INSERT, journal
        conn.commit()
    finally:
        close_quietly(conn)
    scratch.drop(factory, probe)
    scratch.tables.remove(probe)
    if not check.ok:
        raise _Refused(check.detail)
    return user


def _bench(args: argparse.Namespace, connection: Any, data: pa.RecordBatch) -> int:
    scratch = ScratchSpace(args.schema)
    plans = plan_steps(args.workers, args.rows_per_batch, args.transport)
    factory = ConnectionFactory(dataclasses.replace(connection, bulk_copy=True))
    notes: list[str] = []
    view: ServerView | None = None
    steps: list[StepResult] = []
    cancel = threading.Event()
    with _signals(cancel, scratch):
        try:
            user = _check_permissions(factory, scratch)
            opened = open_view(factory, user)
            if isinstance(opened, Unseen):
                notes.append(opened.text())
            else:
                view = opened
                notes.extend(u.text() for u in view.unseen.values())
            for note in notes:
                say(f"azsql-bulk bench: note: {note}; carrying on with the client's figures")
            if not scratch.created_schema and scratch.schema != SCRATCH_SCHEMA:
                notes.append(_shared_schema(scratch))
                say(f"azsql-bulk bench: note: {notes[-1]}")
            length = f"{args.rows:,} rows" if args.rows else f"{args.duration:g} s"
            say(f"azsql-bulk bench: {len(plans)} step(s) of {length} each into scratch tables "
                f"[{scratch.schema}].[step_{scratch.run}_NN], {data.num_rows:,} rows of "
                f"{'your files' if args.source else args.dataset} dealt in batches"
                + (f"; log-rate cap {view.log_rate_cap / 2**20:,.1f} MiB/s ({view.slo_name})"
                   if view and view.log_rate_cap else ""))

            def display(number: int, plan: StepPlan, table: str) -> ProgressDisplay:
                say(f"azsql-bulk bench: step {number}/{len(plans)}: "
                    f"{pick_words(plan.workers, plan.rows_per_batch, plan.transport)} "
                    f"into {table}")
                return ProgressDisplay(table=table, workers=plan.workers,
                                       rows_per_batch=plan.rows_per_batch, mode=args.display,
                                       interval=args.progress_interval,
                                       out=sys.stderr if args.json else None,
                                       title=f"azsql-bulk bench step {number}/{len(plans)}")

            sweep = Sweep(connection, data, scratch, rows=args.rows, duration=args.duration,
                          keep=args.keep, view=view, display=display, factory=factory,
                          on_step=_finished, cancel=cancel)
            steps = sweep.run(plans)
            for note in sweep.notes:
                say(f"azsql-bulk bench: note: {note}")
            notes.extend(sweep.notes)
        finally:
            if view is not None:
                view.close()
            if not args.keep:
                notes.extend(scratch.clean_up(factory))
            factory.close()
    return _report(args, connection, view, steps, notes, scratch, cancel.is_set())


def _shared_schema(scratch: ScratchSpace) -> str:
    """The note for a ``--schema`` that already existed (it may hold the user's tables)."""
    return (f"--schema {scratch.schema} already exists, so the scratch tables "
            f"[{scratch.schema}].[step_{scratch.run}_NN] go next to the tables in it (only "
            "those are written, and dropped after their step; the schema stays); the default "
            f"--schema {SCRATCH_SCHEMA} keeps them apart")


def _finished(step: StepResult) -> None:
    say(f"azsql-bulk bench: step {step.number} {step.status}: {step.rows:,} rows in "
        f"{step.seconds:,.1f} s; {rates_words(step)}"
        + (f", log write {step.server.log_write_percent:.0f}% of the cap"
           if step.server.log_write_percent is not None else "")
        + (f" ({step.error})" if step.error and step.status == "failed" else ""))


@contextlib.contextmanager
def _signals(cancel: threading.Event, scratch: ScratchSpace) -> Iterator[None]:
    """SIGINT/SIGTERM stop the running step at a batch boundary (then the scratch tables
    are dropped); a second one exits at once, naming the scratch tables left behind."""
    def on_signal(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not cancel.is_set():
            cancel.set()
            say(f"azsql-bulk bench: {name}: stopping the step at the next batch boundary, "
                "then dropping the scratch tables (again to exit at once)")
            return
        left = ", ".join(str(t) for t in scratch.tables) or "none"
        say(f"azsql-bulk bench: {name} again: exiting now; scratch tables left: {left} "
            f"(drop them, and forget the journal's bench-{scratch.run}-* loads with "
            "azsql-bulk journal forget)")
        os._exit(EXIT_INTERRUPTED)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _report(args: argparse.Namespace, connection: Any, view: ServerView | None,
            steps: list[StepResult], notes: list[str], scratch: ScratchSpace,
            cancelled: bool) -> int:
    cap = view.log_rate_cap if view else None
    unseen_text = [u.text() for u in view.unseen.values()] if view else notes[:1]
    answer: Recommendation | None = recommend(steps, cap, unseen_text)
    why_none = None if answer else no_answer(steps)
    stopped = stopped_note(steps) if answer else None
    notes.extend(n for n in (why_none, stopped) if n)
    where = f"{connection.server},{connection.port}/{connection.database}"
    data_name = "your files" if args.source else f"dataset {args.dataset}"
    title = f"azsql-bulk bench: {where}, {data_name}"
    if args.keep:
        notes.append(f"kept (--keep): tables {', '.join(str(t) for t in scratch.tables)}; "
                     f"journal load ids {', '.join(scratch.load_ids)}")
    from rich.console import Console

    stream = sys.stderr if args.json else sys.stdout
    # a pipe or a file gets the whole table, not one squeezed into 80 columns
    console = Console(file=stream, width=None if stream.isatty() else 200)
    console.print(rich_table(steps, answer.step if answer else None, title))
    if answer:
        # one line, however long: the terminal wraps it, a log keeps it whole
        print(f"Recommendation: {answer.reason}", file=stream, flush=True)
    else:
        print(why_none, file=stream, flush=True)
    if stopped:
        print(f"Note: {stopped}", file=stream, flush=True)
    chart = None
    if not args.no_chart and steps:
        problem = write_chart(steps, Path(args.chart), title)
        if problem:
            notes.append(problem)
            say(f"azsql-bulk bench: {problem}")
        else:
            chart = args.chart
            say(f"azsql-bulk bench: chart written to {chart}")
    if args.html:
        _write_html(args, steps, answer, title, view, notes)
    status = "stopped" if cancelled else "ok" if any(s.status == "ok" for s in steps) \
        else "failed"
    code = EXIT_INTERRUPTED if cancelled else EXIT_OK if status == "ok" else EXIT_FAILED
    if cancelled:
        say("azsql-bulk bench: stopped by the user; the scratch tables were "
            + ("kept (--keep)" if args.keep else "dropped") + "; figures above are what "
            "was measured")
    if args.json:
        settings = {"server": where, "dataset": None if args.source else args.dataset,
                    "source": list(args.source) if args.source else None,
                    "rows": args.rows, "duration": args.duration, "workers": args.workers,
                    "rows_per_batch": args.rows_per_batch, "transport": args.transport,
                    "schema": scratch.schema, "run": scratch.run, "keep": args.keep}
        server = view.describe() if view else {"unseen": [{"text": n} for n in notes[:1]]}
        emit_json(payload(steps=steps, recommendation=answer, server=server,
                          settings=settings, status=status, exit_code=code, chart=chart,
                          html_path=args.html, notes=notes))
    return code


def _write_html(args: argparse.Namespace, steps: list[StepResult],
                answer: Recommendation | None, title: str, view: ServerView | None,
                notes: list[str]) -> None:
    from engine.bench.report import chart_png

    try:
        png: bytes | None = chart_png(steps, title) if steps else None
    except ModuleNotFoundError:
        png = None
    cap = view.log_rate_cap if view else None
    facts = [f"run at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
             f"steps of {args.rows:,} rows" if args.rows else f"steps of {args.duration:g} s",
             f"service objective: {view.slo_name if view and view.slo_name else 'unknown'}",
             f"log-rate cap: {cap / 2**20:,.1f} MiB/s" if cap else "log-rate cap: not seen"]
    path = Path(args.html)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(steps=steps, recommendation=answer, title=title, facts=facts,
                              notes=notes, png=png), encoding="utf-8")
    say(f"azsql-bulk bench: HTML report written to {path}")
