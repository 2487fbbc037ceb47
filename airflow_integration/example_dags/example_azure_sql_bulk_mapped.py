"""Load a day of Parquet files into Azure SQL, scaled out over mapped tasks.

The ``azure_sql`` connection (type ``azure_sql_bulk``) logs in with the workers' managed
identity; no secret is in this file. ``prepare`` creates the table once, so the shards,
which may run at the same time on different workers, only insert (``create="never"``).
Each shard's load id comes from its task instance (map index included), so a retried
shard resumes where its failed try stopped and the day's rows land exactly once.

The files come from the ``source`` param: a path, glob or directory, in which Jinja such as
``{{ run_after | ds }}`` names the run's day (a scheduled run's ``run_after`` is the end of
its interval; a manual run, which has no logical date in Airflow 3, has its trigger time).
``shards`` is how many mapped loads to split it into. Trigger it by hand with another path::

    airflow dags trigger example_azure_sql_bulk_mapped \
        --conf '{"source": "/data/orders/2024-01-01/*.parquet", "shards": 8}'

Set ``AIRFLOW_CONN_AZURE_SQL`` (or define the connection in the UI), for example::

    AIRFLOW_CONN_AZURE_SQL='{"conn_type": "azure_sql_bulk",
        "host": "myserver.database.windows.net", "schema": "sales",
        "extra": {"auth": "managed_identity"}}'
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_integration.hooks import AzureSqlBulkHook
from airflow_integration.operators import AzureSqlBulkLoadOperator
from airflow_integration.shards import split_source

DAG_ID = "example_azure_sql_bulk_mapped"
#: the files of the run's day; the Jinja is rendered when the run splits them
DEFAULT_SOURCE = "/data/orders/{{ run_after | ds }}/*.parquet"
DEFAULT_SHARDS = 4


def split_or_fail(source: str, shards: int) -> list[Any]:
    """``split_source(source, shards)``; a source that matches nothing fails the task at once.

    A missing file does not appear by retrying, so the task fails without its retries
    (``AirflowFailException``) and says how to pass another path.

    :param source: the rendered path, glob or directory.
    :param shards: how many shards at most.
    :raises AirflowFailException: ``source`` matches no file, or ``shards`` is below 1.
    """
    from engine.errors import ConfigurationError

    try:
        return list(split_source(source, shards))
    except ConfigurationError as exc:
        raise AirflowFailException(
            f"cannot split source {source!r} into {shards} shard(s): {exc}. Trigger the DAG "
            f"with another path, e.g. airflow dags trigger {DAG_ID} --conf "
            "'{\"source\": \"/data/orders/*.parquet\"}' (or the trigger form's source "
            "field)") from None


with DAG(
    DAG_ID,
    schedule="@daily",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    params={
        "source": Param(DEFAULT_SOURCE, type="string", minLength=1,
                        description="path, glob or directory of the files to load (Jinja "
                                    "such as {{ run_after | ds }} is rendered)"),
        "shards": Param(DEFAULT_SHARDS, type="integer", minimum=1,
                        description="how many mapped loads to split the files into"),
    },
    # a retry resumes its shard's load (its committed batches are skipped)
    default_args={"retries": 3, "retry_delay": datetime.timedelta(seconds=30)},
    tags=["example", "azure-sql"],
):
    @task
    def shards(**context: Any) -> list[Any]:
        """The run's files dealt into ``shards`` shards of similar size."""
        params = context["params"]
        source = context["task"].render_template(str(params["source"]), context)
        return split_or_fail(source, int(params["shards"]))

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
