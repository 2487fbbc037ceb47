"""Client CPU per million rows: azsql-bulk's engine against raw turbodbc on the pre-cast table.

Issue 6: "the engine's client CPU per million rows is within 10% of raw turbodbc
``executemanycolumns`` on the same pre-cast table". One process, one emulator started
with ``--sink discard`` (it parses every parameter row and stores nothing), and these
runs alternated ``--rounds`` times, A then B then C:

- ``engine``: ``engine.transfer(table, target, TransferOptions(workers=1,
  transport="parameter-arrays"))`` with R rows per batch, from the source table (the
  engine casts each batch itself, inserts a journal row and commits per batch; parameter
  arrays, the transport raw turbodbc uses, so only the engine's own work differs);
- ``raw``: one connection from the engine's own ``ConnectionFactory`` (same token shim,
  same managed-identity token, same driver), then ``executemanycolumns`` of R-row slices
  of the table pre-cast once with ``engine.binder.cast_batch`` (before the clock starts),
  one commit per slice;
- ``engine_precast``: the engine fed the pre-cast table (so its casts have little to
  do): splits the engine's extra CPU into "casting" and "everything else".

Each run counts its own connects and token fetch. Client CPU is ``time.process_time()``
of this process (every thread); the emulator's CPU is not in it. The figure compared is
the median of the rounds; ``ratio`` is engine / raw.

``--profile`` adds one cProfile'd engine run (its reader and worker threads profiled
separately) and prints the top functions by own time to stderr.

Run: ``.venv/bin/python benchmarks/engine_overhead.py --rows 200000 --rounds 5``
(prints JSON).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
import uuid
from typing import Any

import bench_data
import harness
import pyarrow as pa

from engine import ConnectionFactory, Target, TransferOptions, transfer
from engine.binder import cast_batch, insert_sql, native_timestamp_columns
from engine.plan import create_table_sql, plan_table
from engine.sources import DEFAULT_ROWS_PER_BATCH, SourceOptions

TABLE = "dbo.bench_overhead"


def engine_run(source: pa.Table, target: Target, rows_per_batch: int,
               sql_types: dict[str, Any] | None = None) -> harness.Meter:
    # parameter arrays, as raw turbodbc sends: the engine's overhead over the same transport
    options = TransferOptions(workers=1, load_id=uuid.uuid4().hex, create="never",
                              transport="parameter-arrays", sql_types=sql_types or {})
    source_options = SourceOptions(rows_per_batch=rows_per_batch)
    with harness.Meter() as meter:
        result = transfer(source, target, options, source_options=source_options)
    assert result.rows == source.num_rows, result
    return meter


def raw_run(cast: pa.Table, target: Target, sql: str, rows_per_batch: int) -> harness.Meter:
    with harness.Meter() as meter:
        factory = ConnectionFactory(target.connection)
        conn = factory.connect()
        try:
            cursor = conn.cursor()
            for start in range(0, cast.num_rows, rows_per_batch):
                cursor.executemanycolumns(sql, cast.slice(start, rows_per_batch))
                conn.commit()
        finally:
            conn.close()
            factory.close()
    return meter


def profile_engine(source: pa.Table, target: Target, rows_per_batch: int) -> str:
    """One engine run, each thread under cProfile timed by its own CPU; the top 25 by own time."""
    import importlib

    tr = importlib.import_module("engine.pipeline")

    profiles: list[cProfile.Profile] = []

    def profiled(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prof = cProfile.Profile(time.thread_time)  # CPU of this thread only
            profiles.append(prof)
            return prof.runcall(method, *args, **kwargs)
        return wrapper

    saved = (tr.Pipeline._work, tr.Pipeline._read)
    tr.Pipeline._work, tr.Pipeline._read = profiled(saved[0]), profiled(saved[1])  # type: ignore[method-assign]
    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    try:
        main.runcall(engine_run, source, target, rows_per_batch)
    finally:
        tr.Pipeline._work, tr.Pipeline._read = saved  # type: ignore[method-assign]
    out = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=out)
    for p in profiles[1:]:
        stats.add(p)
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rows-per-batch", type=int, default=DEFAULT_ROWS_PER_BATCH)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dataset", choices=bench_data.DATASETS, default="narrow")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    source = bench_data.table(args.dataset, args.rows)
    plan = plan_table(source.schema, sample=source)
    # bound as the engine binds it: timestamps natively where turbodbc can take them
    native = native_timestamp_columns(plan, source)
    cast = cast_batch(plan, source, native=native)
    sql = insert_sql(plan, TABLE, native=native)
    # the pre-cast table's text columns stand for datetime2 etc.: keep the target's types
    precast_types = {c.name: c.sql_type for c in plan.columns}
    runs: dict[str, list[harness.Meter]] = {"engine": [], "raw": [], "engine_precast": []}
    with harness.emulator(["--sink", "discard"]) as emu:
        info = harness.facts(emu)
        target = Target(harness.connection_options(info), TABLE)
        factory = ConnectionFactory(target.connection)
        with factory.connect() as conn:
            conn.cursor().execute(create_table_sql(plan, TABLE))
            conn.commit()
        factory.close()
        warm = min(args.rows, 2 * args.rows_per_batch)  # first-use costs (driver load, TLS)
        engine_run(source.slice(0, warm), target, args.rows_per_batch)
        raw_run(cast.slice(0, warm), target, sql, args.rows_per_batch)
        before = harness.metrics(info)
        for _ in range(args.rounds):
            runs["engine"].append(engine_run(source, target, args.rows_per_batch))
            runs["raw"].append(raw_run(cast, target, sql, args.rows_per_batch))
            runs["engine_precast"].append(engine_run(cast, target, args.rows_per_batch,
                                                       precast_types))
        after = harness.metrics(info)
        profile = profile_engine(source, target, args.rows_per_batch) if args.profile else ""
    rows = source.num_rows
    summary: dict[str, Any] = {}
    for name, meters in runs.items():
        cpu = harness.median([m.cpu for m in meters])
        wall = harness.median([m.wall for m in meters])
        summary[name] = {
            "cpu_seconds_per_million_rows": round(cpu / rows * 1e6, 3),
            "wall_rows_per_second": round(rows / wall),
            "cpu_seconds_per_run": [round(m.cpu, 3) for m in meters],
            "wall_seconds_per_run": [round(m.wall, 3) for m in meters],
        }
    eng, raw = (summary[k]["cpu_seconds_per_million_rows"] for k in ("engine", "raw"))
    pre = summary["engine_precast"]["cpu_seconds_per_million_rows"]
    report = {
        "benchmark": "engine_overhead", "command": harness.command_line(),
        "dataset": args.dataset, "rows": rows, "rows_per_batch": args.rows_per_batch,
        "rounds": args.rounds, "arrow_bytes": source.nbytes, "results": summary,
        "ratio_cpu_engine_over_raw": round(eng / raw, 3),
        "ratio_cpu_engine_precast_over_raw": round(pre / raw, 3),
        "ratio_wall_rows_per_second_engine_over_raw": round(
            summary["engine"]["wall_rows_per_second"] / summary["raw"]["wall_rows_per_second"],
            3),
        "target_met": eng <= 1.1 * raw,
        "server_rows_discarded": after["rows_discarded"] - before["rows_discarded"],
        "machine": harness.machine(),
    }
    if profile:
        print(profile, file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
