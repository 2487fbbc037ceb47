"""``AzureSqlBulkLoadOperator``: one ``engine.transfer`` per task instance, resumed by retries.

The default load id is derived from the task instance (dag_id, task_id, run_id,
map_index), the target and what the load writes, never from the try number, so when
Airflow retries a failed attempt the engine finds the batches the failed attempt
committed in its journal and sends only the rest: the table ends exact, not doubled.

The load options (``workers``, ``mode``, ``keys``, ``rows_per_batch``, ``columns``...)
are the keyword arguments declared by the fields of :class:`engine.options.TransferOptions`
and :class:`engine.sources.SourceOptions` (see :mod:`engine.option_spec`), with the
engine's defaults: ``azsql-bulk load`` offers the same options.

>>> from airflow.sdk import DAG  # doctest: +SKIP
>>> with DAG("orders", schedule=None):  # doctest: +SKIP
...     AzureSqlBulkLoadOperator(task_id="load", source="/data/orders/*.parquet",
...                              table="dbo.orders", conn_id="azure_sql", retries=3)
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_integration.hooks import AzureSqlBulkHook
from airflow_integration.lineage import operator_lineage, output_dataset, source_datasets
from engine.batch_size import BatchSize
from engine.errors import ConfigurationError, TransferCancelled, TransferError
from engine.journal import default_load_id
from engine.journal_admin import UnknownLoad
from engine.option_spec import declared, options_from
from engine.options import Target, TransferOptions
from engine.progress_display import ProgressDisplay
from engine.results import TransferResult
from engine.shards import VERSION_KEY, describe_shard
from engine.sources import SourceOptions
from engine.transfer import transfer

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["DEFAULT_PROGRESS_INTERVAL", "LOAD_PARAMETERS", "AzureSqlBulkLoadOperator",
           "audit_facts", "task_load_id", "xcom_result"]

#: seconds between the progress lines a load writes to its task log
DEFAULT_PROGRESS_INTERVAL = 30.0


def _load_parameters() -> dict[str, inspect.Parameter]:
    """The operator's load options: every declared field the Airflow surface offers.

    A default the field builds with a factory (a dict) is None here, which means the same.
    """
    out: dict[str, inspect.Parameter] = {}
    for cls in (TransferOptions, SourceOptions):
        for f, spec in declared(cls):
            if spec.exposed("airflow"):
                default = None if f.default is dataclasses.MISSING \
                    else spec.default_on("airflow", f)
                out[f.name] = inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=default)
    return out


#: name -> keyword-only parameter (with its default) of every load option
LOAD_PARAMETERS = _load_parameters()


def task_load_id(dag_id: str, task_id: str, run_id: str, map_index: int, target: Target, *,
                 options: TransferOptions | None = None,
                 source_options: SourceOptions | None = None) -> str:
    """The default load id of a task instance: the same for every try of it.

    The engine's :func:`~engine.journal.default_load_id` over the task instance's
    identity instead of the source's fingerprint (32 hex digits); it covers the mode,
    keys, columns, renames and SQL types like the engine's own default.

    :param dag_id: the DAG.
    :param task_id: the task.
    :param run_id: the DAG run.
    :param map_index: the mapped index (-1 when not mapped).
    :param target: the target table.
    :param options: the load's options.
    :param source_options: how the source is read.
    """
    identity = f"airflow\n{dag_id}\n{task_id}\n{run_id}\n{map_index}"
    return default_load_id(identity, target, options=options, source_options=source_options)


def audit_facts(ti: Any) -> dict[str, str]:
    """What a task instance's sessions say about it (the engine adds ``load`` first): the
    login's application name ``azsql-bulk/<version> load=... dag=... task=... run=...``
    (cut to 128 characters) and SESSION_CONTEXT keys ``airflow.dag_id``,
    ``airflow.task_id``, ``airflow.run_id`` (see :mod:`engine.session_audit`). Ids only.

    >>> from types import SimpleNamespace
    >>> audit_facts(SimpleNamespace(dag_id="nightly", task_id="load", run_id="r1", map_index=2))
    {'dag': 'nightly', 'task': 'load[2]', 'run': 'r1'}
    """
    map_index = getattr(ti, "map_index", None)
    task = str(ti.task_id) + (f"[{map_index}]" if map_index is not None and map_index >= 0
                              else "")
    return {"dag": str(ti.dag_id), "task": task, "run": str(ti.run_id)}


def _documented(doc: str) -> str:
    """``doc`` with a ``:param:`` line for each load option in place of ``{load_options}``."""
    lines = [f"    :param {f.name}: {spec.help}." for cls in (TransferOptions, SourceOptions)
             for f, spec in declared(cls) if spec.exposed("airflow")]
    return doc.replace("    {load_options}\n", "\n".join(lines) + "\n")


class AzureSqlBulkLoadOperator(BaseOperator):
    """Load files into an Azure SQL table with ``engine.transfer``; return the result dict.

    All arguments are keyword-only.

    :param source: a path, glob or directory of Parquet, CSV or Arrow IPC files, or a list
        of them, or a shard (a dict from :func:`airflow_integration.shards.split_source`,
        e.g. through ``.expand(source=...)``; it is passed on as it is, never rendered);
        templated: an XCom reference works.
    :param table: ``schema.table`` (templated).
    :param conn_id: the ``azure_sql_bulk`` connection.
    :param progress_interval: seconds between progress lines in the task log (rows,
        MB, rows/s, workers busy, retries, ETA when the source's row count is known: the
        same line as ``azsql-bulk load --progress log``); 0 logs every committed batch,
        None logs none (default 30).
    {load_options}
    ``keys`` and ``load_id`` are templated; ``load_id`` defaults to one derived from the
    task instance (see :func:`task_load_id`); ``max_retries`` exhausted fails the try, and
    Airflow's next try resumes the load.

    The XCom result (see :func:`xcom_result`) counts the whole load: ``rows`` and
    ``batches`` are what the load id holds in the journal after this try, every try
    together, so summing ``rows`` over a run's mapped shards gives the rows loaded;
    ``rows_this_try`` and ``batches_this_try`` are what this try sent (``bytes``,
    ``seconds`` and the rates describe this try too).
    """

    template_fields: Sequence[str] = ("source", "table", "keys", "load_id")
    ui_color = "#cfe3f7"

    def __init__(self, *, source: Any, table: str,
                 conn_id: str = AzureSqlBulkHook.default_conn_name,
                 progress_interval: float | None = DEFAULT_PROGRESS_INTERVAL,
                 **kwargs: Any) -> None:
        load = {name: kwargs.pop(name, p.default) for name, p in LOAD_PARAMETERS.items()}
        super().__init__(**kwargs)
        if progress_interval is not None:
            try:  # a number from params or a template may arrive as text
                seconds = float(progress_interval)
            except (TypeError, ValueError):
                seconds = -1.0
            if not seconds >= 0:
                raise ConfigurationError(f"progress_interval must be 0 or more seconds (or None "
                                         f"for no progress lines), not {progress_interval!r}")
            progress_interval = seconds
        self.source = source
        self.table = table
        self.conn_id = conn_id
        self.progress_interval = progress_interval
        for name, value in load.items():
            setattr(self, name, value)
        self._cancel = threading.Event()
        self._lineage: tuple[list[tuple[str, str]], tuple[str, str]] | None = None

    # the load options are keyword-only parameters for Airflow (default_args, expand
    # checks) and for help(): the signature is built from the declarations
    __init__.__signature__ = inspect.signature(__init__).replace(  # type: ignore[attr-defined]
        parameters=[*list(inspect.signature(__init__).parameters.values())[:-1],
                    *LOAD_PARAMETERS.values(),
                    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
    __doc__ = _documented(__doc__ or "")

    # -- engine options -------------------------------------------------------------------
    def _given(self) -> Mapping[str, Any]:
        return {name: getattr(self, name) for name in LOAD_PARAMETERS}

    def transfer_options(self, load_id: str | None = None) -> TransferOptions:
        """The engine's load options for this task (it always resumes its own load).

        :param load_id: the load's journal id (default: the ``load_id`` argument).
        :raises ConfigurationError: an invalid option (e.g. ``upsert`` without keys).
        """
        options: TransferOptions = options_from(
            TransferOptions, self._given(), "airflow", resume=True,
            **({"load_id": load_id} if load_id else {}))
        return options

    def source_options(self) -> SourceOptions:
        """How the engine reads the source (columns, renames, rows per batch, format).

        :raises ConfigurationError: an invalid option (e.g. an empty column list).
        """
        options: SourceOptions = options_from(SourceOptions, self._given(), "airflow")
        return options

    def render_template(self, content: Any, context: Any, jinja_env: Any = None,
                        seen_oids: set[int] | None = None) -> Any:
        """Render templates as Airflow does, except inside a shard: a shard is data (paths,
        ranges, ETags), and Jinja, with ``render_template_as_native_obj`` above all,
        would turn some of its strings into other values."""
        if isinstance(content, Mapping) and VERSION_KEY in content:
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the load; the returned dict (:func:`xcom_result`) goes to XCom."""
        hook = AzureSqlBulkHook(self.conn_id)
        try:
            return self._execute(hook, context)
        finally:
            hook.close()

    def _execute(self, hook: AzureSqlBulkHook, context: Context) -> dict[str, Any]:
        try:
            target = hook.target(self.table)
            read = self.source_options()
            options = self.transfer_options()
            if options.load_id is None:
                ti = context["ti"]
                map_index = ti.map_index if ti.map_index is not None else -1
                options = dataclasses.replace(options, load_id=task_load_id(
                    ti.dag_id, ti.task_id, ti.run_id, map_index, target, options=options,
                    source_options=read))
            target = dataclasses.replace(target, connection=dataclasses.replace(
                target.connection, audit=audit_facts(context["ti"])))
        except (ConfigurationError, ValueError) as exc:  # a retry cannot fix a bad setting
            raise AirflowFailException(str(exc)) from None
        load_id = options.load_id
        assert load_id is not None
        c = target.connection
        self._lineage = (source_datasets(self.source),
                         output_dataset(c.server, c.port, c.database, str(target.table)))
        self.log.info("loading %s into %s with load_id %s (try %s)", _describe(self.source),
                      target.describe(), load_id, getattr(context["ti"], "try_number", "?"))
        display = ProgressDisplay(
            table=str(target.table), workers=options.workers, load_id=load_id,
            rows_per_batch=read.rows_per_batch,
            mode="off" if self.progress_interval is None else "log",
            interval=self.progress_interval or 0.0, err=_TaskLogLines(self.log),
            timestamps=False)  # the task log stamps every line itself
        if display.mode == "log":
            options = dataclasses.replace(options, progress=display.update)
        try:
            with display:
                result = transfer(self.source, target, options, source_options=read,
                                  cancel=self._cancel,
                                  on_batch_size=lambda size: self._batch_size(size, display))
                display.stop("done", final=f"via {result.transport}")
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
        try:
            held = hook.journal().get(load_id)
            totals = (held.rows, held.batches, held.rejects)
        except UnknownLoad:  # nothing journaled (an empty source): this try is the load
            totals = (result.rows, result.batches, result.rows_rejected)
        out = xcom_result(result, *totals)
        self.log.info("load %s holds %s row(s) in %s batch(es); this try sent %s row(s) in "
                      "%s batch(es)", load_id, f"{out['rows']:,}", f"{out['batches']:,}",
                      f"{result.rows:,}", f"{result.batches:,}")
        return out

    def _batch_size(self, size: BatchSize, display: ProgressDisplay) -> None:
        """The load's rows per batch, once decided (the table's index or the journal may
        choose it): logged, and used by the progress display's estimates."""
        display.rows_per_batch = size.rows
        self.log.info("%s", size.describe())

    def on_kill(self) -> None:
        """Stop the workers at their next batch boundary (committed batches stay journaled)."""
        self._cancel.set()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs (the files) and output (the table) for the openlineage provider, if any."""
        if self._lineage is None:
            return None
        inputs, output = self._lineage
        return operator_lineage(inputs, output)


def xcom_result(result: TransferResult, rows: int, batches: int,
                rejected: int) -> dict[str, Any]:
    """The XCom value of a load: ``TransferResult.to_dict()`` with the load's totals.

    ``rows``, ``batches`` and ``rows_rejected`` count what the load id holds (every try of
    the task instance together); ``rows_this_try``, ``batches_this_try`` and
    ``rows_rejected_this_try`` count this try's part. ``bytes``, ``seconds``,
    ``rows_per_second`` and ``mb_per_second`` describe this try.

    :param result: this try's result.
    :param rows: rows the journal holds for the load id.
    :param batches: batches the journal holds for it.
    :param rejected: rows set aside under ``max_errors`` by every try.

    >>> r = TransferResult("dbo.t", "x", 70, 560, 2.0, 7, 3, 0, 0, 0, False)
    >>> out = xcom_result(r, 100, 10, 0)
    >>> out["rows"], out["rows_this_try"], out["batches"], out["batches_this_try"]
    (100, 70, 10, 7)
    """
    out: dict[str, Any] = result.to_dict()
    out.update(rows=rows, batches=batches, rows_rejected=rejected, rows_this_try=result.rows,
               batches_this_try=result.batches, rows_rejected_this_try=result.rows_rejected)
    return out


class _TaskLogLines(io.StringIO):
    """A text stream that writes each line to the task's logger (the progress display's
    ``err``), so progress lands in the task log at INFO."""

    def __init__(self, log: Any) -> None:
        super().__init__()
        self.log = log

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.log.info("%s", line)
        return len(text)



def _describe(source: Any) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, Mapping) and VERSION_KEY in source:
        return describe_shard(source)
    if isinstance(source, Sequence) and all(isinstance(s, str) for s in source):
        return f"{len(source)} path(s)"
    if isinstance(source, Sequence) and all(isinstance(s, Mapping) for s in source):
        return f"{len(source)} shard(s)"
    return f"a {type(source).__name__}"
