"""``make soak``: the reliability scenarios run many times, larger, with random timing and
seeds; every run is checked exactly against its source. Writes a markdown table (scenario,
runs, rows expected, rows found, duplicates, lost, time) to ``tests/reliability/SOAK.md``
and stdout; exits 1 when any run lost, duplicated or changed a row, or failed.

The scenarios are those of the fast suite (``tests/reliability/scenarios.py``), run with
each transport asked for (``--transport``: parameter-arrays, bulk-copy, or both, the
default; always passed to the engine explicitly). A run whose rows did not travel by the
transport asked for (the load's result and the emulator's bulk-loaded row count disagree
with it) is a failed run. The emulator (one process per role: plain, 3-second tokens,
restartable) is the bottleneck; sizes are chosen for the default 20 runs of one transport
to finish in about 35 minutes on 2 cores.

    .venv/bin/python scripts/soak.py                      # 20 runs of each, both transports
    .venv/bin/python scripts/soak.py --runs 3 --only kill_sessions,restart
    .venv/bin/python scripts/soak.py --transport bulk-copy --runs 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from loads import AZURE_VARS, CA_VARS  # noqa: E402
from reliability import scenarios  # noqa: E402
from reliability.scenarios import Lab, Outcome, RestartableEmulator  # noqa: E402
from support import environment  # noqa: E402

from azsql_emulator.process import EmulatorProcess  # noqa: E402
from engine.credentials import CredentialOptions  # noqa: E402
from engine.driver import find_driver  # noqa: E402

# name -> (rows per run, what it does)
SIZES = {
    "kill_sessions": 1_000_000,
    "errors": 100_000,
    "cut": 100_000,
    "tokens": 60_000,
    "sigkill": 100_000,
    "restart": 100_000,
    "throttle": 48_000,
}
# below what 8 workers send the emulator unthrottled, per transport
THROTTLE_BYTES_PER_SECOND = scenarios.THROTTLE_BYTES_PER_SECOND
BOTH = "both"


class Row:
    """One scenario's runs with one transport, summed."""

    def __init__(self, name: str, transport: str) -> None:
        self.name, self.transport = name, transport
        self.outcomes: list[Outcome] = []
        self.failures: list[str] = []
        self.seconds = 0.0

    def add(self, run: Callable[[], Outcome], rows: int) -> None:
        started = time.monotonic()
        try:
            outcome = run()
            problem = scenarios.transport_problem(outcome, self.transport)
            if problem:  # exact or not, it did not test what it was meant to
                self.failures.append(problem)
        except Exception as exc:  # a run that stops is a failed run, reported, not fatal
            self.failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            traceback.print_exc()
            outcome = Outcome(self.name, rows, 0, 0, rows, 0, 0.0, {"error": True})
        self.seconds += time.monotonic() - started
        self.outcomes.append(outcome)
        state = "exact" if outcome.exact else "NOT EXACT"
        print(f"  {self.name} [{self.transport}] run {len(self.outcomes)}: {state}, "
              f"{outcome.found:,}/"
              f"{outcome.expected:,} rows, {outcome.duplicates} dup, {outcome.lost} lost, "
              f"{outcome.wrong} wrong, {time.monotonic() - started:.1f} s {outcome.notes}",
              flush=True)

    def cells(self) -> list[str]:
        o = self.outcomes
        per_run = statistics.median(x.seconds for x in o) if o else 0.0
        return [self.name, self.transport, str(len(o)), f"{sum(x.expected for x in o):,}",
                f"{sum(x.found for x in o):,}", str(sum(x.duplicates for x in o)),
                str(sum(x.lost for x in o)), str(sum(x.wrong for x in o)),
                str(len(self.failures)), f"{self.seconds:.0f} s ({per_run:.1f} s/run)",
                self.faults()]

    def faults(self) -> str:
        """What the faults did, summed over the runs (from each run's notes)."""
        total: dict[str, float] = {}
        for o in self.outcomes:
            for key in ("kill_events", "sessions_killed", "killed_mid_request",
                        "killed_mid_bulk_load", "cuts", "cut_mid_request",
                        "cut_mid_bulk_load", "retries", "reconnects",
                        "token_renewals", "throttled_seconds"):
                value = o.notes.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
        extra = []
        resumed = [o.notes["skipped_on_resume"] for o in self.outcomes
                   if "skipped_on_resume" in o.notes]
        if resumed:
            extra.append(f"resumes skipped {sum(resumed)} committed batches")
        partial = [o.notes["partial_rows"] for o in self.outcomes if "partial_rows" in o.notes]
        if partial:
            extra.append(f"rows of uncommitted batches visible after the kill: {sum(partial)}")
        survived = [o for o in self.outcomes if o.notes.get("child_exit") == 0]
        if "restart" in self.name:
            stopped = [o for o in self.outcomes if o.notes.get("child_exit") not in (0, None)]
            extra.append(f"{len(survived)} loads rode out the restart, {len(stopped)} died with "
                         f"it and were resumed ({sum(o.notes['resumed_rows'] for o in stopped):,} "
                         "rows sent by the resumes)")
        growth = [o.notes["rss_growth_mib"] for o in self.outcomes if "rss_growth_mib" in o.notes]
        if growth:
            extra.append(f"RSS growth max {max(growth)} MiB")
        rates = [o.notes["request_bytes_per_second"] / o.notes["throttle_bytes_per_second"]
                 for o in self.outcomes if "request_bytes_per_second" in o.notes]
        if rates:
            extra.append(f"request rate {statistics.median(rates):.0%} of the throttle")
        parts = [f"{k.replace('_', ' ')} {round(v, 1):g}" for k, v in total.items() if v]
        return "; ".join(parts + extra) or "-"


HEADER = ["scenario", "transport", "runs", "rows expected", "rows found", "duplicates", "lost",
          "wrong values", "failed runs", "time", "faults seen"]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each scenario")
    parser.add_argument("--only", default="", help=f"comma list of {', '.join(SIZES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--transport", default=BOTH,
                        choices=[*scenarios.TRANSPORTS, BOTH],
                        help="the transport the loads ask for (default: both, one after "
                             "the other)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", default=str(ROOT / "tests" / "reliability" / "SOAK.md"))
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or list(SIZES)
    unknown = set(chosen) - set(SIZES)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SIZES)}")
    sizes = {k: max(20_000, int(v * args.scale) // 5_000 * 5_000) for k, v in SIZES.items()}
    master = random.Random(args.seed)  # noqa: S311 (test timing, not secrets)
    driver = str(find_driver().path)
    work = Path(tempfile.mkdtemp(prefix="azsql-soak-"))
    rows: list[Row] = []
    started = time.monotonic()

    transports = scenarios.TRANSPORTS if args.transport == BOTH else (args.transport,)

    def runs(name: str, label: str, transport: str,
             make: Callable[[random.Random], Outcome]) -> None:
        if name not in chosen:
            return
        row = Row(label, transport)
        rows.append(row)
        print(f"{label} [{transport}]: {args.runs} runs of {sizes[name]:,} rows", flush=True)
        for _ in range(args.runs):
            rng = random.Random(master.getrandbits(64))  # noqa: S311
            row.add(lambda rng=rng: make(rng), sizes[name])

    with EmulatorProcess() as emu, environment(
            {"AZSQL_BULK_SQL_PASSWORD": emu.credentials.sql_password}):
        lab = Lab(emu, driver)
        for t in transports:
            runs("kill_sessions", "random kill_sessions, 4 workers", t,
                 lambda rng, t=t: scenarios.kill_sessions(lab, rng, sizes["kill_sessions"],
                                                          rows_per_batch=10_000,
                                                          kills=rng.randint(1, 5),
                                                          transport=t))
            for number in scenarios.TRANSIENT_NUMBERS:
                runs("errors", f"error {number} at a random call (row)", t,
                     lambda rng, number=number, t=t: scenarios.transient_error(
                         lab, rng, sizes["errors"], number, rows_per_batch=2_000,
                         transport=t))
            runs("cut", "socket cut mid-packet (08S01)", t,
                 lambda rng, t=t: scenarios.cut_mid_packet(lab, rng, sizes["cut"],
                                                           rows_per_batch=2_000,
                                                           cuts=rng.randint(1, 4),
                                                           transport=t))
            runs("sigkill", "loader SIGKILL, then resume", t,
                 lambda rng, t=t: scenarios.loader_sigkill(lab, rng, sizes["sigkill"],
                                                           work / f"sigkill-{rng.random()}",
                                                           transport=t))
            rate = THROTTLE_BYTES_PER_SECOND[t]
            runs("throttle", f"throttle {rate // 1000} kB/s, 8 workers", t,
                 lambda rng, t=t, rate=rate: scenarios.throttled(
                     lab, rng, sizes["throttle"], bytes_per_second=rate, transport=t))
        lab.close()

    if "tokens" in chosen:
        with EmulatorProcess(args=["--token-lifetime", "3", "--expire-sessions"]) as short:
            env = {**short.env, "SSL_CERT_FILE": short.ca_cert}
            with environment(env, drop=(*CA_VARS, *AZURE_VARS)):
                lab = Lab(short, driver, CredentialOptions(kind="managed-identity"))
                for t in transports:
                    runs("tokens", "3 s tokens, --expire-sessions", t,
                         lambda rng, t=t: scenarios.token_expiry(lab, rng, sizes["tokens"],
                                                                 seconds=12.0,
                                                                 rows_per_batch=1_000,
                                                                 transport=t))
                lab.close()

    if "restart" in chosen:
        restartable = RestartableEmulator(work / "emu-state")
        restartable.start()
        try:
            with environment({"AZSQL_BULK_SQL_PASSWORD":
                              restartable.credentials.sql_password}):
                lab = Lab(restartable, driver)
                for t in transports:
                    runs("restart", "emulator SIGKILL + restart, then resume", t,
                         lambda rng, t=t: scenarios.emulator_restart(
                             lab, rng, sizes["restart"], work / f"restart-{rng.random()}",
                             transport=t))
                lab.close()
        finally:
            restartable.close()

    elapsed = time.monotonic() - started
    report = (f"# Soak results\n\n`{' '.join(['scripts/soak.py', *(argv or sys.argv[1:])])}`"
              f" — {args.runs} runs per scenario and transport, seed {args.seed}, "
              f"total {elapsed / 60:.1f} min.\n\n{table(rows)}\n")
    failures = [f"- {r.name}: {f}" for r in rows for f in r.failures]
    if failures:
        report += "\nFailed runs:\n" + "\n".join(failures) + "\n"
    Path(args.out).write_text(report)
    print("\n" + report)
    clean = all(o.exact for r in rows for o in r.outcomes) and not failures
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
