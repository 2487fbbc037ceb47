"""Run DAGs with ``dag.test()`` in a fresh Airflow home; print one ``RESULT <json>`` line.

Run as a child process by the tests (Airflow reads its configuration from the environment
at import, so each run gets its own ``AIRFLOW_HOME`` and SQLite database)::

    python dag_runner.py '[{"dag_id": "azsql_load_retry", "fault": {"kind": "error", ...}}]'

A step's ``fault`` is posted to the emulator's control API (``AZSQL_TEST_CONTROL_URL``)
right before that DAG runs. For each DAG the result holds the run's state, every task
instance (task id, map index, try number, state) and its ``return_value`` XCom.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request


def inject(fault: dict) -> None:
    url = os.environ["AZSQL_TEST_CONTROL_URL"] + "/faults"
    assert url.startswith("http://127.0.0.1:"), url
    request = urllib.request.Request(url, data=json.dumps(fault).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def run(plan: list[dict]) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session
    from sqlalchemy import select

    started = time.monotonic()
    db.initdb()
    results: dict = {"initdb_seconds": time.monotonic() - started, "dags": {}}
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    for step in plan:
        if step.get("fault"):
            inject(step["fault"])
        dag = bag.get_dag(step["dag_id"])
        began = time.monotonic()
        dag_run = dag.test()
        seconds = time.monotonic() - began
        with create_session() as session:
            tis = session.scalars(select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id)).all()
            xcoms = session.scalars(select(XComModel).where(
                XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value")).all()
            results["dags"][dag.dag_id] = {
                "state": str(dag_run.state), "run_id": dag_run.run_id, "seconds": seconds,
                "tasks": [{"task_id": ti.task_id, "map_index": ti.map_index,
                           "try_number": ti.try_number, "state": str(ti.state)} for ti in tis],
                "xcom": [{"task_id": x.task_id, "map_index": x.map_index,
                          "value": XComModel.deserialize_value(x)} for x in xcoms],
            }
    return results


if __name__ == "__main__":
    print("RESULT " + json.dumps(run(json.loads(sys.argv[1])), default=str), flush=True)
