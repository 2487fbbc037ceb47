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

from emulator.errors import SqlError
from emulator.reply import Reply
from emulator.tds.constants import ProcId

if TYPE_CHECKING:
    from emulator.sql.engine import SqlSession
    from emulator.tds.requests import RpcCall

_CMD_INSERT = 0xC3  # curcmd SQL Server puts on an INSERT's DONEINPROC (wire notes)


def _is_execute(call: RpcCall) -> bool:
    return call.proc_id == ProcId.SP_EXECUTE and bool(call.params)


def execute_runs(calls: Sequence[RpcCall]) -> list[tuple[int, int]]:
    """Index ranges ``[start, end)`` of 2+ consecutive sp_execute calls on one handle."""
    runs = []
    i, n = 0, len(calls)
    while i < n:
        if not _is_execute(calls[i]):
            i += 1
            continue
        handle = calls[i].params[0].value
        j = i + 1
        while j < n and _is_execute(calls[j]) and calls[j].params[0].value == handle:
            j += 1
        if j - i > 1:
            runs.append((i, j))
        i = j
    return runs


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
        params = call.params
        if len(params) - 1 > width:
            raise SqlError(8144, "Procedure or function has too many arguments specified "
                                 f"({len(params) - 1} values for {width} parameters).")
        rows.append([p.value for p in params[1:]])
    errors = sql.execute_many(stmt, rows)
    nocount = sql.nocount
    count = None if nocount else 1
    for k, error in enumerate(errors):
        more = not (last_call_is_last and k == len(errors) - 1)
        if error is None:
            reply.done(kind="inproc", more=True, count=count, curcmd=_CMD_INSERT)
        else:
            reply.error(error).done(kind="inproc", more=True, error=True, curcmd=_CMD_INSERT)
        reply.return_status(0).done(kind="proc", more=more)


def discard_run(names: list[str], calls: Sequence[RpcCall], reply: Reply, *,
                last_call_is_last: bool) -> None:
    """``--sink discard``: the values were parsed with the request; check the arity, store
    nothing, and acknowledge every call as an inserted row."""
    width = len(names)
    for k, call in enumerate(calls):
        if len(call.params) - 1 > width:
            raise SqlError(8144, "Procedure or function has too many arguments specified "
                                 f"({len(call.params) - 1} values for {width} parameters).")
        reply.done(kind="inproc", more=True, count=1, curcmd=_CMD_INSERT)
        reply.return_status(0).done(kind="proc",
                                    more=not (last_call_is_last and k == len(calls) - 1))
