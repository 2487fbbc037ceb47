"""``AzureSqlBulkLoadOperator``: one ``engine.transfer`` per task instance, resumed by retries.

The default load id is derived from the task instance (dag_id, task_id, run_id,
map_index) and the target, never from the try number, so when Airflow retries a failed
attempt the engine finds the batches the failed attempt committed in its journal and
sends only the rest: the table ends exact, not doubled.

>>> from airflow.sdk import DAG  # doctest: +SKIP
>>> with DAG("orders", schedule=None):  # doctest: +SKIP
...     AzureSqlBulkLoadOperator(task_id="load", source="/data/orders/*.parquet",
...                              table="dbo.orders", conn_id="azure_sql", retries=3)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_integration.hooks import AzureSqlBulkHook
from airflow_integration.lineage import input_dataset, operator_lineage, output_dataset
from engine.errors import ConfigurationError
from engine.journal import default_load_id
from engine.options import Target, TransferOptions
from engine.remote import storage_for
from engine.sources import DEFAULT_ROWS_PER_BATCH, open_source
from engine.transfer import TransferCancelled, TransferError, transfer

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["AzureSqlBulkLoadOperator", "task_load_id"]


def task_load_id(dag_id: str, task_id: str, run_id: str, map_index: int, target: Target) -> str:
    """The default load id of a task instance: the same for every try of it.

    The engine's :func:`~engine.journal.default_load_id` over the task instance's
    identity instead of the source's fingerprint (32 hex digits).

    :param dag_id: the DAG.
    :param task_id: the task.
    :param run_id: the DAG run.
    :param map_index: the mapped index (-1 when not mapped).
    :param target: the target table.
    """
    identity = f"airflow\n{dag_id}\n{task_id}\n{run_id}\n{map_index}"
    return default_load_id(identity, target.describe())


class AzureSqlBulkLoadOperator(BaseOperator):
    """Load files into an Azure SQL table with ``engine.transfer``; return the result dict.

    All arguments are keyword-only.

    :param source: a path, glob or directory of Parquet, CSV or Arrow IPC files, or a list
        of them (templated: an XCom reference works, e.g. a shard from
        :func:`airflow_integration.shards.split_source`).
    :param table: ``schema.table`` (templated).
    :param conn_id: the ``azure_sql_bulk`` connection.
    :param mode: ``append`` (journaled inserts), ``replace`` (stage, then swap in one
        transaction) or ``upsert`` (stage, then ``MERGE`` on ``keys``).
    :param keys: key columns for ``upsert`` (templated).
    :param workers: parallel connections of this task.
    :param rows_per_batch: rows per transaction; keep it unchanged across retries (batch
        ids depend on it).
    :param create: ``if_missing``, ``never`` or (with ``replace``) ``replace_schema``.
    :param load_id: the journal id (templated; default: from the task instance, see
        :func:`task_load_id`).
    :param max_retries: replays of one batch after transient errors before the attempt
        fails (an Airflow retry then resumes it).
    :param sql_types: per-column SQL type overrides, e.g. ``{"price": "decimal(18,2)"}``.
    :param columns: the source columns to load, in order (default: all).
    :param rename: source column name -> target column name.
    :param nan_as_null: write NaN and infinities as NULL instead of failing.
    """

    template_fields: Sequence[str] = ("source", "table", "keys", "load_id")
    ui_color = "#cfe3f7"

    def __init__(self, *, source: str | Sequence[str], table: str,
                 conn_id: str = AzureSqlBulkHook.default_conn_name, mode: str = "append",
                 keys: Sequence[str] | None = None, workers: int = 4,
                 rows_per_batch: int = DEFAULT_ROWS_PER_BATCH, create: str = "if_missing",
                 load_id: str | None = None, max_retries: int = 5,
                 sql_types: Mapping[str, str] | None = None, nan_as_null: bool = False,
                 columns: Sequence[str] | None = None,
                 rename: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.table = table
        self.conn_id = conn_id
        self.mode = mode
        self.keys = keys
        self.workers = workers
        self.rows_per_batch = rows_per_batch
        self.create = create
        self.load_id = load_id
        self.max_retries = max_retries
        self.sql_types = dict(sql_types or {})
        self.columns = list(columns) if columns is not None else None
        self.rename = dict(rename or {})
        self.nan_as_null = nan_as_null
        self._cancel = threading.Event()
        self._lineage: tuple[list[tuple[str, str]], tuple[str, str]] | None = None

    # -- engine options -------------------------------------------------------------------
    def transfer_options(self, load_id: str) -> TransferOptions:
        """The engine options for this task.

        :param load_id: the load's journal id.
        :raises ConfigurationError: an invalid option (e.g. ``upsert`` without keys).
        """
        return TransferOptions(
            workers=self.workers, rows_per_batch=self.rows_per_batch, mode=self.mode,
            keys=tuple(self.keys or ()), create=self.create, load_id=load_id, resume=True,
            max_retries=self.max_retries, sql_types=self.sql_types,
            nan_as_null=self.nan_as_null,
            columns=tuple(self.columns) if self.columns is not None else None,
            rename=self.rename)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the load; the returned dict (``TransferResult.to_dict()``) goes to XCom."""
        hook = AzureSqlBulkHook(self.conn_id)
        try:
            target = hook.target(self.table)
            ti = context["ti"]
            map_index = ti.map_index if ti.map_index is not None else -1
            load_id = self.load_id or task_load_id(ti.dag_id, ti.task_id, ti.run_id,
                                                   map_index, target)
            options = self.transfer_options(load_id)
            source = open_source(self.source, columns=options.columns, rename=options.rename,
                                 rows_per_batch=options.rows_per_batch,
                                 storage=storage_for(target.connection.credential))
        except ConfigurationError as exc:  # a retry cannot fix a bad setting
            raise AirflowFailException(str(exc)) from None
        c = target.connection
        self._lineage = ([input_dataset(f) for f in source.files],
                         output_dataset(c.server, c.port, c.database, target.qualified))
        self.log.info("loading %d file(s) into %s with load_id %s (try %s)", len(source.files),
                      target.describe(), load_id, getattr(context["ti"], "try_number", "?"))
        try:
            result = transfer(source, target, options, cancel=self._cancel)
        except ConfigurationError as exc:  # e.g. the table's columns do not fit the source
            raise AirflowFailException(str(exc)) from None
        except TransferCancelled:
            self.log.warning("load %s cancelled at a batch boundary; committed batches stay "
                             "journaled and a rerun of this task instance resumes it", load_id)
            raise
        except TransferError as exc:
            kept = (f"{exc.rows_committed} row(s) in {exc.batches_committed} batch(es) "
                    "committed by this try stay journaled; the next try of this task "
                    "instance resumes the load") if exc.resumable else (
                    "this try kept nothing; the next try starts the load afresh")
            self.log.error("load %s stopped: %s", load_id, kept)
            raise
        out: dict[str, Any] = result.to_dict()
        return out

    def on_kill(self) -> None:
        """Stop the workers at their next batch boundary (committed batches stay journaled)."""
        self._cancel.set()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs (the files) and output (the table) for the openlineage provider, if any."""
        if self._lineage is None:
            return None
        inputs, output = self._lineage
        return operator_lineage(inputs, output)
