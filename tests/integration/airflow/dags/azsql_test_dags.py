"""DAGs the Airflow integration tests run with ``dag.test()`` (settings from environment).

``AZSQL_TEST_DATA``: a directory of Parquet files; ``AZSQL_TEST_TABLES``: a table name
prefix unique to the test run. Connections come from ``AIRFLOW_CONN_AZSQL_MI`` (managed
identity) and ``AIRFLOW_CONN_AZSQL_SP`` (service principal, secret in the password).
"""

from __future__ import annotations

import datetime
import os

from airflow.sdk import DAG, task

from airflow_integration.operators import AzureSqlBulkLoadOperator
from airflow_integration.shards import split_source

DATA = os.environ.get("AZSQL_TEST_DATA", "/nonexistent")
PREFIX = os.environ.get("AZSQL_TEST_TABLES", "af")
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NO_DELAY = datetime.timedelta(seconds=0)

with DAG("azsql_load_once", schedule=None, start_date=START, catchup=False):
    AzureSqlBulkLoadOperator(task_id="load", source=DATA + "/*.parquet",
                             table=f"dbo.{PREFIX}_once", conn_id="azsql_sp", workers=2,
                             rows_per_batch=250)

with DAG("azsql_load_retry", schedule=None, start_date=START, catchup=False):
    # max_retries=0: the injected transient fault ends the first try; Airflow's retry resumes.
    AzureSqlBulkLoadOperator(task_id="load", source=DATA + "/*.parquet",
                             table=f"dbo.{PREFIX}_retry", conn_id="azsql_mi", workers=2,
                             rows_per_batch=250, max_retries=0, retries=1,
                             retry_delay=NO_DELAY)

with DAG("azsql_load_mapped", schedule=None, start_date=START, catchup=False):
    @task
    def shards() -> list[dict]:  # JSON shards (engine.shards), passed through XCom intact
        return split_source(DATA + "/*.parquet", 4)

    AzureSqlBulkLoadOperator.partial(
        task_id="load", table=f"dbo.{PREFIX}_mapped", conn_id="azsql_mi", workers=1,
        rows_per_batch=250, create="never").expand(source=shards())

with DAG("azsql_load_columns", schedule=None, start_date=START, catchup=False):
    # columns and rename are source options: the engine opens the source with them
    AzureSqlBulkLoadOperator(task_id="load", source=DATA + "/*.parquet",
                             table=f"dbo.{PREFIX}_columns", conn_id="azsql_mi", workers=2,
                             rows_per_batch=250, columns=["id", "name"],
                             rename={"name": "label"})
