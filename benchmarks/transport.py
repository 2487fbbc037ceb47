"""Bulk copy against parameter arrays (issue 18): wire bytes, client CPU and rows/s per row,
side by side in one run, and the ``rows_per_batch`` below which bulk copy stops paying.

One emulator child process (``--sink discard`` by default: every value is decoded and
checked, nothing stored; ``--sink duckdb`` stores the rows and every run is read back).
Everything goes through the engine API, one worker::

    transfer(table, Target(...), TransferOptions(workers=1, transport=T, load_id=<new>,
             create="never"), source_options=SourceOptions(rows_per_batch=R))

with ``T`` = ``parameter-arrays`` (A) and ``bulk-copy`` (B), alternated A B A B ... over
``--rounds`` rounds on the same in-memory table, each into the same pre-created table
(emptied between runs with ``--sink duckdb``). ``result.transport`` is asserted, so a
silent fallback to parameter arrays cannot pass for bulk copy, and so is ``result.rows``.

Per run: wall seconds and client CPU (``time.process_time()`` of this process, all its
threads: the emulator is another process), and from the emulator's ``GET /metrics``
before and after the run: ``bytes_received`` (request bytes: everything the client sent,
TLS records included) and ``bytes_sent`` (response bytes), ``busy_seconds``,
``io_seconds``. Every figure is per row of the run and includes the load's own set-up
(login, catalog and journal queries, and for bulk copy the transactional probe), which
the row counts amortise. A ratio is bulk copy / parameter arrays taken within one round;
the report gives the median of the per-round ratios and each round's.

Targets (issue 18): request bytes per row <= 0.65x and response bytes per row <= 0.05x on
``narrow`` and ``wide``; client CPU per row <= 1.0x on ``narrow``, ``wide`` and ``text``;
rows/s >= 1.5x on ``typed`` (decimals, uuids, datetimeoffsets).

``--sweep-sizes`` (default 100 300 1000 3000 10000 50000) then loads ``--sweep-rows`` rows
of ``narrow`` with each size, both transports alternated, sizes rotated per round; the
crossover is the smallest size from which bulk copy's median rows/s ratio stays >= 1.

Run (the figures in benchmarks/README.md)::

    .venv/bin/python benchmarks/transport.py --rounds 5

(prints JSON; ``--datasets``, ``--rows narrow=200000,...``, ``--rows-per-batch``,
``--sweep-rows``, ``--sweep-rounds``, ``--sink``, ``--no-sweep``.)
"""

from __future__ import annotations

import argparse
import decimal
import json
import os
import uuid
from typing import Any

import bench_data
import harness
import pyarrow as pa
import pyarrow.compute as pc

from engine import ConnectionFactory, Target, TransferOptions, transfer
from engine.plan import create_table_sql, plan_table
from engine.sources import SourceOptions

ARRAYS, BULK = "parameter-arrays", "bulk-copy"
TRANSPORTS = (ARRAYS, BULK)
ROWS = {"narrow": 200_000, "wide": 50_000, "text": 20_000, "typed": 200_000}
SWEEP_SIZES = (100, 300, 1_000, 3_000, 10_000, 50_000)
TARGETS = {  # figure -> (datasets, comparison, bound) for bulk / arrays
    "request_bytes_per_row": (("narrow", "wide"), "<=", 0.65),
    "response_bytes_per_row": (("narrow", "wide"), "<=", 0.05),
    "cpu_seconds_per_row": (("narrow", "wide", "text"), "<=", 1.0),
    "rows_per_second": (("typed",), ">=", 1.5),
}


def run_once(source: pa.Table, target: Target, info: dict[str, Any], transport: str,
             rows_per_batch: int) -> dict[str, Any]:
    """One load; its client and server figures per row."""
    options = TransferOptions(workers=1, transport=transport, load_id=uuid.uuid4().hex,
                              create="never")
    before = harness.metrics(info)
    load = os.getloadavg()[0]
    with harness.Meter() as meter:
        result = transfer(source, target, options,
                          source_options=SourceOptions(rows_per_batch=rows_per_batch))
    after = harness.metrics(info)
    assert result.transport == transport, (transport, result)
    assert result.rows == source.num_rows, result
    rows = source.num_rows

    def delta(key: str) -> float:
        return float(after[key] - before[key])

    return {
        "transport": transport, "rows": rows, "batches": result.batches,
        "wall_seconds": meter.wall, "cpu_seconds": meter.cpu, "load_1min": load,
        "rows_per_second": rows / meter.wall,
        "cpu_seconds_per_row": meter.cpu / rows,
        "request_bytes_per_row": delta("bytes_received") / rows,
        "response_bytes_per_row": delta("bytes_sent") / rows,
        "server_seconds": delta("busy_seconds") + delta("io_seconds"),
        # the emulator counts discarded rows, bulk rows and column-wise parameter rows
        # (not row-wise parameter rows): a check that the rows arrived, not a total
        "rows_counted": delta("bulk_rows") + delta("columnar_rows") + delta("rows_discarded"),
        "bulk_loads": delta("bulk_loads"), "rpc_calls": delta("rpc_calls"),
        "sql_batches": delta("sql_batches"), "commits": delta("commits"),
    }


def checksum_sql(table: pa.Table, name: str) -> str:
    """COUNT(*), SUM(id), COUNT of every column and SUM of every decimal column."""
    parts = ["COUNT(*)", "SUM(CAST([id] AS decimal(38,0)))"]
    parts += [f"COUNT([{c}])" for c in table.column_names]
    parts += [f"SUM([{f.name}])" for f in table.schema if pa.types.is_decimal(f.type)]
    return f"SELECT {', '.join(parts)} FROM {name}"


def expected_checksum(table: pa.Table) -> list[Any]:
    out: list[Any] = [table.num_rows, decimal.Decimal(pc.sum(table.column("id")).as_py())]
    out += [table.num_rows - table.column(c).null_count for c in table.column_names]
    out += [pc.sum(table.column(f.name)).as_py() for f in table.schema
            if pa.types.is_decimal(f.type)]
    return out


def read_back(factory: ConnectionFactory, table: pa.Table, name: str) -> dict[str, Any]:
    """What the server holds against the source (duckdb sink), then empty the table."""
    with factory.connect() as conn:
        cursor = conn.cursor()
        cursor.execute(checksum_sql(table, name))
        got = [decimal.Decimal(str(v)) if isinstance(v, float) else v
               for v in cursor.fetchall()[0]]
        cursor.execute(f"TRUNCATE TABLE {name}")
        conn.commit()
    want = expected_checksum(table)
    same = len(got) == len(want) and all(
        decimal.Decimal(str(g)) == decimal.Decimal(str(w)) for g, w in zip(got, want,
                                                                           strict=True))
    return {"matches": same, "server": [str(v) for v in got], "source": [str(v) for v in want]}


def ratio_summary(pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: str) -> dict[str, Any]:
    per_round = [b[key] / a[key] for a, b in pairs if a[key]]
    return {"median": round(harness.median(per_round), 4),
            "per_round": [round(r, 4) for r in per_round]}


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rows_per_second", "cpu_seconds_per_row", "request_bytes_per_row",
            "response_bytes_per_row", "server_seconds", "wall_seconds", "cpu_seconds")
    out: dict[str, Any] = {k: harness.median([r[k] for r in runs]) for k in keys}
    out["cpu_seconds_per_million_rows"] = round(out.pop("cpu_seconds_per_row") * 1e6, 3)
    for k in ("request_bytes_per_row", "response_bytes_per_row"):
        out[k] = round(out[k], 2)
    for k in ("server_seconds", "wall_seconds", "cpu_seconds"):
        out[k] = round(out[k], 3)
    out["rows_per_second"] = round(out["rows_per_second"])
    out["cpu_seconds_per_run"] = [round(r["cpu_seconds"], 3) for r in runs]
    out["wall_seconds_per_run"] = [round(r["wall_seconds"], 3) for r in runs]
    out["batches"] = runs[0]["batches"]
    out["commits"], out["bulk_loads"] = runs[0]["commits"], runs[0]["bulk_loads"]
    out["rpc_calls"], out["sql_batches"] = runs[0]["rpc_calls"], runs[0]["sql_batches"]
    return out


def prepare_table(factory: ConnectionFactory, source: pa.Table, name: str) -> None:
    plan = plan_table(source.schema, sample=source)
    with factory.connect() as conn:
        cursor = conn.cursor()
        cursor.execute(f"IF OBJECT_ID('{name}') IS NOT NULL DROP TABLE {name}")
        cursor.execute(create_table_sql(plan, name))
        conn.commit()


def compare(dataset: str, rows: int, args: argparse.Namespace, info: dict[str, Any],
            factory: ConnectionFactory, verify: bool) -> dict[str, Any]:
    source = bench_data.table(dataset, rows)
    name = f"dbo.bench_transport_{dataset}"
    target = Target(harness.connection_options(info), name)
    prepare_table(factory, source, name)
    warm = source.slice(0, min(rows, 2 * args.rows_per_batch))
    for t in TRANSPORTS:  # first use of the driver, bcp, pyarrow kernels: outside the figures
        run_once(warm, target, info, t, args.rows_per_batch)
        if verify:
            read_back(factory, warm, name)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TRANSPORTS}
    checks: list[bool] = []
    load = [round(os.getloadavg()[0], 2)]
    for _ in range(args.rounds):
        for t in TRANSPORTS:  # A B A B ...
            runs[t].append(run_once(source, target, info, t, args.rows_per_batch))
            if verify:
                checks.append(read_back(factory, source, name)["matches"])
    load.append(round(os.getloadavg()[0], 2))
    pairs = list(zip(runs[ARRAYS], runs[BULK], strict=True))
    ratios = {k: ratio_summary(pairs, k) for k in TARGETS}
    ratios["server_seconds"] = ratio_summary(pairs, "server_seconds")
    targets = {}
    for key, (datasets, op, bound) in TARGETS.items():
        if dataset in datasets:
            got = ratios[key]["median"]
            targets[key] = {"bound": f"{op} {bound}", "ratio": got,
                            "met": got <= bound if op == "<=" else got >= bound}
    return {
        "dataset": dataset, "rows": rows, "rows_per_batch": args.rows_per_batch,
        "rounds": args.rounds, "arrow_bytes_per_row": round(source.nbytes / rows, 1),
        "load_1min_start_end": load,
        "median": {t: medians(r) for t, r in runs.items()},
        "ratio_bulk_over_arrays": ratios, "targets": targets,
        "read_back_matches": all(checks) if verify else None,
        "emulator_rows_counted_per_run": {
            t: sorted({int(r["rows_counted"]) for r in rs}) for t, rs in runs.items()},
    }


def sweep(args: argparse.Namespace, info: dict[str, Any], factory: ConnectionFactory,
          verify: bool) -> dict[str, Any]:
    source = bench_data.table("narrow", args.sweep_rows)
    name = "dbo.bench_transport_sweep"
    target = Target(harness.connection_options(info), name)
    prepare_table(factory, source, name)
    warm = source.slice(0, 2_000)
    for t in TRANSPORTS:
        run_once(warm, target, info, t, 1_000)
    if verify:
        read_back(factory, warm, name)
    sizes = list(args.sweep_sizes)
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {
        s: {t: [] for t in TRANSPORTS} for s in sizes}
    load = [round(os.getloadavg()[0], 2)]
    for k in range(args.sweep_rounds):
        order = sizes[k % len(sizes):] + sizes[:k % len(sizes)]
        for size in order:
            for t in TRANSPORTS:
                runs[size][t].append(run_once(source, target, info, t, size))
                if verify:
                    read_back(factory, source, name)
    load.append(round(os.getloadavg()[0], 2))
    results = []
    for size in sizes:
        pairs = list(zip(runs[size][ARRAYS], runs[size][BULK], strict=True))
        results.append({
            "rows_per_batch": size,
            "median": {t: medians(r) for t, r in runs[size].items()},
            "ratio_bulk_over_arrays": {k: ratio_summary(pairs, k) for k in (
                "rows_per_second", "cpu_seconds_per_row", "request_bytes_per_row",
                "response_bytes_per_row", "server_seconds")},
        })
    wins = [r["ratio_bulk_over_arrays"]["rows_per_second"]["median"] >= 1 for r in results]
    crossover = next((r["rows_per_batch"] for i, r in enumerate(results) if all(wins[i:])),
                     None)
    return {"dataset": "narrow", "rows": args.sweep_rows, "rounds": args.sweep_rounds,
            "load_1min_start_end": load, "results": results,
            "crossover_rows_per_batch": crossover,
            "crossover_rule": "smallest size from which the median rows/s ratio (bulk copy "
                              "/ parameter arrays) stays >= 1 at every larger size",
            "linear_model": linear_model(runs, args.sweep_rows)}


def linear_model(runs: dict[int, dict[str, list[dict[str, Any]]]], rows: int) -> dict[str, Any]:
    """Wall seconds of a load = fixed + batches x per-batch, fitted by least squares to the
    median wall time at each size (same rows at every size), for each transport; the
    batch size at which the two lines cross. ``fixed`` holds the rows' own cost and the
    load's set-up (login, catalog; bulk copy's probe too), so per row it overstates bulk
    copy's cost a little."""
    fits: dict[str, dict[str, float]] = {}
    for t in TRANSPORTS:
        fits[t] = {}
        for key, name in (("wall_seconds", ""), ("server_seconds", "server_"),
                          ("cpu_seconds", "client_cpu_")):
            xs = [-(-rows // size) for size in runs]  # batches
            ys = [harness.median([r[key] for r in runs[size][t]]) for size in runs]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
                     if sxx else 0.0)
            fits[t][f"{name}fixed_seconds"] = round(my - slope * mx, 4)
            fits[t][f"{name}per_batch_ms"] = round(slope * 1e3, 3)
    a, b = fits[ARRAYS], fits[BULK]
    extra_per_batch = b["per_batch_ms"] - a["per_batch_ms"]  # ms bulk copy pays per batch
    saved_per_row = (a["fixed_seconds"] - b["fixed_seconds"]) / rows * 1e3  # ms per row
    crossing = (round(extra_per_batch / saved_per_row)
                if saved_per_row > 0 and extra_per_batch > 0 else None)
    return {"fits": fits, "bulk_extra_ms_per_batch": round(extra_per_batch, 3),
            "bulk_saved_us_per_row": round(saved_per_row * 1e3, 4),
            "crossover_rows_per_batch": crossing}


def source_tree() -> dict[str, Any]:
    """The commit measured and the files changed in the working tree (a shared tree)."""
    import subprocess

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=harness.REPO, capture_output=True,
                              text=True, check=False)
        return done.stdout.rstrip("\n")

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "changed": [line[3:] for line in git("status", "--short", "--untracked-files=no")
                        .splitlines()]}


def parse_rows(text: str) -> dict[str, int]:
    out = dict(ROWS)
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in bench_data.DATASETS:
            raise SystemExit(f"--rows: unknown dataset {key!r}")
        out[key] = int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="*", default=list(bench_data.DATASETS),
                        choices=bench_data.DATASETS)
    parser.add_argument("--rows", type=parse_rows, default=dict(ROWS),
                        help="per dataset, e.g. narrow=200000,typed=100000")
    parser.add_argument("--rows-per-batch", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep-sizes", type=int, nargs="*", default=list(SWEEP_SIZES))
    parser.add_argument("--sweep-rows", type=int, default=150_000)
    parser.add_argument("--sweep-rounds", type=int, default=3)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--sink", choices=("discard", "duckdb"), default="discard")
    args = parser.parse_args()
    verify = args.sink == "duckdb"
    machine_start = harness.machine()
    report: dict[str, Any] = {"benchmark": "transport", "command": harness.command_line(),
                              "sink": args.sink, "tree": source_tree(), "comparisons": []}
    with harness.emulator(["--sink", args.sink]) as emu:
        info = harness.facts(emu)
        factory = ConnectionFactory(harness.connection_options(info))
        try:
            for dataset in args.datasets:
                report["comparisons"].append(
                    compare(dataset, args.rows[dataset], args, info, factory, verify))
            if not args.no_sweep and args.sweep_sizes:
                report["sweep"] = sweep(args, info, factory, verify)
        finally:
            factory.close()
    targets = {f"{c['dataset']}.{k}": v for c in report["comparisons"]
               for k, v in c["targets"].items()}
    report["targets"] = targets
    report["all_targets_met"] = all(v["met"] for v in targets.values()) if targets else None
    report["machine_start"], report["machine_end"] = machine_start, harness.machine()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
