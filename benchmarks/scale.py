"""Terabyte scale on one machine: a 100-million-row stream through the CLI, measured (issue 20).

What it does:

1. **Data**: a multi-file Parquet set, ``--rows`` rows in files of ``--rows-per-file`` rows
   (``narrow``'s four columns from ``bench_data.py`` plus ``note``, 72 random ASCII
   characters; about 116 bytes of Arrow per row, so 100M rows are about 11.6 GB of
   Arrow). Each file is generated alone and written before the next (never the whole set
   in memory), cached under ``$AZSQL_BULK_CACHE/bench/scale-v1-...`` and reused.
2. **Load**: an emulator started with ``--sink discard`` (every value decoded and
   checked, nothing stored but the journal), then ``azsql-bulk load DIR --workers 4
   --json`` as a real child process (managed identity, strict TLS).
3. **Measured while it runs**: the loader's RSS (``/proc/PID/status``: ``VmRSS`` every
   0.2 s, and its ``VmHWM``); and, about once a second from this process on its own
   connection, the time of the journal and catalog statements a batch costs: the
   journal INSERT (under a probe load id, rolled back), the replay's journal lookup of
   one key, and the catalog's column query of the target; with the journal's row count
   for the load at that moment.
4. **After**: the load's journal rows (``committed_at``, ``rows``) give rows/s per tenth
   of the run (the span from the first batch's journal row to the last, cut in ten
   equal parts); RSS samples give the peak per tenth of the same span.

Goals (issue 20, part 3), each printed as PASS or FAIL with its figures:

- **memory flat**: the last tenth's peak RSS <= 1.1 x the first tenth's;
- **rate flat**: every tenth's rows/s within +-15% of the median tenth;
- **per-batch overhead flat**: each probed statement's fastest of 20 probes after the
  load (the journal holding all its batches) is at most 1.25 x its fastest of 20 probes
  before it (no batch yet) + 1 ms, both with nothing else of the benchmark running
  (medians reported too). The probes through
  the run are reported too (first and last tenth of them), but they wait for the loaded
  emulator on shared cores, so they vary by tens of milliseconds.

Run: ``.venv/bin/python benchmarks/scale.py`` (100M rows; ``--rows 5000000`` for a quick
check). Writes ``--out`` (JSON: every figure, the samples, the machine, the command).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness

ROW_GROUP = 50_000
NOTE_CHARS = 72
VERSION = 1
TENTHS = 10
RSS_GOAL, RATE_GOAL, PROBE_RATIO, PROBE_SLACK_MS = 1.1, 0.15, 1.25, 1.0


# ------------------------------------------------------------------ data


def data_dir(rows_per_file: int) -> Path:
    import bench_data

    return bench_data.cache_dir() / f"scale-v{VERSION}-f{rows_per_file}"


def part(index: int, rows: int, rows_per_file: int) -> Any:
    """File ``index`` of the set: narrow's columns and a 72-character note, ids from
    ``index x rows_per_file`` (deterministic)."""
    import bench_data
    import numpy as np
    import pyarrow as pa

    start = index * rows_per_file
    table = bench_data.narrow(rows, start=start)
    rng = np.random.default_rng([VERSION, 20, index])
    raw = rng.integers(33, 127, size=(rows, NOTE_CHARS), dtype=np.uint8)
    note = pa.array(raw.view(f"S{NOTE_CHARS}").ravel(), pa.binary()).cast(pa.string())
    return table.append_column("note", note)


def ensure_data(rows: int, rows_per_file: int) -> tuple[list[Path], int]:
    """The Parquet set's files (generated one by one where missing) and their Arrow bytes.

    A smaller ``rows`` reuses the first files of a larger set (file names carry their
    row count).
    """
    import pyarrow.parquet as pq

    folder = data_dir(rows_per_file)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    arrow_bytes = 0
    for i in range((rows + rows_per_file - 1) // rows_per_file):
        n = min(rows_per_file, rows - i * rows_per_file)
        path = folder / f"part-{i:05d}-{n}.parquet"
        if not path.exists():
            table = part(i, n, rows_per_file)
            tmp = path.with_suffix(".tmp")
            pq.write_table(table, tmp, row_group_size=ROW_GROUP)
            tmp.rename(path)
            del table
        meta = pq.ParquetFile(path).metadata
        arrow_bytes += sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
        paths.append(path)
    return paths, arrow_bytes


# ------------------------------------------------------------------ sampling


def proc_status(pid: int) -> tuple[float, float] | None:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in MiB (None once it is gone)."""
    rss = hwm = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return rss, hwm


class Probe:
    """Times the per-batch journal and catalog statements on its own connection.

    :param info: the emulator's facts.
    :param table: the load's table (``dbo.name``).
    :param load_id: the load's id (its journal rows are counted).
    """

    def __init__(self, info: dict[str, Any], table: str, load_id: str) -> None:
        from engine import ConnectionFactory
        from engine.journal import Journal, batch_key

        self.factory = ConnectionFactory(harness.connection_options(info))
        self.conn = self.factory.connect()
        self.table, self.load_id = table, load_id
        self.fake = Journal(f"scale-probe-{uuid.uuid4().hex[:12]}", table, mode="append",
                            table=table)
        self.fake.ensure(self.conn)
        self.journal = Journal(load_id, table)
        self.key = batch_key("scale-probe#0")
        self.schema, self.name = table.split(".", 1)
        self.samples: list[dict[str, Any]] = []

    def _timed(self, sql: str, params: list[Any], fetch: bool = True) -> tuple[float, Any]:
        cursor = self.conn.cursor()
        t0 = time.perf_counter()
        cursor.execute(sql, params)
        out = cursor.fetchall() if fetch else None
        return (time.perf_counter() - t0) * 1000, out

    def once(self, *, keep: bool = True, idle: bool = False) -> dict[str, Any] | None:
        """One probe: journal rows of the load, and the time of each statement in ms.

        :param keep: add it to :attr:`samples` (the probes through the run).
        :param idle: probe even when the load has no journal row yet.
        """
        ms_count, out = self._timed(self.journal.contains_sql.replace(
            "AND [batch_key] = ?", ""), [self.load_id])
        batches = int(out[0][0])
        if not batches and not idle:
            self.conn.rollback()
            return None
        ms_lookup, _ = self._timed(self.journal.contains_sql, [self.load_id, self.key])
        cursor = self.conn.cursor()
        t0 = time.perf_counter()
        self.fake.record(cursor, f"scale-probe#{uuid.uuid4().hex}", 1)
        ms_insert = (time.perf_counter() - t0) * 1000
        self.conn.rollback()
        ms_catalog, _ = self._timed(
            "SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", [self.schema, self.name])
        self.conn.rollback()
        sample = {"t": time.time(), "journal_batches": batches,
                  "journal_insert_ms": round(ms_insert, 3),
                  "journal_lookup_ms": round(ms_lookup, 3),
                  "catalog_columns_ms": round(ms_catalog, 3),
                  "journal_count_ms": round(ms_count, 3)}
        if keep:
            self.samples.append(sample)
        return sample

    def idle(self, repeats: int) -> dict[str, Any]:
        """Fastest and median of ``repeats`` probes while nothing else runs (the fastest is
        the statement's own cost; other processes on the machine only add to it)."""
        runs = [self.once(keep=False, idle=True) for _ in range(repeats)]
        done = [r for r in runs if r is not None]
        keys = (*PROBED, "journal_count_ms")
        return {"repeats": repeats, "journal_batches": done[-1]["journal_batches"],
                **{k: round(min(r[k] for r in done), 3) for k in keys},
                "median": {k: round(statistics.median(r[k] for r in done), 3) for k in keys}}

    def journal_rows(self) -> list[tuple[float, int]]:
        """(committed_at as epoch seconds, rows) of every journal row of the load."""
        cursor = self.conn.cursor()
        cursor.execute("SELECT [committed_at], [rows] FROM [azsql_bulk].[load_journal] "
                       "WHERE [load_id] = ? ORDER BY [committed_at]", [self.load_id])
        out = [(_epoch(r[0]), int(r[1])) for r in cursor.fetchall()]
        self.conn.rollback()
        return out

    def close(self) -> None:
        self.conn.close()
        self.factory.close()


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return float(value.replace(tzinfo=UTC).timestamp())


# ------------------------------------------------------------------ analysis


def tenths(journal: list[tuple[float, int]], rss: list[tuple[float, float]],
           probes: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows/s, peak RSS and probe medians per tenth of the span of the journal rows."""
    first, last = journal[0][0], journal[-1][0]
    span = max(last - first, 1e-3)
    width = span / TENTHS

    def slot(t: float) -> int | None:
        if t < first or t > last:
            return None
        return min(TENTHS - 1, int((t - first) / width))

    rows = [0] * TENTHS
    for t, n in journal[1:]:  # the first row opens the span: its rows were sent before it
        i = slot(t)
        if i is not None:
            rows[i] += n
    peak: list[float | None] = [None] * TENTHS
    for t, mib in rss:
        i = slot(t)
        if i is not None:
            peak[i] = max(peak[i] or 0.0, mib)
    per: list[dict[str, Any]] = []
    keys = ("journal_insert_ms", "journal_lookup_ms", "catalog_columns_ms",
            "journal_count_ms")
    for i in range(TENTHS):
        mine = [p for p in probes if slot(p["t"]) == i]
        entry: dict[str, Any] = {
            "tenth": i + 1, "rows": rows[i], "rows_per_second": round(rows[i] / width),
            "peak_rss_mib": round(peak[i], 1) if peak[i] is not None else None,
            "probes": len(mine),
            "journal_batches_at_end": max((p["journal_batches"] for p in mine), default=None)}
        for k in keys:
            entry[k] = round(statistics.median(p[k] for p in mine), 3) if mine else None
        per.append(entry)
    return {"span_seconds": round(span, 2), "tenth_seconds": round(width, 2), "tenths": per}


PROBED = ("journal_insert_ms", "journal_lookup_ms", "catalog_columns_ms")


def start_end(probes: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the first and the last tenth of the probes (at least 3 each)."""
    k = max(3, len(probes) // TENTHS)
    head, tail = probes[:k], probes[-k:]
    out: dict[str, Any] = {"probes_each": k,
                           "journal_batches": [head[-1]["journal_batches"] if head else None,
                                               tail[-1]["journal_batches"] if tail else None]}
    for key in (*PROBED, "journal_count_ms"):
        out[key] = [round(statistics.median(p[key] for p in head), 3) if head else None,
                    round(statistics.median(p[key] for p in tail), 3) if tail else None]
    return out


def goals(t: dict[str, Any], ends: dict[str, Any],
          idle: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The three goals, with the figures each was decided on."""
    per = t["tenths"]
    out: list[dict[str, Any]] = []
    first, last = per[0]["peak_rss_mib"], per[-1]["peak_rss_mib"]
    ok = first is not None and last is not None and last <= RSS_GOAL * first
    out.append({"goal": "last tenth's peak RSS <= 1.1 x the first tenth's", "pass": ok,
                "figures": f"first {first} MiB, last {last} MiB, ratio "
                           f"{round(last / first, 3) if first and last else None}"})
    rates = [p["rows_per_second"] for p in per]
    med = statistics.median(rates)
    worst = max(abs(r - med) / med for r in rates) if med else float("inf")
    out.append({"goal": "every tenth's rows/s within +-15% of the median",
                "pass": worst <= RATE_GOAL,
                "figures": f"median {med:,.0f} rows/s, tenths {', '.join(f'{r:,}' for r in rates)}"
                           f"; largest deviation {worst:.1%}"})
    before, after = idle["before"], idle["after"]
    verdicts = []
    ok = True
    for key in PROBED:
        a, b = before[key], after[key]
        ok = ok and b <= PROBE_RATIO * a + PROBE_SLACK_MS
        verdicts.append(f"{key} {a} -> {b}")
    out.append({"goal": "per-batch journal/catalog time does not grow with the batches "
                        f"(idle after the load <= {PROBE_RATIO} x idle before + "
                        f"{PROBE_SLACK_MS:g} ms, fastest of {before['repeats']} each)",
                "pass": ok,
                "figures": f"journal batches {before['journal_batches']} -> "
                           f"{after['journal_batches']}; " + "; ".join(verdicts)
                           + f"; during the run (medians of the first and last "
                             f"{ends['probes_each']} probes, batches "
                             f"{ends['journal_batches'][0]} -> {ends['journal_batches'][1]}): "
                           + "; ".join(f"{k} {ends[k][0]} -> {ends[k][1]}" for k in PROBED)
                           + "; journal_count_ms (per load, not per batch) idle "
                             f"{before['journal_count_ms']} -> {after['journal_count_ms']}"})
    return out


# ------------------------------------------------------------------ run


def cli_command(info: dict[str, Any], paths: list[Path], table: str, load_id: str,
                args: argparse.Namespace) -> list[str]:
    """``azsql-bulk load FILES... --workers N --json ...`` against the emulator."""
    return [str(harness.REPO / ".venv" / "bin" / "azsql-bulk"), "load", *map(str, paths),
            "--table", table, "--workers", str(args.workers), "--load-id", load_id,
            "--rows-per-batch", str(args.rows_per_batch), "--max-memory", args.max_memory,
            "--json", "--progress", "off",
            "--server", f"{info['tds_host']},{info['tds_port']}",
            "--database", info["database"], "--auth", "managed-identity",
            "--encrypt", "strict", "--server-certificate", info["server_cert"],
            "--host-name-in-certificate", "localhost"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.time()
    paths, arrow_bytes = ensure_data(args.rows, args.rows_per_file)
    generated_s = time.time() - t0
    disk = sum(p.stat().st_size for p in paths)
    table = f"dbo.scale_{uuid.uuid4().hex[:8]}"
    load_id = f"scale-{uuid.uuid4().hex[:16]}"
    machine_before = harness.machine()
    with harness.emulator(["--sink", "discard"]) as emu:
        info = emu.info
        probe = Probe(info, table, load_id)
        idle = {"before": probe.idle(args.idle_repeats)}
        cmd = cli_command(info, paths, table, load_id, args)
        rss: list[tuple[float, float]] = []
        hwm = [0.0]
        stop = threading.Event()
        started = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=os.environ.copy(), cwd=harness.REPO)

        def sample_rss() -> None:
            while not stop.is_set():
                got = proc_status(proc.pid)
                if got is None:
                    return
                rss.append((time.time(), got[0]))
                hwm[0] = max(hwm[0], got[1])
                time.sleep(0.2)

        def sample_probe() -> None:
            while not stop.wait(args.probe_interval):
                if proc.poll() is not None:
                    return
                try:
                    probe.once()
                except Exception as exc:  # the load may just have ended
                    if proc.poll() is None:
                        print(f"probe failed: {exc}", file=sys.stderr)

        threads = [threading.Thread(target=sample_rss, daemon=True),
                   threading.Thread(target=sample_probe, daemon=True)]
        for th in threads:
            th.start()
        out, err = proc.communicate()
        stop.set()
        for th in threads:
            th.join()
        wall = time.time() - started
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the load failed (exit {proc.returncode}):\n{err[-3000:]}")
        result = json.loads(lines[-1])
        journal = probe.journal_rows()
        idle["after"] = probe.idle(args.idle_repeats)
        metrics = harness.metrics(info)
        probe.close()
    if len(journal) < 2:
        raise RuntimeError(f"the journal holds {len(journal)} row(s) for {load_id}: too few "
                           "batches to cut the run in tenths (raise --rows)")
    per = tenths(journal, rss, probe.samples)
    ends = start_end(probe.samples)
    verdict = goals(per, ends, idle)
    return {
        "benchmark": "scale", "command": harness.command_line(),
        "cli": " ".join(["azsql-bulk load", str(paths[0].parent / "part-*.parquet"),
                         *cmd[2 + len(paths):2 + len(paths) + 13]]) + " ...",
        "rows": args.rows, "files": len(paths), "rows_per_file": args.rows_per_file,
        "data_dir": str(paths[0].parent), "parquet_bytes": disk, "arrow_bytes": arrow_bytes,
        "arrow_bytes_per_row": round(arrow_bytes / args.rows, 1),
        "generate_seconds": round(generated_s, 1),
        "workers": args.workers, "rows_per_batch": args.rows_per_batch,
        "max_memory": args.max_memory,
        "loaded_rows": result.get("rows"), "transport": result.get("transport"),
        "journal_rows": len(journal), "journal_rows_sum": sum(n for _, n in journal),
        "wall_seconds": round(wall, 1),
        "rows_per_second": round(args.rows / wall),
        "peak_rss_mib": round(hwm[0], 1),
        "rows_discarded_by_emulator": metrics.get("rows_discarded"),
        **per, "probes_start_end": ends, "probes_idle": idle, "goals": verdict,
        "rss_samples": [(round(t - started, 2), round(m, 1)) for t, m in rss][
            ::max(1, len(rss) // 500)],
        "probes": [{**p, "t": round(p["t"] - started, 2)} for p in probe.samples],
        "machine_before": machine_before, "machine_after": harness.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--rows-per-file", type=int, default=1_000_000)
    parser.add_argument("--rows-per-batch", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-memory", default="512MiB",
                        help="the CLI's --max-memory (default: the engine's 512 MiB)")
    parser.add_argument("--probe-interval", type=float, default=0.5,
                        help="seconds between journal/catalog probes")
    parser.add_argument("--idle-repeats", type=int, default=20,
                        help="probes before and after the load, with nothing else running")
    parser.add_argument("--out", default=str(harness.HERE / "scale_result.json"))
    args = parser.parse_args()
    report = run(args)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(f"{report['rows']:,} rows ({report['arrow_bytes'] / 1e9:.2f} GB of Arrow, "
          f"{report['files']} files), {report['workers']} workers, via "
          f"{report['transport']}: {report['wall_seconds']} s, "
          f"{report['rows_per_second']:,} rows/s, peak RSS {report['peak_rss_mib']} MiB, "
          f"journal rows {report['journal_rows']}")
    print("tenth  rows/s      peak RSS MiB  journal batches  insert ms  lookup ms  catalog ms")
    for p in report["tenths"]:
        print(f"{p['tenth']:>5}  {p['rows_per_second']:>10,}  {p['peak_rss_mib']!s:>12}  "
              f"{p['journal_batches_at_end']!s:>15}  {p['journal_insert_ms']!s:>9}  "
              f"{p['journal_lookup_ms']!s:>9}  {p['catalog_columns_ms']!s:>10}")
    for g in report["goals"]:
        print(f"{'PASS' if g['pass'] else 'FAIL'}: {g['goal']}: {g['figures']}")
    print(f"JSON: {args.out}\nreproduce: {report['command']}")


if __name__ == "__main__":
    main()
