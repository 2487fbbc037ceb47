"""Scenarios beyond raw speed (issue 9): token renewal overhead and a throttled server.

``tokens``: two emulators (``--sink discard``), one issuing 1-hour tokens and one issuing
short ones (``--short-lifetime``, default 4 s); the same azsql-bulk load (``workers=2``,
``token_refresh_margin=3``, which the engine caps at half a token's lifetime) alternates
between them ``--rounds`` times. Reported: median wall rows/s and client CPU per million
rows of each, their ratio, token renewals (the engine's count), logins and distinct
tokens (the emulator's). A 4-second token renews about every 2 s, so the load must run
well over 2 s to renew at all (5M narrow rows take about 6 s here; with the 10-second
tokens used before 2026-12-04 the loads had become too short to renew).

``throttle``: one emulator, ``--throttle-workers`` (8) connections; an unthrottled load
measures the request byte rate, then
``POST /faults {"kind": "throttle", "bytes_per_second": B}`` with B = half that rate (the
issue's 50 MiB/s, General Purpose log governance, is far above what the emulator
ingests at all, so the throttle is scaled to bind) and the same load runs again.
Reported: achieved request bytes/s against B, retries and reconnects (expected 0: Azure's
log governance slows a load, it does not fail it), and the client's RSS sampled every
100 ms (first and last thirds, to show it stays flat).

Run: ``.venv/bin/python benchmarks/scenarios.py --rows 500000`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any

import bench_data
import harness
import pyarrow as pa

from engine import Target, TransferOptions, transfer


def _load(source: pa.Table, target: Target, workers: int) -> tuple[harness.Meter, Any]:
    options = TransferOptions(workers=workers, token_refresh_margin=3.0,
                              load_id=uuid.uuid4().hex)
    with harness.Meter() as meter:
        result = transfer(source, target, options)
    assert result.rows == source.num_rows, result
    return meter, result


def tokens(source: pa.Table, rounds: int, workers: int, short_life: int = 4) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"3600": [], str(short_life): []}
    with ExitStack() as stack:
        emus = {life: stack.enter_context(harness.emulator(
            ["--sink", "discard", "--token-lifetime", life])) for life in runs}
        targets = {}
        for life, emu in emus.items():
            info = harness.facts(emu)
            targets[life] = (info, Target(harness.connection_options(info), "dbo.bench_tokens"))
            _load(source.slice(0, 1000), targets[life][1], 1)  # create the table, warm up
        for _ in range(rounds):
            for life, (info, target) in targets.items():
                # each emulator's variables must be the ones azure-identity reads now
                harness.connection_options(info)
                before = harness.metrics(info)
                meter, result = _load(source, target, workers)
                delta = harness.server_delta(before, harness.metrics(info), source.num_rows)
                runs[life].append({**harness.figures(meter, source.num_rows),
                                   "token_renewals": result.token_renewals,
                                   "logins": delta["logins"], "tokens": delta["tokens"]})
    out: dict[str, Any] = {}
    for life, measured in runs.items():
        out[f"lifetime_{life}s"] = {
            "rows_per_second": harness.median([r["rows_per_second"] for r in measured]),
            "cpu_seconds_per_million_rows": harness.median(
                [r["cpu_seconds_per_million_rows"] for r in measured]),
            "runs": measured}
    long, short = out["lifetime_3600s"], out[f"lifetime_{short_life}s"]
    out["short_lifetime_seconds"] = short_life
    out["ratio_rows_per_second_short_over_3600s"] = round(
        short["rows_per_second"] / long["rows_per_second"], 3)
    out["ratio_cpu_short_over_3600s"] = round(
        short["cpu_seconds_per_million_rows"] / long["cpu_seconds_per_million_rows"], 3)
    return out


def throttle(source: pa.Table, workers: int) -> dict[str, Any]:
    """Unthrottled, then throttled at half that request byte rate, ``workers`` connections."""
    with harness.emulator(["--sink", "discard"]) as emu:
        info = harness.facts(emu)
        target = Target(harness.connection_options(info), "dbo.bench_throttle")
        _load(source.slice(0, 1000), target, 1)
        before = harness.metrics(info)
        free, _ = _load(source, target, workers)
        after = harness.metrics(info)
        free_rate = (after["bytes_received"] - before["bytes_received"]) / free.wall
        limit = int(free_rate / 2)
        harness.control(info, "/faults", {"kind": "throttle", "bytes_per_second": limit})
        samples: list[float] = []
        stop = threading.Event()

        t0 = time.monotonic()

        def sample() -> None:
            while not stop.wait(0.1):
                samples.append((round(time.monotonic() - t0, 2), round(harness.rss_mib(), 1)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        before = harness.metrics(info)
        slow, result = _load(source, target, workers)
        after = harness.metrics(info)
        stop.set()
        sampler.join()
        pending = harness.control(info, "/faults", {"kind": "clear"})
    third = max(1, len(samples) // 3)
    rss = [v for _, v in samples]
    step = max(1, len(samples) // 300)
    return {
        "unthrottled": harness.figures(free, source.num_rows),
        "unthrottled_request_bytes_per_second": round(free_rate),
        "throttle_bytes_per_second": limit,
        "throttled": harness.figures(slow, source.num_rows),
        "throttled_request_bytes_per_second": round(
            (after["bytes_received"] - before["bytes_received"]) / slow.wall),
        "server_throttled_seconds": pending.get("throttled_seconds"),
        "retries": result.retries, "reconnects": result.reconnects,
        "workers": workers,
        "rss_mib_first_third_max": round(max(rss[:third], default=0), 1),
        "rss_mib_last_third_max": round(max(rss[-third:], default=0), 1),
        "rss_samples": samples[::step],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="workers of the token runs")
    parser.add_argument("--throttle-workers", type=int, default=8)
    parser.add_argument("--short-lifetime", type=int, default=4,
                        help="seconds of the short tokens (the other emulator's are 1 h)")
    parser.add_argument("--scenarios", nargs="+", choices=("tokens", "throttle"),
                        default=["tokens", "throttle"])
    args = parser.parse_args()
    source = bench_data.table("narrow", args.rows)
    report: dict[str, Any] = {"benchmark": "scenarios", "command": harness.command_line(),
                              "dataset": "narrow", "rows": args.rows, "workers": args.workers}
    started = time.monotonic()
    if "tokens" in args.scenarios:
        report["tokens"] = tokens(source, args.rounds, args.workers, args.short_lifetime)
    if "throttle" in args.scenarios:
        report["throttle"] = throttle(source, args.throttle_workers)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = harness.machine()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
