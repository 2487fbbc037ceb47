"""Before the first batch: check or create the target, the journal, and the staging table.

One connection does the set-up and is then handed to the first worker (one login fewer).
Nothing here sends a row: an incompatible existing table is refused with every problem
listed (:class:`~engine.errors.SchemaMismatchError`) before any data moves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

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
from engine.options import CreatePolicy, Mode, TransferOptions
from engine.plan import ExistingColumn, TablePlan, create_table_sql, validate_against
from engine.staging import FINISH_BATCH_ID
from engine.type_map import SqlType
from engine.widening import widenable

__all__ = ["Prepared", "prepare", "read_columns"]

log = logging.getLogger(__name__)

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
            stage: TableName | None, options: TransferOptions, journal: Journal) -> Prepared:
    """Check or create the target (and the stage), ensure the journal, read its keys.

    :param factory: opens the set-up connection.
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
    retry = RetryPolicy(attempts=options.max_retries + 1, base_delay=options.retry_base_delay,
                        max_delay=options.retry_max_delay)
    created = [False]  # an attempt that created the target, then failed, still created it
    for attempt in range(1, retry.attempts + 1):
        try:
            return _prepare_once(factory, plan, target, stage, options, journal, created)
        except DatabaseError as error:  # a login that kept failing was retried by connect()
            if isinstance(error, ConnectError) or not error.transient \
                    or attempt >= retry.attempts:
                raise
            delay = retry.backoff(attempt)
            log.warning("setting up the load of %s failed transiently (attempt %d), retrying "
                        "in %.1f s on a new connection: %s", target, attempt, delay, error)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _prepare_once(factory: ConnectionFactory, plan: TablePlan, target: TableName,
                  stage: TableName | None, options: TransferOptions, journal: Journal,
                  created: list[bool]) -> Prepared:
    conn: Any = factory.connect()
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
