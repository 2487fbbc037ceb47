"""``scripts/demo.py`` end to end, small: the real emulator, the real CLI (load, then verify).

The demo runs as a subprocess exactly as ``make demo`` runs it, only with fewer rows,
short tokens (so renewals can happen within a load of a few seconds) and a temporary
dataset cache. Nothing is mocked and nothing is timed.
"""

from __future__ import annotations

import importlib.util
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
         "--rows-per-batch", "3000", "--token-lifetime", "5", "--token-refresh-margin", "3"],
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
    # the default transport (auto) chose bulk copy on the emulator, and the demo says so
    assert facts["transport"] == "bulk-copy", first.stdout
    # the table was checked by `azsql-bulk verify`, as another login than the loader's
    assert re.search(r"^  OK   \d[\d,]* checks of the table against the Parquet "
                     rf"\({ROWS:,} source rows, 500 sample rows\)$", first.stdout, re.M), \
        first.stdout
    assert "FAIL" not in first.stdout
    assert "--auth managed-identity" in first.stdout  # the load went through the CLI
    assert re.search(r"azsql-bulk verify .* --key order_id .* --auth sql ", first.stdout)
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


def test_the_dataset_is_the_same_bytes_every_time_with_every_promised_kind_of_value(tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    spec = importlib.util.spec_from_file_location("demo_data", ROOT / "scripts" / "demo_data.py")
    assert spec and spec.loader
    demo_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_data)
    first = demo_data.ensure_dataset(tmp_path / "a", 10_000)
    second = demo_data.ensure_dataset(tmp_path / "b", 10_000)
    assert [f.read_bytes() for f in first] == [f.read_bytes() for f in second]
    assert demo_data.ensure_dataset(tmp_path / "a", 10_000) == first  # found, not rebuilt
    assert len(first) == 4 and all(pq.ParquetFile(f).metadata.num_row_groups > 1 for f in first)
    table = pq.read_table([str(f) for f in first])
    assert table.num_rows == 10_000
    assert table.column("order_id").to_pylist() == list(range(1, 10_001))
    assert table.schema.field("amount").type == pa.decimal128(18, 2)
    assert table.schema.field("ordered_at").type.tz is not None
    assert table.schema.field("order_uuid").type.extension_name == "arrow.uuid"
    assert pc.count_distinct(pa.chunked_array(
        [c.storage for c in table.column("order_uuid").chunks])).as_py() == 10_000
    for column in ("discount", "shipped_at", "note"):
        assert 0 < table.column(column).null_count < 10_000, column
    names = "".join(table.column("customer_name").unique().to_pylist())
    notes = "".join(v for v in table.column("note").unique().to_pylist() if v)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in names)  # CJK
    assert any(ch in "éèüöåøñ" for ch in names)  # accents
    assert any(ord(ch) > 0xFFFF for ch in notes)  # emoji, beyond the BMP


def test_demo_refuses_a_row_count_below_one(tmp_path):
    result = subprocess.run([sys.executable, str(DEMO), "--rows", "0", "--cache-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert "--rows must be at least 1" in result.stdout
