"""The parameter-array fast path: many ``sp_execute`` calls of one prepared INSERT.

Microsoft's driver sends a parameter array (pyodbc ``fast_executemany``, turbodbc
``executemanycolumns``) as ONE RPC message holding one ``sp_execute`` call per row
(tds-wire-notes.md). Running each call as its own statement costs a parse and a DuckDB
round trip per row; here a run of consecutive calls on the same handle becomes one
``execute_many``, while the reply is still one DONEINPROC/RETURNSTATUS/DONEPROC per call,
so the client sees exactly what SQL Server sends.

The column-wise path (:func:`columnar_run`, ``sql.column_insert``) is the rule; the row
path (checks' converters, a Python object per value) is the exception. Each time rows take
it, :func:`execute_run` and :func:`note_bulk_rows` count them in ``/metrics``
(``row_path_calls``, ``fallbacks`` by reason) and log ONE warning line per statement shape
and reason (the traceback of an unexpected planner error only at DEBUG).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from azsql_emulator.errors import SqlError
from azsql_emulator.reply import Reply
from azsql_emulator.sql.column_insert import last_fallback
from azsql_emulator.tds.columns import BULK_COLUMNAR_TYPES
from azsql_emulator.tds.constants import ProcId
from azsql_emulator.tds.requests import FastCall, RpcCall, call_values
from azsql_emulator.tds.typeinfo import PLP_SIZE

if TYPE_CHECKING:
    from azsql_emulator.bulk import BulkRows
    from azsql_emulator.metrics import Metrics
    from azsql_emulator.sql.engine import SqlSession
    from azsql_emulator.tds.columns import ColumnarRun

log = logging.getLogger("azsql_emulator.ingest")
# Per SQL session: why its last parameter array was refused column-wise (the calls then
# come back, decoded row-wise, to execute_run, which counts and logs them).
_REFUSED: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
_ROW_WISE_DECODE = "parameters not decoded column-wise (a wire type or PLP value the " \
                   "native decoder does not take)"


def _shape(statement: str) -> str:
    return " ".join(statement.split())[:300]


def report_fallback(metrics: Metrics | None, statement: str, reason: str, rows: int,
                    exc: BaseException | None = None) -> None:
    """Count ``rows`` that take the row path for ``reason`` and log it once per statement
    shape and reason: one WARNING line, the traceback (if any) at DEBUG only.

    :param metrics: the server's counters (None: nothing counted or logged).
    :param statement: the statement text (or bulk-load target).
    :param reason: why; the ``fallbacks`` key.
    :param rows: the calls or rows concerned.
    :param exc: the unexpected error behind it, if any.
    """
    if metrics is None:
        return
    if metrics.fallback(_shape(statement), reason, rows):
        log.warning("row-by-row path for %s: %s (logged once per statement and reason; "
                    "counted in /metrics row_path_calls and fallbacks)", _shape(statement),
                    reason)
        if exc is not None:
            log.debug("the error behind that fallback", exc_info=exc)

_CMD_INSERT = 0xC3  # curcmd SQL Server puts on an INSERT's DONEINPROC (wire notes)


def _handle(call: RpcCall | FastCall) -> object:
    """The sp_execute handle of a call, or a marker that matches nothing if it is not one."""
    if isinstance(call, FastCall):
        return call[0]
    if not isinstance(call, RpcCall):  # a ColumnarRun is handled on its own
        return _NOT_EXECUTE
    if call.proc_id == ProcId.SP_EXECUTE and call.params:
        return call.params[0].value
    return _NOT_EXECUTE


_NOT_EXECUTE = object()


def execute_runs(calls: Sequence[RpcCall | FastCall]) -> list[tuple[int, int]]:
    """Index ranges ``[start, end)`` of 2+ consecutive sp_execute calls on one handle."""
    runs = []
    i, n = 0, len(calls)
    while i < n:
        j = run_end(calls, i)
        if j - i > 1:
            runs.append((i, j))
        i = j
    return runs


def run_end(calls: Sequence[object], i: int) -> int:
    """The end of the run of sp_execute calls on one handle that starts at ``calls[i]``
    (``i + 1`` when it is no sp_execute call or stands alone)."""
    handle = _handle(calls[i])  # type: ignore[arg-type]
    j = i + 1
    if handle is _NOT_EXECUTE:
        return j
    n = len(calls)
    while j < n and _handle(calls[j]) == handle:  # type: ignore[arg-type]
        j += 1
    return j


def is_single_row_insert(stmt: str) -> bool:
    """A cheap pre-check; the SQL engine makes the real decision (and may refuse)."""
    head = stmt.lstrip().lower()
    return head.startswith("insert") and head.count("values") == 1


def execute_run(sql: SqlSession, stmt: str, names: list[str], calls: Sequence[RpcCall],
                reply: Reply, *, last_call_is_last: bool,
                metrics: Metrics | None = None) -> None:
    """Insert one parameter row per call and reply per call, as SQL Server does.

    :param sql: the session's SQL session.
    :param stmt: the prepared INSERT.
    :param names: its declared parameter names, in order.
    :param calls: the sp_execute calls of the run.
    :param reply: where the tokens go.
    :param last_call_is_last: the run ends the RPC message (its DONEPROC has no MORE bit).
    :param metrics: the server's counters: the calls are counted as row-path calls, and
        the reason reported once per statement shape.
    :raises SqlError: 50100 when the batched row path cannot take the statement either
        (the caller then runs the calls one by one; reported here, once).
    """
    reason = _REFUSED.pop(sql, None) or _ROW_WISE_DECODE
    report_fallback(metrics, stmt, reason, len(calls))
    try:
        _execute_rows(sql, stmt, names, calls, reply, last_call_is_last=last_call_is_last)
    except SqlError:
        raise
    except Exception as exc:
        if metrics is None:
            raise
        report_fallback(metrics, stmt, f"the batched row path failed ({type(exc).__name__}); "
                                       "one statement per call", 0, exc)
        raise SqlError(50100, "emulator: this INSERT runs call by call") from exc


def _execute_rows(sql: SqlSession, stmt: str, names: list[str], calls: Sequence[RpcCall],
                  reply: Reply, *, last_call_is_last: bool) -> None:
    width = len(names)
    rows = []
    for call in calls:
        values = call_values(call)
        if len(values) - 1 > width:
            raise SqlError(8144, "Procedure or function has too many arguments specified "
                                 f"({len(values) - 1} values for {width} parameters).")
        rows.append(values[1:])
    errors = sql.execute_many(stmt, rows)
    counted = not sql.nocount
    n = len(errors)
    k = 0
    while k < n:
        if errors[k] is None:  # a stretch of successes: their tokens in one go
            j = k
            while j < n and errors[j] is None:
                j += 1
            reply.inserted_rows(j - k, last_call_is_last=last_call_is_last and j == n,
                                curcmd=_CMD_INSERT, rows_counted=counted)
            k = j
            continue
        error = errors[k]
        assert error is not None
        reply.error(error).done(kind="inproc", more=True, error=True, curcmd=_CMD_INSERT)
        reply.return_status(0).done(kind="proc", more=not (last_call_is_last and k == n - 1))
        k += 1


def discard_run(names: list[str], calls: Sequence[RpcCall], reply: Reply, *,
                last_call_is_last: bool) -> None:
    """``--sink discard``: the values were parsed with the request; check the arity, store
    nothing, and acknowledge every call as an inserted row."""
    width = len(names)
    for call in calls:
        given = len(call_values(call)) - 1
        if given > width:
            raise SqlError(8144, "Procedure or function has too many arguments specified "
                                 f"({given} values for {width} parameters).")
    reply.inserted_rows(len(calls), last_call_is_last=last_call_is_last, curcmd=_CMD_INSERT)


def columnar_run(sql: SqlSession | None, stmt: str, names: list[str], run: ColumnarRun,
                 reply: Reply, *, last_call_is_last: bool,
                 metrics: Metrics | None = None) -> bool:
    """A parameter array decoded column-wise: one column-wise INSERT and the per-call
    replies, or, with ``sql`` None (``--sink discard``), only the replies (the decoder
    has validated every value). False, with nothing done, when the calls must go one by
    one instead: another arity, or values the column-wise INSERT does not decide (the
    reason is kept for :func:`execute_run`, which runs, counts and logs them).

    :param sql: the session's SQL session, or None to store nothing.
    :param stmt: the prepared INSERT.
    :param names: its declared parameter names, in order.
    :param run: the calls.
    :param reply: where the tokens go.
    :param last_call_is_last: the run ends the RPC message.
    :param metrics: the server's counters, for fallbacks the planner raises on.
    :raises SqlError: a statement-level error (permissions, a missing table...).
    """
    if len(run.columns) - 1 > len(names) or not run.one_handle():
        if sql is not None:
            _REFUSED[sql] = "calls of another arity or handle in the parameter array"
        return False
    counted = True
    if sql is not None:
        try:
            done = sql.insert_columns(stmt, run.columns[1:], run.count)
        except SqlError as exc:
            _REFUSED[sql] = f"statement error {exc.number} when planning column-wise"
            raise
        except Exception as exc:
            # a shape the planner does not take: the row path decides, reported once
            reason = f"the column-wise planner failed ({type(exc).__name__})"
            _REFUSED[sql] = reason
            if metrics is None:
                raise
            log.debug("column-wise planning failed for %s", _shape(stmt), exc_info=exc)
            return False
        if not done:
            _REFUSED[sql] = last_fallback() or "the column-wise INSERT refused the values"
            return False
        counted = not sql.nocount
    reply.inserted_rows(run.count, last_call_is_last=last_call_is_last, curcmd=_CMD_INSERT,
                        rows_counted=counted)
    return True


def note_bulk_rows(metrics: Metrics, target: str, load: BulkRows, rows: int) -> None:
    """Count and report (once per target and reason) a bulk load's rows that took the row
    path; nothing when they were inserted column-wise.

    :param metrics: the server's counters.
    :param target: the INSERT BULK's table, as written.
    :param load: the decoded BULK_LOAD.
    :param rows: how many rows it inserted.
    """
    if load.applied_columnar or not rows:
        return
    if load.wire is None:
        odd = [c for c in load.columns
               if c.type_info.type not in BULK_COLUMNAR_TYPES or c.type_info.size == PLP_SIZE]
        what = ", ".join(f"{c.name} (type 0x{c.type_info.type:02x}"
                         f"{', PLP' if c.type_info.size == PLP_SIZE else ''})" for c in odd[:3])
        reason = f"bulk rows not decoded column-wise: {what}" if odd \
            else "bulk rows not decoded column-wise (NBCROW or a value it does not take)"
    else:
        reason = last_fallback() or "bulk load with column defaults (NULLs take the DEFAULT)"
    report_fallback(metrics, f"INSERT BULK {target}", reason, rows)
