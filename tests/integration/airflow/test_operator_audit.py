"""The operator's sessions name the DAG, task and run (issue 22, part 3), and the hook's
``journal()`` lists and prunes loads for a maintenance DAG (part 2). In this process,
against the emulator."""

from __future__ import annotations

import threading
import uuid

import pyarrow as pa
import pytest
from integration.airflow.airflow_env import (
    check_exact,
    journal,
    rows_table,
)
from support import HANG_SECONDS, wait_until

pytest.importorskip("airflow.sdk")
pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration

BATCHES, ROWS = 10, 100


class TaskInstance:
    def __init__(self) -> None:
        self.dag_id, self.task_id = "nightly_orders", "load_orders"
        self.run_id = f"manual__{uuid.uuid4().hex[:6]}"
        self.map_index, self.try_number = 4, 1


def held_source(hold: threading.Event) -> pa.RecordBatchReader:
    """BATCHES batches; the second one only once ``hold`` is set (so the load is still
    running while the test looks at its sessions, however slow the machine)."""
    def batches():
        for b in range(BATCHES):
            if b == 1:
                hold.wait(HANG_SECONDS)
            yield from rows_table(ROWS, start=b * ROWS).to_batches()
    return pa.RecordBatchReader.from_batches(rows_table(1).schema, batches())


def test_operator_sessions_name_dag_task_and_run_and_the_hook_prunes(emu_proc, azsql_mi,
                                                                    reader):
    from airflow_integration.hooks import AzureSqlBulkHook
    from airflow_integration.operators import AzureSqlBulkLoadOperator
    from engine.journal_admin import parse_age

    table = f"dbo.audited_{uuid.uuid4().hex[:8]}"
    ti = TaskInstance()
    hold = threading.Event()
    op = AzureSqlBulkLoadOperator(task_id=ti.task_id, source=held_source(hold),  # type: ignore[arg-type]
                                  table=table, conn_id="azsql_mi", workers=1,
                                  rows_per_batch=ROWS)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(op.execute({"ti": ti}))  # type: ignore[arg-type]
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        def named() -> list[dict]:
            return [s for s in emu_proc.sessions()
                    if f"dag={ti.dag_id} task={ti.task_id}[4]" in (s.get("app_name") or "")]
        assert wait_until(lambda: named() or not thread.is_alive())
        (session,) = named()
        app = session["app_name"]
        assert app.startswith("azsql-bulk/") and " load=" in app and len(app) <= 128
        assert f"run={ti.run_id}" in app
        for secret in (emu_proc.env.get("IDENTITY_HEADER"), "eyJ"):
            assert not secret or secret not in app
    finally:
        hold.set()
        thread.join(HANG_SECONDS)
    (result,) = outcome
    assert isinstance(result, dict), result
    assert f"load={result['load_id']}" in app
    check_exact(reader, table, BATCHES * ROWS)

    hook = AzureSqlBulkHook("azsql_mi")
    try:
        admin = hook.journal()
        listed = {s.load_id: s for s in admin.loads()}
        mine = listed[result["load_id"]]
        # a streamed RecordBatchReader's row count is not known up front: the journal
        # cannot tell complete from partial for it
        assert (mine.table, mine.mode, mine.state, mine.rows, mine.batches) == (
            table, "append", "unknown", BATCHES * ROWS, BATCHES)
        reader.execute("UPDATE [azsql_bulk].[load_journal] SET committed_at = "
                       "'2020-01-01 00:00:00' WHERE load_id = ?", result["load_id"])
        pruned = admin.prune(parse_age("30d"))
        assert result["load_id"] in [f.load.load_id for f in pruned]
        assert journal(reader, result["load_id"]) == (0, 0)
    finally:
        hook.close()
