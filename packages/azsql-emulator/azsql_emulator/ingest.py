"""The parameter-array fast path: many ``sp_execute`` calls of one prepared INSERT.

Microsoft's driver sends a parameter array (pyodbc ``fast_executemany``, turbodbc
``executemanycolumns``) as ONE RPC message holding one ``sp_execute`` call per row
(tds-wire-notes.md). Running each call as its own statement costs a parse and a DuckDB
round trip per row; here a run of consecutive calls on the same handle becomes one
``execute_many``, while the reply is still one DONEINPROC/RETURNSTATUS/DONEPROC per call,
so the client sees exactly what SQL Server sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from azsql_emulator.errors import SqlError
from azsql_emulator.reply import Reply
from azsql_emulator.tds.constants import ProcId
from azsql_emulator.tds.requests import FastCall, RpcCall, call_values

if TYPE_CHECKING:
    from azsql_emulator.sql.engine import SqlSession
    from azsql_emulator.tds.columns import ColumnarRun

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
                reply: Reply, *, last_call_is_last: bool) -> None:
    """Insert one parameter row per call and reply per call, as SQL Server does.

    :param sql: the session's SQL session.
    :param stmt: the prepared INSERT.
    :param names: its declared parameter names, in order.
    :param calls: the sp_execute calls of the run.
    :param reply: where the tokens go.
    :param last_call_is_last: the run ends the RPC message (its DONEPROC has no MORE bit).
    """
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
                 reply: Reply, *, last_call_is_last: bool) -> bool:
    """A parameter array decoded column-wise: one column-wise INSERT and the per-call
    replies, or, with ``sql`` None (``--sink discard``), only the replies (the decoder
    has validated every value). False, with nothing done, when the calls must go one by
    one instead: another arity, or values the column-wise INSERT does not decide.

    :param sql: the session's SQL session, or None to store nothing.
    :param stmt: the prepared INSERT.
    :param names: its declared parameter names, in order.
    :param run: the calls.
    :param reply: where the tokens go.
    :param last_call_is_last: the run ends the RPC message.
    """
    if len(run.columns) - 1 > len(names) or not run.one_handle():
        return False
    counted = True
    if sql is not None:
        if not sql.insert_columns(stmt, run.columns[1:], run.count):
            return False
        counted = not sql.nocount
    reply.inserted_rows(run.count, last_call_is_last=last_call_is_last, curcmd=_CMD_INSERT,
                        rows_counted=counted)
    return True
