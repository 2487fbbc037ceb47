"""The operator's ``execute`` and ``on_kill`` in this process, against the emulator."""

from __future__ import annotations

import threading
import time
import uuid

import pyarrow as pa
import pytest
from integration.airflow.airflow_env import (
    check_exact,
    journal,
    rows_table,
)

pytest.importorskip("airflow.sdk")
pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration

BATCHES, ROWS = 40, 100


class TaskInstance:
    """The task-instance identity ``execute`` reads from its context (a retry: try 2)."""

    def __init__(self, try_number: int) -> None:
        self.dag_id, self.task_id, self.run_id = "kill_dag", "load", "manual__kill"
        self.map_index, self.try_number = -1, try_number


def source(pause: float, hold: threading.Event | None = None) -> pa.RecordBatchReader:
    """BATCHES batches of ROWS rows, one every ``pause`` seconds; with ``hold``, the second
    half only once it is set (so the load cannot finish first, however slow the machine)."""
    def batches():
        for b in range(BATCHES):
            if hold is not None and b == BATCHES // 2:
                hold.wait(120)  # a bound for a hung test only
            time.sleep(pause)
            yield from rows_table(ROWS, start=b * ROWS).to_batches()
    return pa.RecordBatchReader.from_batches(rows_table(1).schema, batches())


def first_journaled_load(conn, table: str) -> str | None:
    """The load id of the first batch journaled for ``table``, once there is one."""
    (exists,) = conn.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                             "TABLE_SCHEMA = 'azsql_bulk' AND TABLE_NAME = 'load_journal'"
                             ).fetchone()
    if not exists:
        return None
    found = conn.execute("SELECT TOP 1 load_id FROM [azsql_bulk].[load_journal] "
                         "WHERE target = ?", table).fetchone()
    return found[0] if found else None


def test_on_kill_stops_at_a_batch_boundary_and_the_retry_resumes(azsql_mi, reader):
    from airflow_integration.operators import AzureSqlBulkLoadOperator
    from engine.errors import TransferCancelled

    table = f"dbo.killed_{uuid.uuid4().hex[:8]}"

    def operator(data: pa.RecordBatchReader) -> AzureSqlBulkLoadOperator:
        return AzureSqlBulkLoadOperator(task_id="load", source=data,  # type: ignore[arg-type]
                                        table=table, conn_id="azsql_mi", workers=2,
                                        rows_per_batch=ROWS)

    hold = threading.Event()
    first = operator(source(pause=0.05, hold=hold))
    outcome: list[BaseException | dict] = []

    def run() -> None:
        try:
            outcome.append(first.execute({"ti": TaskInstance(1)}))  # type: ignore[arg-type]
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    load_id = None
    deadline = time.monotonic() + 120  # a bound for a hung load, not a timing assertion
    while load_id is None and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
        load_id = first_journaled_load(reader, table)
    first.on_kill()
    hold.set()  # the rest of the source comes only after the kill
    thread.join(120)
    assert not thread.is_alive() and load_id is not None
    (error,) = outcome
    assert isinstance(error, TransferCancelled), error
    assert error.resumable and error.load_id == load_id
    kept_batches, kept_rows = journal(reader, load_id)
    assert 0 < kept_batches < BATCHES and kept_rows == kept_batches * ROWS

    # Airflow's next try: same task instance, so the same load id; only the rest is sent.
    result = operator(source(pause=0)).execute({"ti": TaskInstance(2)})  # type: ignore[arg-type]
    assert result["load_id"] == load_id
    assert result["batches_skipped"] >= kept_batches
    assert result["rows_this_try"] + result["batches_skipped"] * ROWS == BATCHES * ROWS
    assert (result["rows"], result["batches"]) == (BATCHES * ROWS, BATCHES)  # the whole load
    check_exact(reader, table, BATCHES * ROWS)
    assert journal(reader, load_id) == (BATCHES, BATCHES * ROWS)


def test_a_retry_after_a_failed_try_reports_the_whole_load_and_logs_progress(
        emu_proc, azsql_mi, reader, capfd):
    """The first try fails mid-load on an injected 40613 (no batch replays allowed), the
    second resumes: its XCom ``rows`` is the load's total, ``rows_this_try`` its part."""
    from support import inject_fault

    from airflow_integration.operators import AzureSqlBulkLoadOperator
    from engine.errors import TransferError

    table = f"dbo.retried_{uuid.uuid4().hex[:8]}"
    data = rows_table(BATCHES * ROWS)

    def operator() -> AzureSqlBulkLoadOperator:
        # 100-row batches travel as parameter arrays: one RPC call per row
        return AzureSqlBulkLoadOperator(task_id="load", source=data,  # type: ignore[arg-type]
                                        table=table, conn_id="azsql_mi", workers=1,
                                        rows_per_batch=ROWS, max_retries=0,
                                        progress_interval=0)

    inject_fault(emu_proc, kind="error", number=40613, after_rpc_calls=BATCHES * ROWS // 3,
                 count=1)
    with pytest.raises(TransferError) as failed:
        operator().execute({"ti": TaskInstance(1)})  # type: ignore[arg-type]
    assert "40613" in str(failed.value) and failed.value.resumable
    load_id = failed.value.load_id
    kept_batches, kept_rows = journal(reader, load_id)
    assert 0 < kept_batches < BATCHES and kept_rows == kept_batches * ROWS

    result = operator().execute({"ti": TaskInstance(2)})  # type: ignore[arg-type]
    assert result["load_id"] == load_id and result["batches_skipped"] == kept_batches
    assert (result["rows"], result["batches"]) == (BATCHES * ROWS, BATCHES)
    assert result["rows_this_try"] == BATCHES * ROWS - kept_rows
    assert result["batches_this_try"] == BATCHES - kept_batches
    check_exact(reader, table, BATCHES * ROWS)
    # progress_interval=0: a progress line per committed batch, through the engine's display,
    # in the operator's log (Airflow's structlog writes it to the process's output)
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if f"azsql-bulk: {table}: " in line]
    assert any(f"{BATCHES * ROWS:,} rows" in line for line in lines), lines[-3:]
    assert any(f"{BATCHES - kept_batches} batches skipped" in line or
               f"{kept_batches} batches skipped" in line for line in lines), lines[-3:]
    # the size the load used and why (a rerun keeps the journaled size)
    assert f"{ROWS:,} rows per batch (" in out + err


def test_upsert_with_keys_merges_overlapping_runs(azsql_mi, reader):
    from airflow_integration.operators import AzureSqlBulkLoadOperator

    table = f"dbo.upsert_{uuid.uuid4().hex[:8]}"
    results = []
    for run, start in (("run-1", 0), ("run-2", 500)):  # rows 0-999, then 500-1499
        ti = TaskInstance(1)
        ti.run_id = run
        op = AzureSqlBulkLoadOperator(task_id="load", source=rows_table(1_000, start=start),  # type: ignore[arg-type]
                                      table=table, conn_id="azsql_mi", mode="upsert",
                                      keys=["id"], workers=2, rows_per_batch=250)
        results.append(op.execute({"ti": ti}))  # type: ignore[arg-type]
    assert [r["rows"] for r in results] == [1_000, 1_000]
    assert results[0]["load_id"] != results[1]["load_id"]  # another run, another load
    check_exact(reader, table, 1_500)  # the 500 overlapping ids once each
