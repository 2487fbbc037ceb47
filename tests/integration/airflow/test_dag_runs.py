"""Real Airflow (``dag.test()``, SQLite metadata DB, DAG files) loading into the emulator.

One child process runs four DAGs from ``dags/``: a plain load (service principal, the
secret only in the Airflow connection's password), a load whose first try fails mid-way
on an injected fault and is resumed by Airflow's retry (managed identity), a load
mapped over 4 shards, and a load of some columns under new names. Tables are read back
with pyodbc, a different client.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from integration.airflow.airflow_env import (
    AZURE_VARS,
    FILES,
    ROWS_PER_FILE,
    TOTAL_ROWS,
    check_exact,
    conn_json,
    identity_env,
    journal,
)

pytest.importorskip("airflow.sdk")
pytest.importorskip("turbodbc")
# the module's fixture (airflow initdb and three dag.test() runs) runs inside its first test:
# bounds for a hang only
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

HERE = Path(__file__).parent
ROWS_PER_BATCH = 250  # as in dags/azsql_test_dags.py
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@pytest.fixture(scope="module")
def airflow_run(emu_proc, parquet_dir, reader, tmp_path_factory):
    """Run the DAGs once; yields (results, prefix, captured text of all logs)."""
    home = tmp_path_factory.mktemp("airflow_home")
    prefix = f"af_{uuid.uuid4().hex[:8]}"
    # The mapped load's shards run with create='never': the table exists beforehand, as it
    # should when shards may run in parallel.
    reader.execute(f"CREATE TABLE dbo.{prefix}_mapped (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(20) NULL)")
    env = {k: v for k, v in os.environ.items() if k not in AZURE_VARS
           and not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(identity_env(emu_proc))
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_CONN_AZSQL_MI": conn_json(emu_proc, "managed_identity"),
        "AIRFLOW_CONN_AZSQL_SP": conn_json(emu_proc, "service_principal"),
        "AZSQL_TEST_DATA": str(parquet_dir), "AZSQL_TEST_TABLES": prefix,
        "AZSQL_TEST_CONTROL_URL": emu_proc.control_url,
    })
    # 40613 drops the session after ~8 of the retry load's 32 batches; with max_retries=0
    # the engine gives up and the task's first try fails.
    fault = {"kind": "error", "number": 40613, "after_rpc_calls": 2_000, "count": 1}
    plan = [{"dag_id": "azsql_load_once"},
            {"dag_id": "azsql_load_retry", "fault": fault},
            {"dag_id": "azsql_load_mapped"},
            {"dag_id": "azsql_load_columns"}]
    proc = subprocess.run([sys.executable, str(HERE / "dag_runner.py"), json.dumps(plan)],
                          env=env, cwd=home, capture_output=True, text=True, timeout=1200)
    logs = proc.stdout + proc.stderr
    for path in sorted(home.rglob("*")):
        if path.is_file() and path.suffix in (".log", ".json", ""):
            logs += path.read_text(errors="replace")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, f"runner failed ({proc.returncode}):\n{logs[-6000:]}"
    results = json.loads(line.removeprefix("RESULT "))
    print("dag.test seconds:", {d: round(r["seconds"], 1) for d, r in results["dags"].items()},
          "initdb:", round(results["initdb_seconds"], 1))
    yield results, prefix, logs
    from support import inject_fault

    inject_fault(emu_proc, kind="clear")


def test_a_load_succeeds_and_its_result_is_in_xcom(airflow_run, reader):
    results, prefix, logs = airflow_run
    run = results["dags"]["azsql_load_once"]
    assert run["state"] == "success"
    assert [t["state"] for t in run["tasks"]] == ["success"]
    (xcom,) = run["xcom"]
    value = xcom["value"]
    assert value["rows"] == TOTAL_ROWS and value["table"] == f"dbo.{prefix}_once"
    assert value["batches"] == TOTAL_ROWS // ROWS_PER_BATCH and value["batches_skipped"] == 0
    assert len(json.dumps(value)) < 4_000  # small: XCom is no place for bulk data
    # the task log has the engine's progress line (the last one at least: the averages)
    assert f"azsql-bulk: dbo.{prefix}_once: {TOTAL_ROWS:,} / {TOTAL_ROWS:,} rows (100.0%)" \
        in logs
    check_exact(reader, f"dbo.{prefix}_once", TOTAL_ROWS)
    assert journal(reader, value["load_id"]) == (TOTAL_ROWS // ROWS_PER_BATCH, TOTAL_ROWS)


def test_a_retry_resumes_the_failed_try_and_the_table_is_exact(airflow_run, reader):
    results, prefix, logs = airflow_run
    run = results["dags"]["azsql_load_retry"]
    assert run["state"] == "success"
    (task,) = run["tasks"]
    assert task["try_number"] == 2 and task["state"] == "success"
    assert "40613" in logs  # the first try did fail on the injected fault
    (xcom,) = run["xcom"]
    value = xcom["value"]
    batches = TOTAL_ROWS // ROWS_PER_BATCH
    # The second try skipped what the first committed and sent only the rest; its XCom
    # counts the whole load in rows/batches, and its own part in rows_this_try.
    assert 0 < value["batches_skipped"] < batches
    assert value["rows_this_try"] == TOTAL_ROWS - value["batches_skipped"] * ROWS_PER_BATCH
    assert (value["rows"], value["batches"]) == (TOTAL_ROWS, batches)
    check_exact(reader, f"dbo.{prefix}_retry", TOTAL_ROWS)
    assert journal(reader, value["load_id"]) == (batches, TOTAL_ROWS)


def test_a_load_mapped_over_4_shards_is_exact(airflow_run, reader):
    results, prefix, logs = airflow_run
    run = results["dags"]["azsql_load_mapped"]
    assert run["state"] == "success"
    loads = sorted((t for t in run["tasks"] if t["task_id"] == "load"),
                   key=lambda t: t["map_index"])
    assert [(t["map_index"], t["state"]) for t in loads] == [(i, "success") for i in range(4)]
    values = [x["value"] for x in run["xcom"] if x["task_id"] == "load"]
    assert len(values) == 4
    assert len({v["load_id"] for v in values}) == 4  # map_index is part of the load id
    assert sum(v["rows"] for v in values) == TOTAL_ROWS
    assert sorted(v["rows"] for v in values) == [FILES // 4 * ROWS_PER_FILE] * 4
    # the shards went through XCom and mapping as JSON dicts, and each task says which
    (split,) = [x["value"] for x in run["xcom"] if x["task_id"] == "shards"]
    assert [s["azsql_bulk_shard"] for s in split] == [1] * 4
    assert [s["index"] for s in split] == [0, 1, 2, 3]
    for index in range(4):
        assert f"loading shard {index} of 4 (" in logs
    check_exact(reader, f"dbo.{prefix}_mapped", TOTAL_ROWS)


def test_a_load_of_some_columns_under_new_names(airflow_run, reader):
    # regression: the operator opened the source with columns/rename and passed them to
    # transfer() again, which refused them, so every such task failed
    results, prefix, logs = airflow_run
    run = results["dags"]["azsql_load_columns"]
    assert run["state"] == "success", logs[-4000:]
    (xcom,) = run["xcom"]
    assert xcom["value"]["rows"] == TOTAL_ROWS
    table = f"{prefix}_columns"
    names = [r[0] for r in reader.execute(
        "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = ? "
        "ORDER BY ORDINAL_POSITION", table).fetchall()]
    assert names == ["id", "label"]
    got = reader.execute(f"SELECT COUNT(*), SUM(id), MIN(label), MAX(label) "
                         f"FROM dbo.{table}").fetchone()
    assert tuple(got) == (TOTAL_ROWS, sum(range(TOTAL_ROWS)), "row-000000",
                          f"row-{TOTAL_ROWS - 1:06d}")


def test_no_secret_reaches_logs_or_xcom(airflow_run, emu_proc):
    results, _, logs = airflow_run
    secrets = {"client secret": emu_proc.credentials.service_principal.client_secret,
               "identity header": emu_proc.env["IDENTITY_HEADER"]}
    xcom_text = json.dumps([x for r in results["dags"].values() for x in r["xcom"]])
    assert "azsql_load_once" in logs and "loading" in logs  # the logs were captured
    for what, value in secrets.items():
        assert value and value not in logs, f"the {what} appears in the logs"
        assert value not in xcom_text, f"the {what} appears in XCom"
    assert not JWT.search(logs), "an access token appears in the logs"
    assert not JWT.search(xcom_text)
