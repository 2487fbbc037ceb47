"""``rows_per_batch`` sweep: wall rows/s and client CPU of the engine for each batch size.

Issue 6 says the default of ``TransferOptions.rows_per_batch`` is chosen by benchmark.
One emulator (``--sink discard``), one process; every size loads the same in-memory
table with ``engine.transfer(..., TransferOptions(workers=W, rows_per_batch=R))``, and
the sizes are visited in a rotated order each round (round k starts at size k), so slow
phases of the shared machine do not all land on the same size. Medians over rounds.

What a batch costs besides its rows: one transaction (commit), one journal row (a
prepared INSERT), turbodbc preparing the statement again, and an RSS of roughly
``workers x 3 x`` the batch's Arrow bytes. What a large batch costs: memory, and a
replay after a transient error resends the whole batch. The emulator answers on
loopback in well under a millisecond; on Azure each batch's extra round trips (commit,
journal) cost ~1-5 ms each, which this sweep cannot show, so the small sizes look
better here than they would there (see the README).

Run: ``.venv/bin/python benchmarks/batch_size_sweep.py --rows 200000`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

import bench_data
import harness

from engine import Target, TransferOptions, transfer
from engine.sources import SourceOptions

SIZES = (1_000, 5_000, 10_000, 25_000, 50_000, 100_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--dataset", choices=bench_data.DATASETS, default="narrow")
    args = parser.parse_args()
    source = bench_data.table(args.dataset, args.rows)
    runs: dict[int, list[tuple[harness.Meter, dict[str, Any]]]] = {s: [] for s in args.sizes}
    with harness.emulator(["--sink", "discard"]) as emu:
        info = harness.facts(emu)
        target = Target(harness.connection_options(info), "dbo.bench_sweep")
        transfer(source.slice(0, 1000), target, TransferOptions(workers=1))  # create, warm up
        for k in range(args.rounds):
            order = args.sizes[k % len(args.sizes):] + args.sizes[:k % len(args.sizes)]
            for size in order:
                before = harness.metrics(info)
                with harness.Meter() as meter:
                    result = transfer(source, target, TransferOptions(workers=args.workers,
                                                                      load_id=uuid.uuid4().hex),
                                      source_options=SourceOptions(rows_per_batch=size))
                assert result.rows == source.num_rows, result
                runs[size].append((meter, harness.server_delta(
                    before, harness.metrics(info), source.num_rows)))
    rows = source.num_rows
    results = []
    for size, measured in runs.items():
        wall = harness.median([m.wall for m, _ in measured])
        cpu = harness.median([m.cpu for m, _ in measured])
        server = harness.median([s["server_seconds"] for _, s in measured])
        results.append({
            "rows_per_batch": size, "wall_rows_per_second": round(rows / wall),
            "cpu_seconds_per_million_rows": round(cpu / rows * 1e6, 3),
            "server_seconds": server, "commits": measured[0][1]["commits"],
            "wall_seconds_per_run": [round(m.wall, 3) for m, _ in measured],
            "cpu_seconds_per_run": [round(m.cpu, 3) for m, _ in measured],
        })
    print(json.dumps({
        "benchmark": "batch_size_sweep", "command": harness.command_line(),
        "dataset": args.dataset, "rows": rows, "workers": args.workers,
        "rounds": args.rounds, "arrow_bytes_per_row": round(source.nbytes / rows, 1),
        "results": results, "machine": harness.machine()}))


if __name__ == "__main__":
    main()
