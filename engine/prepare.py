"""Before the first batch: the batch size, then check or create the target, the journal,
and the staging table.

One connection does the set-up and is then handed to the first worker (one login fewer):
it reads the target's indexes and the journal's batch size (:func:`size_batches`, before
the source is read, since batch ids depend on the size), then checks the table
(:func:`prepare`, once the plan is known).
Nothing here sends a row: an incompatible existing table is refused with every problem
listed (:class:`~engine.errors.SchemaMismatchError`) before any data moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.batch_size import BatchSize, decide, inspect_target
from engine.connection import ConnectionFactory, RetryPolicy, close_quietly, rollback_quietly
from engine.errors import (
    AzsqlBulkError,
    ConfigurationError,
    ConnectError,
    DatabaseError,
    SqlServerError,
    database_error,
)
from engine.journal import Journal, batch_key
from engine.names import TableName
from engine.options import CreatePolicy, Mode, TransferOptions, TransportKind
from engine.plan import ExistingColumn, TablePlan, create_table_sql, validate_against
from engine.staging import FINISH_BATCH_ID
from engine.type_map import SqlType
from engine.widening import widenable

__all__ = ["Prepared", "prepare", "read_columns", "size_batches"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_COLUMNS_SQL = ("SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
                "NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE, COLUMN_DEFAULT "
                "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "
                "ORDER BY ORDINAL_POSITION")


@dataclass
class Prepared:
    """What the set-up found and did.

    :param created: this run created the target.
    :param done: journal keys of the batches already committed.
    :param existing: the existing target's columns (empty when it did not exist).
    :param widths: growable columns of a table this load created (see
        :func:`engine.widening.widenable`).
    :param connection: the set-up connection, for the first worker (None when finished).
    :param finished: a staged load whose apply already committed in an earlier run.
    """

    created: bool
    done: set[str]
    existing: list[ExistingColumn]
    widths: dict[str, tuple[SqlType, bool]] = field(default_factory=dict)
    connection: Any = None
    finished: bool = False


def read_columns(cursor: Any, table: TableName) -> list[ExistingColumn]:
    """A table's columns from ``INFORMATION_SCHEMA.COLUMNS`` (empty: no such table)."""
    cursor.execute(_COLUMNS_SQL, [table.schema, table.name])
    return [ExistingColumn.from_row(r) for r in cursor.fetchall()]


def prepare(factory: ConnectionFactory, plan: TablePlan, target: TableName,
            stage: TableName | None, options: TransferOptions, journal: Journal, *,
            connection: Any = None) -> Prepared:
    """Check or create the target (and the stage), ensure the journal, read its keys.

    :param factory: opens the set-up connection.
    :param connection: an open connection to use first (:func:`size_batches`' one);
        prepare owns it from here.
    :param plan: the load's plan.
    :param target: the target table.
    :param stage: the staging table of a staged mode, else None.
    :param options: the load's options (mode, create policy).
    :param journal: the load's journal.
    :raises SchemaMismatchError: the existing target cannot take the source's columns.
    :raises ConfigurationError: a missing table with ``create="never"``.
    :raises DatabaseError: a statement failed (transient failures are retried on a new
        connection, ``options.max_retries`` times, as a batch is: every step is idempotent).
    """
    # the journal's facts for `azsql-bulk journal list`, and the sessions' audit trail:
    # every connection of the load names it (application name, SESSION_CONTEXT)
    journal.table, journal.mode = str(target), str(options.mode)
    factory.name_load(journal.load_id)
    created = [False]  # an attempt that created the target, then failed, still created it
    handed = [connection]  # the first attempt takes it; later ones connect anew

    def attempt() -> Prepared:
        conn, handed[0] = handed[0], None
        return _prepare_once(factory, conn if conn is not None else factory.connect(), plan,
                             target, stage, options, journal, created)
    return _retrying(attempt, options, f"setting up the load of {target}")


def size_batches(factory: ConnectionFactory, writes_to: TableName, options: TransferOptions,
                 journal: Journal, requested: int) -> tuple[BatchSize, Any]:
    """The load's rows per batch (:func:`engine.batch_size.decide`), from what the database
    says about ``writes_to`` and this load's journal rows.

    :param factory: opens the connection.
    :param writes_to: the table the batches are written to (the stage of a staged mode).
    :param options: the load's options (retries).
    :param journal: the load's journal (ensured here, so it can record the size).
    :param requested: ``SourceOptions.rows_per_batch``.
    :returns: the decision and the open connection, for :func:`prepare` (the caller closes
        it if it never gets there).
    :raises DatabaseError: the catalog or the journal could not be read.
    """
    factory.name_load(journal.load_id)

    def attempt() -> tuple[BatchSize, Any]:
        conn = factory.connect()
        try:
            facts = inspect_target(conn, writes_to, journal)
        except AzsqlBulkError:
            close_quietly(conn)
            raise
        except Exception as exc:  # the ODBC client's error
            close_quietly(conn)
            raise database_error(exc, phase="read the table's indexes and the load journal",
                                 where=f"table {writes_to}") from exc
        return decide(requested, table=str(writes_to), columnstore=facts.columnstore,
                      journaled=facts.journaled, started=facts.started,
                      records=facts.records,
                      row_by_row=options.transport == TransportKind.PARAMETER_ARRAYS), conn
    return _retrying(attempt, options, f"reading the indexes of {writes_to}")


def _retrying(attempt: Callable[[], _T], options: TransferOptions, what: str) -> _T:
    """Run a set-up step, again on a new connection after a transient failure (every
    step is idempotent), ``options.max_retries`` times."""
    retry = RetryPolicy(attempts=options.max_retries + 1, base_delay=options.retry_base_delay,
                        max_delay=options.retry_max_delay)
    for number in range(1, retry.attempts + 1):
        try:
            return attempt()
        except DatabaseError as error:  # a login that kept failing was retried by connect()
            if isinstance(error, ConnectError) or not error.transient \
                    or number >= retry.attempts:
                raise
            delay = retry.backoff(number)
            log.warning("%s failed transiently (attempt %d), retrying in %.1f s on a new "
                        "connection: %s", what, number, delay, error)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _prepare_once(factory: ConnectionFactory, conn: Any, plan: TablePlan, target: TableName,
                  stage: TableName | None, options: TransferOptions, journal: Journal,
                  created: list[bool]) -> Prepared:
    phase = "check the target table"
    try:
        cursor = conn.cursor()
        existing = read_columns(cursor, target)
        prepared = Prepared(False, set(), existing)
        if created[0]:  # an earlier attempt created it from the plan: carry on as it did
            validate_against(plan, existing, table=str(target),
                             sampled=not options.max_errors)
            prepared.created, prepared.existing = True, []
            if stage is None:
                prepared.widths = widenable(plan, None)
        elif existing and options.create != CreatePolicy.REPLACE_SCHEMA:
            validate_against(plan, existing, table=str(target),
                             sampled=not options.max_errors)
        elif not existing and options.create == CreatePolicy.NEVER:
            raise ConfigurationError(
                f"table {target} does not exist and create='never'; create it "
                "first or use create='if_missing'")
        elif not existing and options.mode != Mode.REPLACE:
            # append and upsert need the target now; replace renames its stage in
            phase = "create the target table"
            prepared.created = created[0] = _create_target(conn, plan, target, prepared)
            if prepared.created and stage is None:
                prepared.widths = widenable(plan, None)
        phase = "prepare the load journal"
        journal.ensure(conn)
        phase = "read the load journal"
        prepared.done = journal.keys(conn.cursor())
        conn.commit()
        if stage is not None:
            prepared.finished = batch_key(FINISH_BATCH_ID) in prepared.done
            if not prepared.finished:
                phase = "create the staging table"
                _ensure_stage(conn, plan, stage, options, journal, prepared)
        prepared.connection, conn = conn, None
        return prepared
    except AzsqlBulkError:
        raise
    except Exception as exc:  # the ODBC client's error
        raise database_error(exc, phase=phase, where=f"table {target}") from exc
    finally:
        if conn is not None:
            close_quietly(conn)


def _create_target(conn: Any, plan: TablePlan, target: TableName, prepared: Prepared) -> bool:
    """CREATE TABLE; a loader that loses the race to a parallel one (2714) validates
    the table the other one created instead. True when this run created it."""
    try:
        conn.cursor().execute(create_table_sql(plan, target))
        conn.commit()
        log.info("created table %s", target)
        return True
    except Exception as exc:  # the ODBC client's error
        error = database_error(exc, phase="create the target table", where=f"table {target}")
    rollback_quietly(conn)
    if error.native_error != SqlServerError.ALREADY_EXISTS:
        raise error
    log.info("table %s was created by a parallel load; validating it", target)
    prepared.existing = read_columns(conn.cursor(), target)
    validate_against(plan, prepared.existing, table=str(target))
    return False


def _ensure_stage(conn: Any, plan: TablePlan, stage: TableName, options: TransferOptions,
                  journal: Journal, prepared: Prepared) -> None:
    cursor = conn.cursor()
    stage_columns = read_columns(cursor, stage)
    # into an existing target: its column types, not the sampled ones (a later
    # batch may hold longer text than the first; the target takes it)
    like = prepared.existing if options.create != CreatePolicy.REPLACE_SCHEMA else None
    if stage_columns:
        validate_against(plan, stage_columns, table=str(stage), sampled=not options.max_errors)
        log.info("resuming into staging table %s", stage)
        if not like:  # the stage becomes the target: it may grow (from where it is)
            prepared.widths = widenable(plan, stage_columns)
    else:
        if prepared.done:
            raise ConfigurationError(
                f"load_id {journal.load_id} has batches journaled for staging table "
                f"{stage}, which no longer exists, so they cannot be applied; forget the "
                f"load (azsql-bulk journal forget {journal.load_id}) and load again")
        cursor.execute(create_table_sql(plan, stage, like=like))
        log.info("created staging table %s", stage)
        if not like:
            prepared.widths = widenable(plan, None)
    conn.commit()
