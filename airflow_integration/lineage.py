"""OpenLineage datasets of a load: the input files and the output table.

Names follow OpenLineage's naming conventions and match Airflow's mssql hook for the
output (namespace ``mssql://host:port``, name ``database.schema.table``), so lineage
from both joins up. The openlineage provider is imported only when facets are built;
without it :func:`operator_lineage` returns None and the load works the same.

>>> output_dataset("srv.database.windows.net", 1433, "sales", "dbo.orders")
('mssql://srv.database.windows.net:1433', 'sales.dbo.orders')
>>> input_dataset("/data/orders/part-0.parquet")
('file', '/data/orders/part-0.parquet')
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["input_dataset", "operator_lineage", "output_dataset", "source_datasets"]
_GLOB = re.compile(r"[*?\[]")


def output_dataset(server: str, port: int, database: str, table: str) -> tuple[str, str]:
    """(namespace, name) of the target table, as Airflow's mssql hook names it.

    :param server: the server host.
    :param port: its port.
    :param database: the database.
    :param table: ``schema.table``.
    """
    return f"mssql://{server}:{port}", f"{database}.{table}"


def input_dataset(path: str) -> tuple[str, str]:
    """(namespace, name) of a source file: ``file`` and its absolute path, or for a URI
    ``scheme://authority`` and its path.

    :param path: a local path or a URI (``abfss://container@account.dfs.core.windows.net/x``).
    """
    if "://" in path:
        parts = urlsplit(path)
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    return "file", os.path.abspath(path)


def source_datasets(source: object) -> list[tuple[str, str]]:
    """The input datasets of an operator's ``source`` argument, without reading it.

    A file is itself; a directory is the dataset of its files; a glob is named by the
    directory its pattern starts in. In-memory sources (Arrow tables, readers) have none.

    A shard (a dict from ``split_source``) is the files its parts read: a range of a
    file's row groups is that file's dataset.

    :param source: a path, glob or URI, a shard, or a list of them.

    >>> source_datasets(["/data/a.parquet", "/data/orders/*/part-*.parquet"])
    [('file', '/data/a.parquet'), ('file', '/data/orders')]
    >>> source_datasets({"azsql_bulk_shard": 1, "parts": [
    ...     {"path": "/data/big.parquet", "row_groups": [0, 4]},
    ...     {"path": "abfss://raw@acct.dfs.core.windows.net/o/a.csv"}]})
    [('file', '/data/big.parquet'), ('abfss://raw@acct.dfs.core.windows.net', '/o/a.csv')]
    """
    items = [source] if isinstance(source, str | os.PathLike | Mapping) else source
    if not isinstance(items, Sequence):
        return []
    paths: list[Any] = []
    for item in items:
        if isinstance(item, Mapping):  # a shard: the files of its parts
            paths.extend(part.get("path") for part in item.get("parts") or ()
                         if isinstance(part, Mapping))
        else:
            paths.append(item)
    if not all(isinstance(p, str | os.PathLike) for p in paths):
        return []
    out: list[tuple[str, str]] = []
    for path in map(os.fspath, paths):
        match = _GLOB.search(path)
        if match is not None:
            path = path[:match.start()].rsplit("/", 1)[0] or "/"
        dataset = input_dataset(path)
        if dataset not in out:
            out.append(dataset)
    return out


def operator_lineage(inputs: Sequence[tuple[str, str]], output: tuple[str, str]) -> Any:
    """An ``OperatorLineage`` for the openlineage provider, or None when it is not installed.

    :param inputs: (namespace, name) of each input.
    :param output: (namespace, name) of the table.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:  # the provider (or its client library) is optional
        return None
    return OperatorLineage(inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
                           outputs=[Dataset(namespace=output[0], name=output[1])])
