"""`azsql-bulk load` of the all-types dataset into the emulator (issue 19), both transports.

The dataset (``benchmarks/all_types_data.py``: a column for every Arrow type the engine's
type map takes, NULLs, edge values, (max) text and bytes) goes through the console script
as an Arrow IPC file, which keeps every Arrow type. Every row must take the emulator's
column-wise path (``row_path_calls`` unchanged in ``/metrics``) and read back exactly
through pyodbc. Fewer rows than the benchmark's 100,000: the path and the values are
what is checked here, not the speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from integration.cli.cli_env import last_json, run_cli, table_name

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
import all_types_data  # noqa: E402  (benchmarks/all_types_data.py)

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration
ROWS = 3_000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    table = all_types_data.all_types(ROWS)
    path = all_types_data.write_ipc(table, tmp_path_factory.mktemp("all_types") / "all.arrow",
                                    rows_per_batch=1_000)
    return table, path


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_all_types_load_through_the_cli_column_wise_and_exact(emu_proc, sql_env, conn_args,
                                                              reader, dataset, transport):
    table, path = dataset
    target = table_name(f"all_{transport.replace('-', '_')}")
    before = emu_proc.metrics()
    proc = run_cli(["load", str(path), "--table", target, "--workers", "2",
                    "--rows-per-batch", "1000", "--transport", transport, "--json",
                    *conn_args], sql_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = emu_proc.metrics()
    result = last_json(proc.stdout)
    assert result["rows"] == ROWS and result["transport"] == transport, result
    assert after["row_path_calls"] - before["row_path_calls"] == 0, after["fallbacks"]
    assert after["fallbacks"] == before["fallbacks"]
    key = "bulk_columnar_rows" if transport == "bulk-copy" else "columnar_rows"
    assert after[key] - before[key] >= ROWS
    assert all_types_data.verify(reader, target, table) == []
