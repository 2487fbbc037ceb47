"""Peak client memory while streaming a Parquet file several times larger than the bound.

Issue 6: "peak RSS stays below a documented bound while streaming a Parquet file several
times larger than that bound". The Parquet file (the ``text`` dataset: unique unicode
strings, so the file on disk is about as large as its Arrow data) is generated first,
in its own process. Then, for each configuration, a fresh child process that only loads:

1. imports pyarrow, turbodbc and the engine, logs in once (driver loaded, TLS set up),
   and records its **baseline** RSS;
2. samples its own RSS every 50 ms while ``engine.transfer(path, target,
   TransferOptions(workers=W, rows_per_batch=R, max_memory_bytes=B))`` streams the file
   into an emulator started with ``--sink discard``;
3. reports its peak RSS (``VmHWM``, the kernel's high-water mark) and the samples.

The bound checked (issue 20) is ``baseline + B + W x cast batch + reader``:

- ``B``, ``max_memory_bytes``: the source's Arrow bytes read ahead and in flight (a batch
  being sent counts until it commits);
- ``cast batch``, per worker: the Arrow bytes of one cast batch plus turbodbc's
  fixed-width parameter buffers for it (text binds at 2 x (1.2 x longest + 1) bytes per
  value), measured from the file in this parent process;
- ``reader``: one Parquet row group twice, as read and as decoded (the file's
  ``total_compressed_size`` of its column chunks plus its ``total_byte_size``: without
  read buffering the reader reads each column chunk whole, then decodes it; both outside
  ``B``), and one source batch outside ``B``: the one the reader holds while it waits
  for room (the first batch, read for the plan, is not kept for the whole load).

The first form of issue 6 (``baseline + B + W x cast batch``) is reported too. At the
sampled peak the report splits the growth over the baseline into the Arrow pool's live
bytes, glibc's bytes in use (``mallinfo2``: turbodbc's buffers, the driver, Python) and the
rest, which the allocators keep of freed memory (mimalloc's pages, glibc's free chunks)
plus thread stacks. The engine hands freed Arrow pages back once per batch
(``engine.pipeline.give_back_freed_memory``); ``--no-give-back`` measures without it.
Before its baseline the child turns transparent huge pages off for itself, as the
``azsql-bulk`` command does (``engine.pipeline.disable_transparent_huge_pages``);
``--keep-huge-pages`` measures a process that leaves them on (a library caller's
default), and the report gives the huge pages resident at the sampled peak.

Run: ``.venv/bin/python benchmarks/engine_memory.py --rows 200000`` (prints JSON).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import harness

from engine.sources import SourceOptions

TABLE_PREFIX = "dbo.bench_memory"


def glibc_in_use_mib() -> float | None:
    """Bytes glibc's malloc has handed out and not had back (``mallinfo2``), MiB."""
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return None
    return float(info.uordblks + info.hblkhd) / 2**20


def anon_huge_pages_mib() -> float | None:
    """Anonymous memory backed by transparent huge pages (``AnonHugePages``), MiB."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def child(args: argparse.Namespace) -> None:
    """The loading process: baseline, then the transfer under a 50 ms RSS sampler."""
    import pyarrow as pa
    import turbodbc  # noqa: F401  (loaded before the baseline, like the driver)

    from engine import ConnectionFactory, Target, TransferOptions, pipeline, transfer

    if args.no_give_back:
        pipeline.give_back_freed_memory = lambda: None
    huge_pages_off = False if args.keep_huge_pages \
        else pipeline.disable_transparent_huge_pages()

    info = json.loads(Path(args.facts).read_text())
    connection = harness.connection_options(info)
    if args.transport == "bulk-copy":  # the factory's connections must allow it
        connection = dataclasses.replace(connection, bulk_copy=True)
    target = Target(connection, f"{TABLE_PREFIX}_{uuid.uuid4().hex[:8]}")
    factory = ConnectionFactory(target.connection)
    factory.connect().close()
    baseline = harness.rss_mib()
    baseline_peak = harness.peak_rss_mib()
    glibc0 = glibc_in_use_mib()
    pool = pa.default_memory_pool()
    samples: list[tuple[float, float]] = []
    # RSS, pool bytes, glibc in use, huge pages (MiB)
    at_top: list[float | None] = [0.0, 0.0, None, None]
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.wait(0.05):
            rss = harness.rss_mib()
            samples.append((round(time.monotonic() - started, 2), round(rss, 1)))
            if rss > (at_top[0] or 0.0):
                at_top[:] = [rss, pool.bytes_allocated() / 2**20, glibc_in_use_mib(),
                             anon_huge_pages_mib()]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    options = TransferOptions(workers=args.workers, max_memory_bytes=args.bound,
                              transport=args.transport)
    source_options = SourceOptions(rows_per_batch=args.rows_per_batch)
    with harness.Meter() as meter:
        result = transfer(args.path, target, options, factory=factory,
                          source_options=source_options)
    stop.set()
    sampler.join()
    factory.close()
    peak = harness.peak_rss_mib()
    bound_mib = args.bound / 2**20
    cast_batch_mib = args.cast_batch_bytes / 2**20
    row_group_mib = args.row_group_bytes / 2**20
    source_batch_mib = args.source_batch_bytes / 2**20
    formula = baseline + bound_mib + args.workers * cast_batch_mib
    reader_mib = row_group_mib + source_batch_mib
    with_reader = formula + reader_mib
    top_rss, top_pool, top_glibc, top_huge = at_top
    glibc_growth = (top_glibc - glibc0) if top_glibc is not None and glibc0 is not None \
        else None
    # with the system pool, Arrow's bytes are inside glibc's
    pooled = 0.0 if pa.default_memory_pool().backend_name == "system" else (top_pool or 0.0)
    kept = (top_rss or 0.0) - baseline - pooled - (glibc_growth or 0.0)
    step = max(1, len(samples) // 200)
    print(json.dumps({
        "workers": args.workers, "rows_per_batch": args.rows_per_batch,
        "transport": result.transport,
        "max_memory_mib": round(bound_mib, 1), "rows": result.rows,
        "arrow_mib_loaded": round(result.bytes / 2**20, 1),
        "baseline_rss_mib": round(baseline, 1), "baseline_peak_rss_mib": round(baseline_peak, 1),
        "peak_rss_mib": round(peak, 1), "peak_over_baseline_mib": round(peak - baseline, 1),
        "max_sampled_rss_mib": max((s[1] for s in samples), default=None),
        "cast_batch_mib": round(cast_batch_mib, 1),
        "row_group_mib": round(row_group_mib, 1),
        "source_batch_mib": round(source_batch_mib, 1), "reader_mib": round(reader_mib, 1),
        "give_back": not args.no_give_back, "huge_pages_off": huge_pages_off,
        "at_sampled_peak": {"rss_mib": round(top_rss or 0.0, 1),
                            "arrow_pool_live_mib": round(top_pool or 0.0, 1),
                            "glibc_in_use_growth_mib": None if glibc_growth is None
                            else round(glibc_growth, 1),
                            "kept_by_allocators_and_stacks_mib": round(kept, 1),
                            "anon_huge_pages_mib": top_huge},
        "arrow_pool_peak_mib": round(pa.default_memory_pool().max_memory() / 2**20, 1),
        "arrow_pool_backend": pa.default_memory_pool().backend_name,
        # issue 6's forms, under the keys run.py reports
        "bound_formula_mib": round(formula, 1), "within_bound": peak <= formula,
        "bound_with_reader_mib": round(formula + row_group_mib, 1),
        "within_bound_with_reader": peak <= formula + row_group_mib,
        # the documented bound (issue 20): + one row group (read and decoded), one batch
        "bound_mib": round(with_reader, 1), "within_documented_bound": peak <= with_reader,
        "wall_seconds": round(meter.wall, 3), "cpu_seconds": round(meter.cpu, 3),
        "rows_per_second": round(result.rows / meter.wall),
        "rss_samples": samples[::step],
    }))


def batch_sizes(path: str, rows_per_batch: int) -> tuple[int, int, int]:
    """Bytes of one cast batch (Arrow + turbodbc's bound buffers), of one decoded row group
    and of one source batch (Arrow).

    turbodbc binds text in fixed-width UTF-16 slots of 2 x (1.2 x longest + 1) bytes.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from engine.binder import cast_batch
    from engine.plan import plan_table

    pf = pq.ParquetFile(path)
    first = next(pf.iter_batches(batch_size=rows_per_batch))
    plan = plan_table(first.schema, sample=first)
    cast = cast_batch(plan, first)
    buffers = 0
    for col in cast.columns:
        if col.type == "string":
            longest = pc.max(pc.utf8_length(col)).as_py() or 0
            buffers += int(2 * (1.2 * longest + 1)) * len(col)
        else:
            buffers += col.nbytes
    meta = pf.metadata
    # the reader reads a row group's column chunks whole (unbuffered, compressed) and
    # decodes them: both are held while its batches are cut
    row_group = max(meta.row_group(i).total_byte_size
                    + sum(meta.row_group(i).column(c).total_compressed_size
                          for c in range(meta.num_columns))
                    for i in range(meta.num_row_groups))
    return cast.nbytes + buffers, row_group, first.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rows-per-batch", type=int, default=2_000)
    parser.add_argument("--row-group", type=int, default=10_000,
                        help="Parquet row group rows (the reader decodes a row group's pages "
                             "as it goes; keep it modest)")
    parser.add_argument("--bound", type=int, default=32 * 2**20, help="max_memory_bytes")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--arrow-pool", choices=("default", "mimalloc", "jemalloc", "system"),
                        default="default",
                        help="the loading child's Arrow memory pool "
                             "(ARROW_DEFAULT_MEMORY_POOL; default: pyarrow's, mimalloc)")
    parser.add_argument("--transport", default="auto",
                        choices=("auto", "parameter-arrays", "bulk-copy"),
                        help="TransferOptions.transport (auto: parameter arrays below 3,000 "
                             "rows per batch). The cast batch term counts turbodbc's buffers "
                             "either way (bulk copy binds one row's buffers: less)")
    parser.add_argument("--no-give-back", action="store_true",
                        help="measure without the engine handing freed Arrow pages back "
                             "after each batch")
    parser.add_argument("--keep-huge-pages", action="store_true",
                        help="leave transparent huge pages on in the loading child (the "
                             "azsql-bulk command turns them off; a library caller decides)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--facts", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--workers-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cast-batch-bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--row-group-bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source-batch-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers_one
        child(args)
        return
    made = subprocess.run(
        [sys.executable, str(harness.HERE / "bench_data.py"), "--dataset", "text",
         "--rows", str(args.rows), "--row-group", str(args.row_group)],
        capture_output=True, text=True, check=True)
    path = made.stdout.strip().splitlines()[-1]
    file_mib = Path(path).stat().st_size / 2**20
    cast_bytes, row_group_bytes, source_batch_bytes = batch_sizes(path, args.rows_per_batch)
    runs: list[dict[str, Any]] = []
    with harness.emulator(["--sink", "discard"]) as emu, \
            tempfile.TemporaryDirectory(prefix="azsql-bench-") as tmp:
        facts_file = Path(tmp) / "facts.json"
        facts_file.write_text(json.dumps(emu.info))
        facts_file.chmod(0o600)
        if args.arrow_pool != "default":  # the loading children's, not the emulator's
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = args.arrow_pool
        for workers in args.workers:
            runs.append(harness.run_child("engine_memory.py", [
                "--child", "--facts", str(facts_file), "--path", path,
                "--workers-one", str(workers), "--rows-per-batch", str(args.rows_per_batch),
                "--bound", str(args.bound), "--cast-batch-bytes", str(cast_bytes),
                "--row-group-bytes", str(row_group_bytes), "--transport", args.transport,
                "--source-batch-bytes", str(source_batch_bytes),
                *(["--no-give-back"] if args.no_give_back else []),
                *(["--keep-huge-pages"] if args.keep_huge_pages else [])]))
    print(json.dumps({
        "benchmark": "engine_memory", "command": harness.command_line(),
        "file": Path(path).name, "file_mib": round(file_mib, 1),
        "max_memory_mib": round(args.bound / 2**20, 1),
        "file_over_bound": round(file_mib / (args.bound / 2**20), 1),
        "formula": "peak RSS <= baseline + max_memory_bytes + workers x cast batch + one "
                   "row group (read and decoded) + 1 source batch",
        "arrow_pool": args.arrow_pool, "give_back": not args.no_give_back,
        "huge_pages": "kept" if args.keep_huge_pages else "off",
        "runs": runs, "machine": harness.machine()}))


if __name__ == "__main__":
    main()
