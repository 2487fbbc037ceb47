"""``scripts/demo.py`` end to end, small: the real emulator, the real CLI, a pyodbc read-back.

The demo runs as a subprocess exactly as ``make demo`` runs it, only with fewer rows,
short tokens (so renewals can happen within a load of a few seconds) and a temporary
dataset cache. Nothing is mocked and nothing is timed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "scripts" / "demo.py"
ROWS = 20_000


def run_demo(cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), "--rows", str(ROWS), "--cache-dir", str(cache),
         "--rows-per-batch", "1000", "--token-lifetime", "5", "--token-refresh-margin", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=280,
        check=False)


def summary(output: str) -> dict[str, str]:
    """The ``summary`` block's ``name  value`` lines."""
    _, _, block = output.rpartition("\nsummary\n")
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\S.*?)\s{2,}(\S.*)$", block, re.M)}


def test_demo_loads_and_verifies_then_reuses_its_cached_dataset(tmp_path):
    cache = tmp_path / "cache"
    first = run_demo(cache)
    assert first.returncode == 0, first.stdout
    facts = summary(first.stdout)
    assert facts["verification"] == "OK", first.stdout
    assert facts["rows loaded"] == f"{ROWS:,} of {ROWS:,}", first.stdout
    assert re.fullmatch(r"\d+", facts["token renewals"]), first.stdout
    assert f"OK   rows: {ROWS:,}" in first.stdout
    assert "FAIL" not in first.stdout
    assert "--auth managed-identity" in first.stdout  # the load went through the CLI
    assert "wrote orders-00.parquet" in first.stdout
    files = sorted(cache.glob(f"v*-{ROWS}/*.parquet"))  # v<generator version>-<rows>
    assert len(files) == 4

    # A second run starts a fresh emulator and loads the cached files again: same result.
    second = run_demo(cache)
    assert second.returncode == 0, second.stdout
    assert summary(second.stdout)["verification"] == "OK", second.stdout
    assert summary(second.stdout)["rows loaded"] == f"{ROWS:,} of {ROWS:,}"
    assert "wrote orders-" not in second.stdout  # the dataset came from the cache
    assert sorted(cache.glob(f"v*-{ROWS}/*.parquet")) == files


def test_demo_refuses_a_row_count_below_one(tmp_path):
    result = subprocess.run([sys.executable, str(DEMO), "--rows", "0", "--cache-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert "--rows must be at least 1" in result.stdout
