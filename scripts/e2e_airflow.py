"""``make e2e-airflow``: the example mapped DAG on a real distributed Airflow, one command.

1. start, under one temporary directory: PostgreSQL (Airflow's metadata database) and
   Redis (the Celery broker) from Debian's packages, the Azure SQL emulator, and Airflow's
   api-server, scheduler, dag-processor and two Celery workers, each part a process of
   its own with its own ``AIRFLOW_HOME``; the workers log in to the emulator with its
   managed identity (no secret), name themselves as two machines and serve logs on ports
   of their own (``scripts/e2e_stack.py``);
2. generate a Parquet dataset: several small files and one file bigger than all of them
   together, in several row groups, so the split spreads it over shards;
3. trigger ``example_azure_sql_bulk_mapped`` with ``--conf`` (the dataset, 8 shards), and
   with ``--faults`` SIGKILL one load task's process mid-load (Airflow's retry resumes
   its load) and end every emulator session (``kill_sessions``) while the shards run;
4. check: the run succeeded; the loads ran on both workers and overlapped in time (table:
   shard, worker, start, end, rows); the table holds the dataset exactly (count, sums,
   rows per value, read back with pyodbc and a SQL login, not the loader's client); no
   log file, XCom value or process command line holds a token or a secret;
5. stop every part, also on a failure or Ctrl-C.

Exit status 0 when every run passed, 1 when a check failed, 2 when the machine is not set
up (``make e2e-airflow`` sets it up), 130 on Ctrl-C.

    .venv/bin/python scripts/e2e_airflow.py                   # one run
    .venv/bin/python scripts/e2e_airflow.py --faults --runs 5 # the faults variant, 5 runs
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e_checks  # the sibling modules, found through the line above
from e2e_stack import Stack, StackError, free_ports, http_ok, wait_for

DAG_ID = "example_azure_sql_bulk_mapped"
RUN_TIMEOUT = 900.0


def say(text: str = "") -> None:
    print(text, flush=True)


# -- 2. the dataset ---------------------------------------------------------------------------

def make_dataset(folder: Path, rows: int, small_files: int) -> list[Path]:
    """``small_files`` files of equal size plus one holding 55% of ``rows`` (more than all
    the others together) in row groups of a tenth of it; order ids 0..rows-1."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    big = rows * 55 // 100
    small = (rows - big) // small_files
    sizes = [big] + [small] * small_files
    sizes[0] += rows - sum(sizes)
    files, start = [], 0
    countries = np.array(["DE", "FR", "US", "JP", "BR", "IN", None], dtype=object)
    for i, n in enumerate(sizes):
        ids = np.arange(start, start + n, dtype=np.int64)
        # cents as decimal(18,2), built from its unscaled 128-bit integers: exact sums on
        # both sides (non-negative, so the high 64 bits are 0)
        unscaled = np.zeros((n, 2), dtype=np.int64)
        unscaled[:, 0] = ids % 10_000_000
        amount = pa.Array.from_buffers(pa.decimal128(18, 2), n,
                                       [None, pa.py_buffer(unscaled.tobytes())])
        table = pa.table({
            "order_id": pa.array(ids),
            "amount": amount,
            "country": pa.array(countries[ids % 7], pa.string()),
            "ordered_at": pa.array(np.datetime64("2026-01-01T00:00:00", "us")
                                   + ids * np.timedelta64(7, "s")),
        })
        path = folder / (f"orders-big-{i}.parquet" if i == 0 else f"orders-{i:02d}.parquet")
        pq.write_table(table, path, row_group_size=-(-sizes[0] // 10) if i == 0 else n)
        files.append(path)
        start += n
    return files


# -- 1. the Airflow parts ---------------------------------------------------------------------

def start_stack(stack: Stack, concurrency: int) -> dict[str, str]:
    """Start every part; return the variables for Airflow commands run from here."""
    say("[1/5] starting PostgreSQL, Redis, the emulator and Airflow (2 Celery workers)")
    pg_url = stack.start_postgres()
    broker = stack.start_redis()
    stack.start_emulator()
    admin = stack.airflow_env("admin", pg_url, broker)
    started = time.monotonic()
    stack.run("airflow-db-migrate", ["airflow", "db", "migrate"], admin, timeout=900)
    say(f"  metadata database migrated in {time.monotonic() - started:.0f} s")
    api_port = stack.ports["api"]
    api = stack.spawn("api-server", ["airflow", "api-server", "--host", "127.0.0.1",
                                     "--port", str(api_port), "--workers", "1"],
                      stack.airflow_env("api-server", pg_url, broker))
    scheduler = stack.spawn("scheduler", ["airflow", "scheduler"],
                            stack.airflow_env("scheduler", pg_url, broker))
    stack.spawn("dag-processor", ["airflow", "dag-processor"],
                stack.airflow_env("dag-processor", pg_url, broker))
    workers = []
    for i, log_port in enumerate((stack.ports["logs1"], stack.ports["logs2"]), start=1):
        name = f"e2e-worker-{i}"
        env = stack.worker_env(stack.airflow_env(name, pg_url, broker), name, log_port)
        workers.append(stack.spawn(name, [
            "airflow", "celery", "worker", "--concurrency", str(concurrency),
            "--celery-hostname", f"{name}@{name}", "--without-gossip", "--without-mingle"],
            env))
    wait_for("the API server", lambda: http_ok(
        f"http://127.0.0.1:{api_port}/api/v2/monitor/health"), 240, api.log, api.alive)
    for w in workers:
        wait_for(f"Celery worker {w.name}", _logged(w.log, " ready."), 240, w.log, w.alive)
    db = e2e_checks.MetaDb(pg_url)
    wait_for("the example DAG in the metadata database (parsed by the dag-processor)",
             lambda: db.dag_ready(DAG_ID), 240, stack.root / "logs" / "dag-processor.log",
             scheduler.alive)
    say(f"  ready after {time.monotonic() - started:.0f} s: api-server :{api_port}, "
        f"workers e2e-worker-1 (logs :{stack.ports['logs1']}), e2e-worker-2 "
        f"(logs :{stack.ports['logs2']})")
    return admin


def _logged(log: Path, text: str) -> Callable[[], bool]:
    return lambda: text in log.read_text(errors="replace")


# -- 3. one run -------------------------------------------------------------------------------

def trigger(stack: Stack, admin: dict[str, str], run_id: str, source: str,
            shards: int) -> None:
    """``airflow dags trigger`` with the dataset and the shard count as conf."""
    conf = json.dumps({"source": source, "shards": shards})
    say(f"  $ airflow dags trigger {DAG_ID} --run-id {run_id} --conf '{conf}'")
    stack.run(f"trigger-{run_id}", ["airflow", "dags", "trigger", DAG_ID, "--run-id", run_id,
                                    "--conf", conf], admin, timeout=300)


def one_run(stack: Stack, admin: dict[str, str], args: argparse.Namespace, number: int,
            files: list[Path], expected: dict[str, Any]) -> bool:
    """Trigger, watch (injecting the faults), check; True when every check passed."""
    db = e2e_checks.MetaDb(admin["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    reader = e2e_checks.Reader(stack.emulator)
    reader.drop_orders()
    run_id = f"e2e-{number}-{dt.datetime.now(dt.UTC):%H%M%S}"
    say(f"\n[3/5] run {number}: {DAG_ID}, {args.shards} shards"
        + (", faults: SIGKILL of a load mid-load, kill_sessions" if args.faults else ""))
    started = time.monotonic()
    trigger(stack, admin, run_id, str(files[0].parent / "*.parquet"), args.shards)
    watch = e2e_checks.Watch(stack, db, reader, DAG_ID, run_id, faults=args.faults)
    state = watch.until_done(RUN_TIMEOUT)
    seconds = time.monotonic() - started
    say(f"  run {run_id}: {state} after {seconds:.0f} s")
    for line in watch.notes:
        say("  " + line)
    say(f"\n[4/5] checks of run {number}")
    checks = e2e_checks.Checks()
    checks.add("the DAG run succeeded", "success", state)
    rows = e2e_checks.report_loads(db, DAG_ID, run_id, checks, say)
    for line in e2e_checks.task_errors(stack, DAG_ID, run_id):
        say(f"  a failed try logged: {line}")
    checks.add("XCom: the loads' rows add up to the dataset", expected["rows"],
               sum(int(r.get("rows") or 0) for r in rows.values()))
    e2e_checks.check_table(reader, expected, checks)
    e2e_checks.check_verify(stack.emulator, files, checks, say)
    if args.faults:
        watch.check_faults(checks, rows)
        say("  " + watch.notes[-1])
    e2e_checks.check_no_secrets(stack, db, DAG_ID, run_id, watch.command_lines, checks)
    for line in checks.lines():
        say("  " + line)
    reader.close()
    ok = checks.ok
    say(f"  run {number}: {'PASS' if ok else 'FAIL'} ({seconds:.0f} s)")
    return ok


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the dataset")
    parser.add_argument("--shards", type=int, default=8, help="shards of the mapped load")
    parser.add_argument("--faults", action="store_true",
                        help="SIGKILL one load task mid-load and kill_sessions during the run")
    parser.add_argument("--runs", type=int, default=1, help="runs on the same deployment")
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs) after the end")
    args = parser.parse_args(argv)
    if args.shards < 8 or args.runs < 1:
        parser.error("--shards must be at least 8 and --runs at least 1")
    for tool in ("airflow",):
        if not (Path(sys.executable).parent / tool).exists():
            say(f"e2e: {tool} is not installed in {Path(sys.executable).parent}; "
                "run `make e2e-airflow` (it installs the [airflow-celery] extra)")
            return 2
    root = Path(tempfile.mkdtemp(prefix="azsql-e2e-airflow-"))
    stack = Stack(root)
    stack.ports = dict(zip(("postgres", "redis", "api", "logs1", "logs2"), free_ports(5),
                           strict=True))
    signal.signal(signal.SIGTERM, _interrupted)  # stop the parts as on Ctrl-C
    results: list[bool] = []
    try:
        say(f"e2e-airflow: everything under {root}")
        admin = start_stack(stack, args.concurrency)
        say(f"\n[2/5] dataset: {args.rows:,} rows")
        files = make_dataset(root / "data", args.rows, small_files=7)
        for f in files:
            say(f"  {f.name}: {f.stat().st_size / 1e6:.1f} MB")
        expected = e2e_checks.expected_facts(files)
        for number in range(1, args.runs + 1):
            results.append(one_run(stack, admin, args, number, files, expected))
    except StackError as exc:
        say(f"e2e: {exc}")
        return 2 if "not installed" in str(exc) else 1
    except KeyboardInterrupt:
        say("e2e: interrupted; stopping every part")
        return 130
    finally:
        say("\n[5/5] stopping every part")
        stack.close()
        if args.keep or len(results) < args.runs or not all(results):
            say(f"  logs kept under {root}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
    passed = sum(results)
    say(f"\ne2e-airflow: {passed}/{len(results)} run(s) passed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
