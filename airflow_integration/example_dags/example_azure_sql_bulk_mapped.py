"""Load a day of Parquet files into Azure SQL, scaled out over 4 mapped tasks.

The ``azure_sql`` connection (type ``azure_sql_bulk``) logs in with the workers' managed
identity; no secret is in this file. ``prepare`` creates the table once, so the shards,
which may run at the same time on different workers, only insert (``create="never"``).
Each shard's load id comes from its task instance (map index included), so a retried
shard resumes where its failed try stopped and the day's rows land exactly once.

Set ``AIRFLOW_CONN_AZURE_SQL`` (or define the connection in the UI), for example::

    AIRFLOW_CONN_AZURE_SQL='{"conn_type": "azure_sql_bulk",
        "host": "myserver.database.windows.net", "schema": "sales",
        "extra": {"auth": "managed_identity"}}'
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, task

from airflow_integration.hooks import AzureSqlBulkHook
from airflow_integration.operators import AzureSqlBulkLoadOperator
from airflow_integration.shards import split_source

with DAG(
    "example_azure_sql_bulk_mapped",
    schedule="@daily",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    default_args={"retries": 3, "retry_delay": datetime.timedelta(minutes=2)},
    tags=["example", "azure-sql"],
):
    @task
    def shards(ds: str | None = None) -> list[list[str]]:
        """The day's files dealt into 4 shards of similar size."""
        return split_source(f"/data/orders/{ds}/*.parquet", 4)

    @task
    def prepare() -> None:
        """Create the table once, before the shards run in parallel."""
        hook = AzureSqlBulkHook("azure_sql")
        try:
            with hook.get_conn() as conn:
                conn.cursor().execute(
                    "IF OBJECT_ID('dbo.orders') IS NULL CREATE TABLE dbo.orders ("
                    "order_id bigint NOT NULL, amount decimal(18,2) NULL, "
                    "country nvarchar(2) NULL, ordered_at datetime2 NULL)")
                conn.commit()
        finally:
            hook.close()

    loads = AzureSqlBulkLoadOperator.partial(
        task_id="load", table="dbo.orders", conn_id="azure_sql", workers=4,
        rows_per_batch=10_000, create="never",
    ).expand(source=shards())
    prepare() >> loads
