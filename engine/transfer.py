"""The transfer: stream a source into a table over parallel connections, exactly once.

:func:`transfer` reads like the load it runs:

1. **source** (:mod:`engine.sources`): open the files or frames as batches with
   deterministic ids;
2. **plan** (:mod:`engine.plan`): SQL types for the source's columns, sized from the
   first batch;
3. **prepare** (:mod:`engine.prepare`): the batch size (:mod:`engine.batch_size`: the
   caller's, else 50,000, or 102,400 into a clustered columnstore; a rerun keeps the size
   its journal rows record), decided before the source is read; check or create the
   target (and the staging table of ``replace``/``upsert``), the journal, the batches
   already committed;
4. **bind and transport** (:mod:`engine.binder`, :mod:`engine.transport`): one write
   strategy per column, chosen once;
5. **pipeline** (:mod:`engine.pipeline`, :mod:`engine.batch_writer`): a reader, a
   bounded queue, N workers with one connection each; every batch and its journal row
   commit together, transient errors replay the batch, tokens are renewed between
   batches;
6. **apply** (:mod:`engine.staging`): a staged mode swaps or merges its staging table
   into the target in one transaction;
7. **result** (:mod:`engine.results`).

Setting the ``cancel`` event stops the workers at a batch boundary; the load resumes
later like a failed one.

>>> from engine.connection import ConnectionOptions
>>> from engine.credentials import CredentialOptions
>>> target = Target(ConnectionOptions("myserver.database.windows.net", "sales",  # doctest: +SKIP
...                 credential=CredentialOptions(kind="managed-identity")), "dbo.orders")
>>> result = transfer("orders/*.parquet", target, TransferOptions(workers=4))  # doctest: +SKIP
>>> result.to_dict()["rows"]  # doctest: +SKIP
1000000
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.batch_size import BatchSize
from engine.batch_writer import BatchWriter
from engine.connection import ConnectionFactory, RetryPolicy, close_quietly
from engine.errors import ConfigurationError, LoadAlreadyJournaled
from engine.journal import Journal, default_load_id
from engine.names import TableName
from engine.options import CreatePolicy, Mode, Target, TransferOptions, TransportKind
from engine.pipeline import Pipeline
from engine.plan import TablePlan, plan_table
from engine.prepare import prepare, size_batches
from engine.rejects import Budget, Splitter, finish_rejects, start_rejects
from engine.remote import storage_for
from engine.results import Tally, TransferResult
from engine.sources import Source, SourceOptions, open_source
from engine.staging import StagedApply
from engine.transport_choice import bulk_hints, choose_transport
from engine.widening import Widening

__all__ = ["transfer"]

log = logging.getLogger(__name__)


def transfer(source: Any, target: Target, options: TransferOptions | None = None, *,
             source_options: SourceOptions | None = None,
             factory: ConnectionFactory | None = None,
             cancel: threading.Event | None = None,
             on_batch_size: Callable[[BatchSize], Any] | None = None) -> TransferResult:
    """Load ``source`` into ``target`` exactly once.

    :param source: anything :func:`~engine.sources.open_source` opens (pyarrow Table or
        RecordBatchReader, polars frames, paths and globs, local or ``abfss://``), or a
        :class:`~engine.sources.Source` it opened.
    :param target: the database and ``schema.table``.
    :param options: how to load (default :class:`TransferOptions`).
    :param source_options: how to read ``source`` (columns, renames, rows per batch);
        not with an opened Source, which has its own.
    :param factory: a connection factory to share (default: one built from
        ``target.connection``, closed afterwards).
    :param cancel: when set (from any thread), workers stop at the next batch boundary
        and :class:`~engine.errors.TransferCancelled` is raised; committed batches stay.
    :param on_batch_size: told the load's rows per batch and why, once decided (before
        the first batch is read): the caller's ``rows_per_batch``, else 50,000, or
        102,400 into a table with a clustered columnstore index (see
        :mod:`engine.batch_size`).
    :raises ConfigurationError: a bad option, an incompatible existing table
        (:class:`~engine.errors.SchemaMismatchError`, before any row is sent), a
        missing table with ``create="never"``.
    :raises TransferError: a batch failed terminally (or kept failing transiently), or
        the source could not be read.
    :raises TransferCancelled: ``cancel`` was set.
    :raises DatabaseError: the set-up (table check, DDL, journal) failed.

    >>> import pyarrow as pa  # doctest: +SKIP
    >>> transfer(pa.table({"id": [1, 2]}), target).rows  # doctest: +SKIP
    2
    """
    options = options or TransferOptions()
    if isinstance(source, Source):
        if source_options is not None:
            raise ConfigurationError(
                "source_options are applied when the source is opened: pass them to "
                "open_source() for an opened Source, or pass the table/path to transfer()")
        opened = source
    else:  # abfss:// sources are read with the identity that logs in to the database
        opened = open_source(source, source_options,
                             storage=storage_for(target.connection.credential))
    own = factory is None
    if (factory is not None and options.transport == TransportKind.BULK_COPY
            and not factory.options.bulk_copy):
        raise ConfigurationError("transport='bulk-copy' needs connections opened with "
                                 "ConnectionOptions(bulk_copy=True); the factory passed in "
                                 "has it off")
    # bulk copy must be switched on before login; it changes nothing for other statements
    bulk = options.transport != TransportKind.PARAMETER_ARRAYS
    shared = factory if factory is not None else ConnectionFactory(
        dataclasses.replace(target.connection, bulk_copy=True) if bulk else target.connection)
    stream = None
    try:
        # -- batch size: batch ids depend on it, so it is fixed before the source is read
        load_id = options.load_id or default_load_id(
            opened.fingerprint, target, options=options, source_options=opened.options)
        stage = target.table.staging(load_id) if options.mode != Mode.APPEND else None
        journal = Journal(load_id, str(stage or target.table), table=str(target.table),
                          mode=str(options.mode))
        size, conn = size_batches(shared, stage or target.table, options, journal,
                                  opened.rows_per_batch)
        journal.rows_per_batch = size.rows
        if size.rows != opened.rows_per_batch:
            opened = dataclasses.replace(opened, rows_per_batch=size.rows)
        try:
            if on_batch_size is not None:
                on_batch_size(size)
            stream = opened.batches()
        except BaseException:
            close_quietly(conn)
            raise
        return _run(opened, stream, target, options, shared, cancel, journal, stage, conn, size)
    finally:
        # a load that stopped early leaves the source half read: close its readers now
        # (the reader thread has been joined). Left to the interpreter's exit, a remote
        # Parquet reader's I/O threads calling back into Python can abort the process
        # ("terminate called without an active exception", seen once in a CLI dry run).
        if stream is not None:
            stream.close()
        if own:
            shared.close()


def _run(source: Source, stream: Any, target: Target, options: TransferOptions,
         factory: ConnectionFactory, cancel: threading.Event | None, journal: Journal,
         stage: TableName | None, conn: Any, size: BatchSize) -> TransferResult:
    # -- plan (the set-up connection waits for prepare) ------------------------------
    try:
        first = next(stream, None)
        plan = plan_table(source.schema, overrides=options.sql_types,
                          sample=first.data if first is not None else None)
        _check_keys(plan, options.keys)
        bulk_hints(options, plan)  # a bad --order column fails here, before anything is sent
    except BaseException:
        close_quietly(conn)
        raise
    load_id, table = journal.load_id, target.table
    writes_to = stage or table

    # -- prepare ---------------------------------------------------------------------
    prepared = prepare(factory, plan, table, stage, options, journal, connection=conn)
    tally = Tally(options.workers, source.total_rows, options.progress, load_id=load_id,
                  files=len(source.files), table=str(table), mode=str(options.mode))
    tally.report()  # the load id is known now: the first snapshot tells the caller
    # rejects (max_errors): earlier runs' count against the limit
    earlier = start_rejects(prepared.connection, load_id) if options.max_errors else 0

    def finish_rejected() -> int:  # write the reject file; this run's rejects
        return finish_rejects(factory, load_id, earlier=earlier,
                              reject_file=options.reject_file, columns=plan.names,
                              storage=storage_for(target.connection.credential))

    if prepared.finished:
        close_quietly(prepared.connection)
        log.info("load %s into %s finished in an earlier run; nothing to do", load_id, table)
        if options.max_errors:
            finish_rejected()
        return tally.result(created=prepared.created, skipped=len(prepared.done) - 1,
                            applied=False, transport_reason="nothing was left to load")
    journal.source_rows = source.total_rows  # journal list: complete or partial
    if prepared.done and not options.resume:
        close_quietly(prepared.connection)
        raise LoadAlreadyJournaled(
            f"load_id {load_id} already has {len(prepared.done)} batch(es) journaled for "
            f"{writes_to}; pass resume=True to skip them (the CLI's default), another "
            f"load_id to load the source again, or forget the load first (azsql-bulk "
            f"journal forget {load_id})", load_id=load_id, batches=len(prepared.done))
    log.info("loading %s into %s (mode %s%s): load_id %s, %d worker(s), %s, %d batch(es) "
             "already journaled", source.files or "<memory>", table, options.mode,
             f", staging table {stage}" if stage else "", load_id, options.workers,
             size.describe(), len(prepared.done))

    # -- bind, transport, pipeline ----------------------------------------------------
    choice = choose_transport(plan, writes_to, options, factory, prepared.connection,
                              rows_per_batch=source.rows_per_batch)
    transport = choice.transport
    widening = Widening(writes_to, prepared.widths, plan, prepared.existing)
    retry = RetryPolicy(attempts=options.max_retries + 1, base_delay=options.retry_base_delay,
                        max_delay=options.retry_max_delay)
    pipeline = Pipeline(str(table), load_id, tally, max_memory_bytes=options.max_memory_bytes,
                        cancel=cancel, close=close_quietly)
    writer = BatchWriter(str(table), load_id, factory=factory, journal=journal,
                         transport=transport, widening=widening, tally=tally,
                         stop=pipeline.stop, max_retries=options.max_retries, retry=retry,
                         token_refresh_margin=options.token_refresh_margin,
                         splitter=Splitter(journal, transport, Budget(options.max_errors, earlier),
                                           widening.text_limit) if options.max_errors else None)
    batches = itertools.chain([first] if first is not None else [], stream)
    del first  # the chain hands it on; no longer held for the whole load
    pipeline.run(batches, prepared.done, writer, spare=prepared.connection)

    # -- apply -----------------------------------------------------------------------
    created, applied = prepared.created, False
    if stage is not None:
        tally.phase = "apply"
        tally.report()
        swap = not prepared.existing or options.create == CreatePolicy.REPLACE_SCHEMA
        apply = StagedApply(table, stage, mode=options.mode, keys=options.keys,
                            columns=plan.names, swap=swap, journal=journal)

        def count_retry() -> None:
            tally.stats[0].retries += 1

        created = apply.run(factory, max_retries=options.max_retries, retry=retry,
                            on_retry=count_retry) or created
        applied = True

    # -- result ----------------------------------------------------------------------
    result = tally.result(created=created, skipped=tally.skipped, applied=applied,
                          widened=widening.widened, transport=transport.name,
                          transport_reason=choice.reason)
    if options.max_errors:
        result = dataclasses.replace(result, rows_rejected=finish_rejected())
    log.info("loaded %s: %d row(s) in %d batch(es), %d skipped, %.1f s, %d retries, "
             "%d token renewal(s)", table, result.rows, result.batches,
             result.batches_skipped, result.seconds, result.retries, result.token_renewals)
    return result


def _check_keys(plan: TablePlan, keys: tuple[str, ...]) -> None:
    # keys must be source columns; validate_against then makes every source column
    # (so every key) a column of an existing target
    names = {c.name.casefold() for c in plan.columns}
    missing = [k for k in keys if k.casefold() not in names]
    if missing:
        raise ConfigurationError(
            f"upsert keys {missing} are not columns of the source (columns: "
            f"{', '.join(plan.names)}); pass keys that name source columns")
    if keys and len(keys) == len(plan.columns):
        log.info("every column is a key: the upsert only inserts missing rows")
