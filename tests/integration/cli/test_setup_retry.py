"""A transient error during a load's set-up (before its first batch) is ridden out: the
session-context call on a new connection, the table check, the journal. The emulator's
fault injection fails the k-th RPC call with Azure's 40613 (which ends the session)."""

from __future__ import annotations

import pytest
from integration.cli.cli_env import last_json, run_cli, table_name, write_parquet
from loads import check_exact

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("after_calls", [0, 1, 2, 4])
def test_a_connection_fatal_error_before_the_first_batch_is_retried(
        after_calls, tmp_path, emu_proc, sql_env, conn_args, reader):
    total = write_parquet(tmp_path / "data", files=1, rows_per_file=2_000)
    table = table_name("setup")
    emu_proc._call("/faults", {"kind": "error", "number": 40613, "at": "rpc",
                               "after_rpc_calls": after_calls, "count": 1})
    try:
        proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--workers", "1",
                        "--rows-per-batch", "500", "--transport", "parameter-arrays",
                        "--json", *conn_args], sql_env)
        pending = emu_proc._call("/faults")
    finally:
        emu_proc._call("/faults", {"kind": "clear"})
    assert proc.returncode == 0, proc.stderr
    assert not pending["rpc_errors"], "the fault never fired"
    assert last_json(proc.stdout)["rows"] == total
    check_exact(reader, table, total)
