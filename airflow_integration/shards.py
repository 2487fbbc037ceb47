"""Split a file source into shards for ``AzureSqlBulkLoadOperator.partial(...).expand(...)``.

A shard is a plain JSON dict (see :mod:`engine.shards` for its format): Parquet row-group
ranges and whole CSV / Arrow IPC files, dealt by compressed bytes so that shards carry
similar work and one huge Parquet file spreads over many shards. Together the shards hold
every row of the source exactly once; each mapped task loads its shard (the operator
passes it to ``engine.transfer`` as the source) under its own load id, so retries of one
shard resume that shard only. The listing and the Parquet footers are read once, in the
task that splits; a file rewritten (or only touched) after that is refused by the loading
task. A file named twice by the source (a path and a glob that matches it) is split once,
and directories, globs and storage prefixes skip ``_x`` / ``.x`` names (Spark's
``_SUCCESS``, ``_temporary/``, ``.crc`` files), as a load does.

>>> from airflow.sdk import DAG, task  # doctest: +SKIP
>>> with DAG("orders", schedule=None):  # doctest: +SKIP
...     @task
...     def shards(path: str) -> list[dict]:
...         return split_source(path, 8)
...     AzureSqlBulkLoadOperator.partial(task_id="load", table="dbo.orders",
...         create="never").expand(source=shards("/data/orders/*.parquet"))
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from engine.errors import ConfigurationError
from engine.remote import StorageOptions, storage_for
from engine.shards import describe_shard
from engine.shards import split_source as split_into_shards

__all__ = ["SplitSourceError", "describe_shard", "split_source"]


class SplitSourceError(AirflowFailException, ConfigurationError):
    """The source cannot be split as given (no files match, a bad shard count): retrying
    cannot help, so the task fails at once instead of burning its retries. It is also an
    :class:`engine.errors.ConfigurationError`."""


def split_source(source: Any, shards: int, *, format: str | None = None,
                 storage: StorageOptions | None = None,
                 conn_id: str | None = None) -> list[dict[str, Any]]:
    """Expand a path, directory, glob or ``abfss://`` URI (or a list) and split it into shards.

    :param source: what ``engine.transfer`` would load (files only, not in-memory data).
    :param shards: how many shards at most: fewer come back when the source has fewer
        Parquet row groups and whole files than that; none is empty.
    :param format: ``parquet``, ``csv`` or ``ipc`` when file suffixes do not tell.
    :param storage: identity and endpoint for ``abfss://`` URIs (default: the identity of
        ``conn_id`` when given, as the load tasks read storage; else from the environment,
        see :class:`engine.remote.StorageOptions`).
    :param conn_id: an ``azure_sql_bulk`` connection whose identity lists the objects.
    :raises SplitSourceError: no files match, ``shards`` below 1, in-memory data (not
        retried by Airflow).
    :raises SourceError: a file or storage that cannot be read (retried).

    >>> split_source("/data/orders/*.parquet", 4)  # doctest: +SKIP
    [{'azsql_bulk_shard': 1, 'index': 0, 'shards': 4, 'bytes': ..., 'parts': [...]}, ...]
    """
    try:
        if storage is None and conn_id is not None:
            from airflow_integration.hooks import AzureSqlBulkHook

            hook = AzureSqlBulkHook(conn_id)
            try:
                storage = storage_for(hook.connection_options().credential)
            finally:
                hook.close()
        return split_into_shards(source, shards, format=format, storage=storage)
    except ConfigurationError as exc:
        raise SplitSourceError(str(exc)) from None
