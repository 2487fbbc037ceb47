"""Which transport writes a load's batches, and why (``TransferOptions.transport``).

- ``parameter-arrays``: always :class:`~engine.transport.ParameterArrayTransport`.
- ``bulk-copy``: :class:`~engine.bulk_copy.BulkCopyTransport` when :func:`bulk_copy_verdict`
  finds nothing against it on this server; otherwise parameter arrays, with a warning
  saying why (a load never stops because bulk copy is unavailable).
- ``auto`` (the default): bulk copy when the verdict is clear *and* the load's batches hold
  at least :data:`~engine.options.AUTO_BULK_MIN_ROWS` rows; each bulk batch pays for three
  round trips more than parameter arrays (``sp_describe_first_result_set``, ``insert
  bulk`` and the ``@@TRANCOUNT`` check) that small batches do not earn back. The reason
  for parameter arrays is logged at INFO.

The verdict is the same one ``azsql-bulk doctor`` prints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.binder import Binder
from engine.bulk_copy import BulkCopyTransport, native_writer, probe_transactional
from engine.connection import ConnectionFactory, close_quietly, rollback_quietly
from engine.driver import find_driver
from engine.errors import AzsqlBulkError, ConfigurationError, database_error
from engine.journal import JOURNAL_SCHEMA
from engine.names import TableName, quote_identifier
from engine.options import AUTO_BULK_MIN_ROWS, BULK_ONLY_OPTIONS, TransferOptions, TransportKind
from engine.plan import TablePlan
from engine.transport import ParameterArrayTransport, Transport

__all__ = ["Choice", "bulk_copy_verdict", "bulk_hints", "choose_transport"]

log = logging.getLogger(__name__)


def bulk_hints(options: TransferOptions, plan: TablePlan) -> str:
    """The ``bcp_control(BCPHINTS)`` text for the load's bulk-only options.

    :raises ConfigurationError: an ``order`` column that is not a column of the load.

    >>> from engine.plan import plan_table
    >>> import pyarrow as pa
    >>> plan = plan_table(pa.schema([("id", pa.int64()), ("at", pa.date32())]))
    >>> bulk_hints(TransferOptions(table_lock=True, order=("id",)), plan)
    'TABLOCK, ORDER([id] ASC)'
    """
    parts = [hint for hint, on in (("TABLOCK", options.table_lock),
                                   ("CHECK_CONSTRAINTS", options.check_constraints),
                                   ("FIRE_TRIGGERS", options.fire_triggers)) if on]
    if options.order:
        names = {n.casefold(): n for n in plan.names}
        missing = [c for c in options.order if c.casefold() not in names]
        if missing:
            raise ConfigurationError(
                f"order columns {missing} are not columns of the load (columns: "
                f"{', '.join(plan.names)}); name the target's clustered key columns")
        keys = ", ".join(f"{quote_identifier(names[c.casefold()])} ASC" for c in options.order)
        parts.append(f"ORDER({keys})")
    return ", ".join(parts)


def bulk_copy_verdict(conn: Any, factory: ConnectionFactory, *,
                      schema: str = JOURNAL_SCHEMA) -> str | None:
    """Why bulk copy cannot carry a load on ``conn``'s server, or None when it can.

    Checks, in order: the compiled writer, the connections' bulk-copy setting, turbodbc's
    exposed handle, and the rollback probe (:func:`engine.bulk_copy.probe_transactional`).

    :param conn: an open connection of ``factory`` (autocommit off).
    :param schema: where the probe may create (and drops) its scratch table.
    :raises DatabaseError: a transient failure during the probe (the caller retries the
        load as it would any batch).
    """
    try:
        native_writer()
    except ConfigurationError as exc:
        return str(exc)
    if not factory.options.bulk_copy:
        return "the connections were opened with bulk copy off (ConnectionOptions.bulk_copy)"
    if getattr(conn, "odbc_handle", None) is None:
        return ("turbodbc does not expose its connection handle (built without "
                "scripts/turbodbc-handle.patch; run make setup)")
    driver = str(find_driver(factory.options.driver_path).path)
    try:
        return probe_transactional(conn, schema, driver)
    except AzsqlBulkError:
        raise
    except Exception as exc:  # the ODBC client's error: e.g. no CREATE TABLE permission
        rollback_quietly(conn)  # the connection goes on to load batches
        error = database_error(exc, phase="bulk-copy probe",
                               where=f"a scratch table in schema {schema}")
    if error.transient:
        raise error
    return f"the probe could not run: {error}"


@dataclass(frozen=True)
class Choice:
    """The transport chosen for a load, and why bulk copy was not (``reason``)."""

    transport: Transport
    reason: str | None


def choose_transport(plan: TablePlan, table: TableName, options: TransferOptions,
                     factory: ConnectionFactory, conn: Any, *, rows_per_batch: int,
                     attempts: int = 3) -> Choice:
    """The transport for a load into ``table`` (the target, or its staging table).

    :param conn: the load's first connection (the probe runs on it; left open).
    :param rows_per_batch: the source's batch size (``auto`` compares it with
        :data:`~engine.options.AUTO_BULK_MIN_ROWS`).
    :param attempts: probes tried on fresh connections after transient failures.
    """
    arrays = ParameterArrayTransport(Binder(plan, table, nan_as_null=options.nan_as_null))
    kind = options.transport
    if kind == TransportKind.PARAMETER_ARRAYS:
        return Choice(arrays, "transport='parameter-arrays' was asked for")
    hints = bulk_hints(options, plan)  # checked even when arrays are used in the end
    why: str | None = None
    if kind == TransportKind.AUTO and rows_per_batch < AUTO_BULK_MIN_ROWS:
        why = (f"batches of {rows_per_batch:,} rows are below the {AUTO_BULK_MIN_ROWS:,} at "
               "which bulk copy pays for its set-up")
    else:
        why = _verdict_with_retries(conn, factory, attempts)
    if why is None:
        return Choice(BulkCopyTransport(plan, table, str(find_driver(
            factory.options.driver_path).path), nan_as_null=options.nan_as_null, hints=hints),
            None)
    dropped = [n for n in BULK_ONLY_OPTIONS if getattr(options, n)]
    if kind == TransportKind.BULK_COPY or dropped:
        log.warning("bulk copy is not used for %s: %s; loading with parameter arrays%s",
                    table, why, f" ({', '.join(dropped)} do not apply)" if dropped else "")
    else:
        log.info("loading %s with parameter arrays: %s", table, why)
    return Choice(arrays, why)


def _verdict_with_retries(conn: Any, factory: ConnectionFactory, attempts: int) -> str | None:
    own = None
    try:
        for attempt in range(1, attempts + 1):
            try:
                return bulk_copy_verdict(own or conn, factory)
            except AzsqlBulkError as exc:
                if attempt == attempts:
                    return f"the probe failed {attempts} times, last: {exc}"
                log.info("bulk-copy probe failed (%s); trying again on a new connection", exc)
                if own is not None:
                    close_quietly(own)
                own = factory.connect()
        return None  # pragma: no cover - the loop returns
    finally:
        if own is not None:
            close_quietly(own)
