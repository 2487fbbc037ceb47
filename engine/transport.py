"""Transports: how a worker writes one bound batch on its connection, inside the batch's
transaction.

A transport binds a batch once (:meth:`Transport.bind`, outside the transaction, so a
value error names its source row before anything is sent) and writes it
(:meth:`Transport.write`) on the connection the worker holds; the worker then records
the journal row and commits both together. A replay after a transient error writes the
same bound batch again on a new connection.

* :class:`ParameterArrayTransport`: turbodbc's ``executemanycolumns`` of one
  parameterised INSERT (one RPC per row on the wire).
* :class:`~engine.bulk_copy.BulkCopyTransport`: TDS bulk load through the driver's
  ``bcp_*`` API on the same connection (nothing back per row, native types).
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from engine.binder import Binder, BoundBatch

__all__ = ["ParameterArrayTransport", "Transport"]


class Transport(Protocol):
    """What the pipeline needs of a transport."""

    #: the name reported in :class:`~engine.results.TransferResult` and the CLI
    name: str

    def bind(self, batch: pa.Table | pa.RecordBatch, *, row_offset: int) -> BoundBatch:
        """Cast one source batch for this transport (raises a value error naming the row)."""
        ...

    def write(self, conn: Any, cursor: Any, bound: BoundBatch) -> None:
        """Send the bound rows in the caller's open transaction (no commit).

        :param conn: the worker's :class:`~engine.odbc_connection.Connection`.
        :param cursor: its cursor (the journal row goes through it next).
        :param bound: from :meth:`bind`.
        """
        ...


class ParameterArrayTransport:
    """INSERT parameter arrays through turbodbc ``executemanycolumns``.

    :param binder: the load's :class:`~engine.binder.Binder`.
    """

    name = "parameter-arrays"

    def __init__(self, binder: Binder) -> None:
        self.binder = binder

    def bind(self, batch: pa.Table | pa.RecordBatch, *, row_offset: int) -> BoundBatch:
        return self.binder.bind(batch, row_offset=row_offset)

    def write(self, conn: Any, cursor: Any, bound: BoundBatch) -> None:
        cursor.executemanycolumns(bound.sql, bound.data)
