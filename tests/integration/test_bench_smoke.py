"""Smoke run of the benchmark suite: every script still runs and reports its figures.

One ``benchmarks/run.py --quick --rows 2000`` (narrow dataset only), which runs each
benchmark script in its own process against its own emulator and writes a report. This
checks that the figures exist and are positive, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# the module's fixture runs the whole quick suite (over 2 minutes on a loaded 2-core machine)
# inside its first test: bounds for a hang only
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--rows", "2000",
         "--datasets", "narrow", "--output", str(out)],
        capture_output=True, text=True, timeout=1200, cwd=REPO,
        env={**__import__("os").environ, "AZSQL_BULK_CACHE": str(out.parent / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    return out.read_text(), json.loads(out.with_suffix(".json").read_text())


def _positive(*values):
    for v in values:
        assert isinstance(v, int | float) and v > 0, values


def test_every_benchmark_ran(suite):
    _, runs = suite
    assert sorted(runs) == ["_meta", "memory", "overhead", "peers-narrow", "scenarios", "sweep"]
    assert runs["_meta"]["seconds"] > 0
    assert [k for k, v in runs.items() if "error" in v] == []


def test_overhead_figures(suite):
    o = suite[1]["overhead"]
    for name in ("engine", "raw", "engine_precast"):
        _positive(o["results"][name]["cpu_seconds_per_million_rows"],
                  o["results"][name]["wall_rows_per_second"])
    _positive(o["ratio_cpu_engine_over_raw"])
    assert o["server_rows_discarded"] == 3 * 2000


def test_sweep_and_memory_figures(suite):
    runs = suite[1]
    for r in runs["sweep"]["results"]:
        _positive(r["rows_per_batch"], r["wall_rows_per_second"],
                  r["cpu_seconds_per_million_rows"])
    mem = runs["memory"]
    assert mem["file_over_bound"] > 1
    for r in mem["runs"]:
        assert r["rows"] == 2000
        _positive(r["baseline_rss_mib"], r["peak_rss_mib"], r["cast_batch_mib"],
                  r["bound_formula_mib"])
        assert r["peak_rss_mib"] >= r["baseline_rss_mib"]


def test_charts_are_drawn_and_linked(suite):
    text, _ = suite
    for name in ("chart_rows_per_second.png", "chart_cpu_per_row.png", "chart_scaling.png",
                 "chart_memory.png"):
        assert f"]({name})" in text


def test_every_peer_loaded_every_row(suite):
    peers = suite[1]["peers-narrow"]
    failed = {r["tool"]: r["error"] for r in peers["results"] if "error" in r}
    assert failed == {}
    for r in peers["results"]:
        assert r["rows"] == 2000, r
        _positive(r["rows_per_second"], r["cpu_seconds_per_million_rows"], r["peak_rss_mib"],
                  r["wire_bytes_per_row"], r["logins"])
        assert r["tokens"] >= 0  # mssql-python bulkcopy logs in with SQL auth: 0 tokens


def test_scenarios_figures(suite):
    sc = suite[1]["scenarios"]
    short = sc["tokens"]["short_lifetime_seconds"]
    for key in ("lifetime_3600s", f"lifetime_{short}s"):
        _positive(sc["tokens"][key]["rows_per_second"])
    th = sc["throttle"]
    _positive(th["throttle_bytes_per_second"], th["throttled_request_bytes_per_second"])
    assert th["retries"] == 0


def test_report_has_a_table_per_section(suite):
    text, _ = suite
    for heading in ("## Engine overhead", "## rows_per_batch sweep", "## Peak memory",
                    "### narrow", "## Scenarios", "## Headline", "## Not covered",
                    "Machine:", "Command: `"):
        assert heading in text
