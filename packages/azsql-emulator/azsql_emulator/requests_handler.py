"""Requests after login: SQL batches, RPCs, transaction-manager requests, attention."""

from __future__ import annotations

import itertools
import logging
import re
import struct
import time
from typing import TYPE_CHECKING, Any

from azsql_emulator import bulk, ingest
from azsql_emulator.bulk_metadata import answer as bulk_metadata_answer
from azsql_emulator.bulk_metadata import bulk_metadata_table
from azsql_emulator.datatype_info import datatype_info
from azsql_emulator.errors import SessionClosed, SqlError
from azsql_emulator.faults import FATAL_SEVERITY
from azsql_emulator.first_result_set import batch_call, describe_first_result_set
from azsql_emulator.reply import Reply
from azsql_emulator.tds.columns import ColumnarRun
from azsql_emulator.tds.constants import EnvChangeType, PacketType, ProcId, TransactionRequest
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.requests import RpcCall, decode_rpc, decode_sql_batch, decode_tm_request

if TYPE_CHECKING:
    from azsql_emulator.session import Session
    from azsql_emulator.sql.engine import SqlSession, StatementResult
    from azsql_emulator.tds.packet import Message

log = logging.getLogger("azsql_emulator.requests")

_DESCRIPTOR = struct.Struct("<Q")
# Splits "@P1 int,@P2 decimal(18,4) OUTPUT" at commas outside parentheses.
_PARAM_DEF = re.compile(r"\s*(@[\w@#$]+)\s+([^,(]+(?:\([^)]*\))?)(\s+(?:out|output))?\s*(?:,|$)",
                        re.IGNORECASE)
_PROC_NAMES = {
    "sp_executesql": ProcId.SP_EXECUTESQL, "sp_prepare": ProcId.SP_PREPARE,
    "sp_execute": ProcId.SP_EXECUTE, "sp_prepexec": ProcId.SP_PREPEXEC,
    "sp_unprepare": ProcId.SP_UNPREPARE,
}


def parse_param_definitions(text: str) -> list[str]:
    """Names of the parameters declared in an sp_executesql/sp_prepare definition list.

    >>> parse_param_definitions("@P1 int,@P2 nvarchar(50)")
    ['@P1', '@P2']
    """
    text = text.strip()
    if not text:
        return []
    names = [m.group(1) for m in _PARAM_DEF.finditer(text)]
    if not names:
        raise SqlError(102, f"Incorrect syntax near '{text[:40]}'.", 15)
    return names


class RequestHandler:
    """Serve one logged-in session's requests.

    :param session: the session (transport, SQL session, metrics).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sql: SqlSession = session.sql  # type: ignore[assignment]
        self.metrics = session.server.metrics
        self._descriptors = itertools.count(1)
        self.descriptor = b"\x00" * 8
        self._prepared: dict[int, tuple[str, list[str]]] = {}
        self._handles = itertools.count(1)
        self._bulk: bulk.BulkTarget | None = None  # announced by INSERT BULK

    def handle(self, msg: Message) -> None:
        started = time.perf_counter()
        reply = Reply()
        self.session.server.faults.admit(len(msg.payload))
        if msg.reset_connection:
            self._reset(reply)
        if msg.type == PacketType.SQL_BATCH:
            self.metrics.add("sql_batches")
            self._sql_batch(msg.payload, reply)
        elif msg.type == PacketType.RPC:
            self._rpc(msg.payload, reply)
        elif msg.type == PacketType.TRANSACTION_MANAGER:
            self._transaction(msg.payload, reply)
        elif msg.type == PacketType.BULK_LOAD:
            self._bulk_load(msg.payload, reply)
        elif msg.type == PacketType.ATTENTION:
            # Requests run to completion before the next is read, so there is nothing
            # left to cancel; acknowledge so the client stops waiting.
            reply.done(attn=True)
        else:
            raise ProtocolError(f"unexpected packet type 0x{msg.type:02x} after login")
        payload = reply.payload()
        self.metrics.add("busy_seconds", time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("session %d: request 0x%02x (%d bytes) -> reply %d bytes",
                      self.session.spid, msg.type, len(msg.payload), len(payload))
        self.session.send(payload)

    # -- session state -----------------------------------------------------------------------
    def _new_descriptor(self) -> bytes:
        self.descriptor = _DESCRIPTOR.pack(next(self._descriptors) + (self.session.spid << 32))
        return self.descriptor

    def _reset(self, reply: Reply) -> None:
        if self.sql.in_transaction:
            self.sql.rollback()
        self._prepared.clear()
        self.descriptor = b"\x00" * 8
        reply.envchange(EnvChangeType.RESET_CONNECTION_ACK, b"", b"")

    def _transaction_envchanges(self, was_in_transaction: bool, reply: Reply) -> None:
        """Tell the client when a batch began or ended a transaction (BEGIN TRAN in T-SQL)."""
        now = self.sql.in_transaction
        if now and not was_in_transaction:
            reply.envchange(EnvChangeType.BEGIN_TRANSACTION, self._new_descriptor(), b"")
        elif was_in_transaction and not now:
            old, self.descriptor = self.descriptor, b"\x00" * 8
            reply.envchange(EnvChangeType.COMMIT_TRANSACTION, b"", old)

    # -- SQL batch -----------------------------------------------------------------------------
    def _sql_batch(self, payload: bytes, reply: Reply) -> None:
        batch = decode_sql_batch(payload)
        log.debug("session %d: SQL batch %.2000r", self.session.spid, batch.text)
        try:
            target = bulk.parse_insert_bulk(batch.text)
            if target is not None:
                bulk.resolve_target(self.sql, target)
        except SqlError as exc:
            reply.error(exc).done(error=True)
            return
        if target is not None:
            self._bulk = target
            reply.done()
            return
        table = bulk_metadata_table(batch.text)
        if table is not None:
            reply.results(bulk_metadata_answer(self.sql, table), nocount=self.sql.nocount)
            return
        described = batch_call(batch.text)
        if described is not None:
            try:
                result = describe_first_result_set(self.sql, described)
            except SqlError as exc:
                reply.error(exc).done(error=True)
                return
            reply.results([result], nocount=False)
            return
        was = self.sql.in_transaction
        try:
            results = self.sql.execute(batch.text)
        except SqlError as exc:
            reply.error(exc).done(error=True)
            return
        except Exception as exc:  # an engine bug: answer with an error, keep the session
            reply.error(self._internal_error(exc, "SQL batch")).done(error=True)
            return
        self._transaction_envchanges(was, reply)
        reply.results(results, nocount=self.sql.nocount)

    # -- bulk load -----------------------------------------------------------------------------
    def _bulk_load(self, payload: bytes, reply: Reply) -> None:
        target, self._bulk = self._bulk, None
        log.debug("session %d: BULK_LOAD %d bytes: %s", self.session.spid, len(payload),
                  payload[:200].hex())
        if target is None:
            reply.error(SqlError(4804, "While reading current row from host, a premature "
                                       "end-of-message was encountered: no INSERT BULK "
                                       "announced this bulk load.")).done(error=True)
            return
        load = bulk.decode_bulk_load(payload)
        self.metrics.add("bulk_loads")
        # Fault injection counts each bulk-loaded row as one call, so "after N calls"
        # lands at the same place in a load whichever transport carries it.
        injected = self.session.server.faults.take_rpc_error(load.count, self.sql.database)
        if injected is not None:
            reply.error(injected).done(error=True)
            if injected.severity >= FATAL_SEVERITY:
                self.session.send(reply.payload())
                raise SessionClosed(f"injected error {injected.number}")
            return
        if self.session.server.sink == "discard":
            self.metrics.add("rows_discarded", load.count)
            reply.done(count=load.count)
            return
        try:
            count = bulk.apply_rows(self.sql, target, load)
        except SqlError as exc:
            reply.error(exc).done(error=True)
            return
        self.metrics.add("bulk_rows", count)
        if load.applied_columnar:
            self.metrics.add("bulk_columnar_rows", count)
        else:
            ingest.note_bulk_rows(self.metrics, target.table, load, count)
        reply.done(count=count)

    # -- transaction manager -------------------------------------------------------------------
    def _transaction(self, payload: bytes, reply: Reply) -> None:
        req = decode_tm_request(payload)
        kind = req.request_type
        try:
            if kind == TransactionRequest.TM_BEGIN_XACT:
                self.sql.begin()
                reply.envchange(EnvChangeType.BEGIN_TRANSACTION, self._new_descriptor(), b"")
            elif kind in (TransactionRequest.TM_COMMIT_XACT, TransactionRequest.TM_ROLLBACK_XACT):
                commit = kind == TransactionRequest.TM_COMMIT_XACT
                if self.sql.in_transaction:
                    self.sql.commit() if commit else self.sql.rollback()
                old, self.descriptor = self.descriptor, b"\x00" * 8
                reply.envchange(EnvChangeType.COMMIT_TRANSACTION if commit
                                else EnvChangeType.ROLLBACK_TRANSACTION, b"", old)
                if req.begin_new:
                    self.sql.begin()
                    reply.envchange(EnvChangeType.BEGIN_TRANSACTION, self._new_descriptor(), b"")
            else:
                raise SqlError(50000, f"emulator: transaction-manager request {kind} is not "
                                      "supported (only begin, commit and rollback)")
        except SqlError as exc:
            reply.error(exc).done(error=True)
            return
        reply.done()

    # -- RPC -----------------------------------------------------------------------------------
    def _rpc(self, payload: bytes, reply: Reply) -> None:
        calls: list[Any] = decode_rpc(payload, columnar=True)
        total = sum(len(c) if isinstance(c, ColumnarRun) else 1 for c in calls)
        self.metrics.add("rpc_calls", total)
        injected = self.session.server.faults.take_rpc_error(total, self.sql.database)
        if injected is not None:
            reply.error(injected).done(kind="proc", error=True)
            if injected.severity >= FATAL_SEVERITY:
                # Azure drops the link after a connection-fatal error: the client sees the
                # error, then a broken connection; the open transaction is rolled back.
                self.session.send(reply.payload())
                raise SessionClosed(f"injected error {injected.number}")
            return
        i = 0
        while i < len(calls):
            call = calls[i]
            if isinstance(call, ColumnarRun):
                if self._columnar_run(call, reply, last=i == len(calls) - 1):
                    i += 1
                else:  # the same calls, decoded row-wise, take the paths below
                    calls[i:i + 1] = call.expand()
                continue
            end = ingest.run_end(calls, i)
            if end - i > 1 and self._execute_run(calls[i:end], reply, last=end == len(calls)):
                i = end
                continue
            self._rpc_call(call, reply, last=i == len(calls) - 1)
            i += 1

    def _columnar_run(self, run: ColumnarRun, reply: Reply, *, last: bool) -> bool:
        """A parameter array decoded column-wise; False when it must go call by call."""
        try:
            stmt, names = self._lookup(run.handle)
        except SqlError:
            return False
        if not ingest.is_single_row_insert(stmt):
            return False
        mark = len(reply)
        discard = self.session.server.sink == "discard"
        try:
            done = ingest.columnar_run(None if discard else self.sql, stmt, names, run, reply,
                                       last_call_is_last=last, metrics=self.metrics)
        except SqlError:
            # A statement-level failure (permissions, a missing table...): the row-wise
            # path raises it again and answers each call as SQL Server does.
            reply.truncate(mark)
            return False
        except Exception:
            # A shape the column-wise planner does not handle: the row-wise path decides
            # (the column-wise INSERT is one statement, the last step, so nothing is stored).
            log.warning("session %d: column-wise parameter array failed for %.200s; running "
                        "row by row", self.session.spid, stmt, exc_info=True)
            reply.truncate(mark)
            return False
        if done:
            self.metrics.add("rows_discarded" if discard else "columnar_rows", run.count)
        return done

    def _execute_run(self, calls: list[RpcCall], reply: Reply, *, last: bool) -> bool:
        """A parameter array of one prepared INSERT; False when the fast path does not apply."""
        try:
            stmt, names = self._lookup(calls[0].params[0].value)
        except SqlError:
            return False
        if not ingest.is_single_row_insert(stmt):
            return False
        mark = len(reply)
        try:
            if self.session.server.sink == "discard":
                ingest.discard_run(names, calls, reply, last_call_is_last=last)
                self.metrics.add("rows_discarded", len(calls))
            else:
                ingest.execute_run(self.sql, stmt, names, calls, reply, last_call_is_last=last,
                                   metrics=self.metrics)
        except SqlError as exc:
            if exc.number == 50100:  # the engine cannot batch this INSERT: go row by row
                reply.truncate(mark)
                return False
            # A statement-level failure (permissions, missing table) hits every row alike.
            reply.truncate(mark)
            for k, _call in enumerate(calls):
                reply.error(exc).return_status(-6).done(
                    kind="proc", more=not (last and k == len(calls) - 1))
        except Exception:
            # The batching planner met a statement shape it does not handle (e.g. CAST(@P1
            # AS ...) markers raised LookupError): answer row by row instead of dropping
            # the session. Planning happens before any row is written.
            log.warning("session %d: parameter-array fast path failed for %.200s; running "
                        "row by row", self.session.spid, stmt, exc_info=True)
            reply.truncate(mark)
            return False
        return True

    def _rpc_call(self, call: RpcCall, reply: Reply, *, last: bool) -> None:
        proc = call.proc_id if call.proc_id is not None else _PROC_NAMES.get(
            (call.name or "").lower().removeprefix("sys.").removeprefix("[sys].").strip("[]"))
        name = (call.name or "").lower()
        values = [p.value for p in call.params]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("session %d: RPC %s %.300r", self.session.spid, call.name or proc,
                      values[:3])
        try:
            if proc == ProcId.SP_EXECUTESQL:
                self._execute(str(values[0]), parse_param_definitions(str(values[1] or ""))
                              if len(values) > 1 else [], values[2:], call, reply)
            elif proc == ProcId.SP_PREPARE:
                handle = self._prepare(str(values[2]), str(values[1] or ""))
                reply.return_status(0).return_int(call.params[0].name, handle)
            elif proc == ProcId.SP_PREPEXEC:
                handle = self._prepare(str(values[2]), str(values[1] or ""))
                stmt, names = self._prepared[handle]
                self._execute(stmt, names, values[3:], call, reply, status=False)
                reply.return_status(0).return_int(call.params[0].name, handle)
            elif proc == ProcId.SP_EXECUTE:
                stmt, names = self._lookup(values[0])
                self._execute(stmt, names, values[1:], call, reply)
            elif proc == ProcId.SP_UNPREPARE:
                self._prepared.pop(int(values[0]), None)
                reply.return_status(0)
            elif name.endswith("sp_describe_undeclared_parameters"):
                from azsql_emulator.describe import describe

                reply.results([describe(self.sql, str(values[0]))], nocount=False, in_proc=True)
                reply.return_status(0)
            elif name.strip("[]").endswith("sp_describe_first_result_set"):
                reply.results([describe_first_result_set(self.sql, str(values[0]))],
                              nocount=False, in_proc=True)
                reply.return_status(0)
            elif name.endswith("sp_datatype_info_100") or name.endswith("sp_datatype_info"):
                asked = int(values[0]) if values and values[0] is not None else 0
                reply.results([datatype_info(asked)], nocount=False, in_proc=True)
                reply.return_status(0)
            else:
                raise SqlError(2812, f"Could not find stored procedure '{call.name or proc}'.")
        except SqlError as exc:
            reply.error(exc).return_status(-6 if exc.severity >= 16 else 0)
        except (IndexError, TypeError, ValueError) as exc:
            reply.error(SqlError(8144, f"Procedure or function {call.name or proc} has too many "
                                       f"or too few arguments ({exc}).")).return_status(-6)
        except Exception as exc:  # an engine bug: answer with an error, keep the session
            reply.error(self._internal_error(exc, f"RPC {call.name or proc}")).return_status(-6)
        reply.done(kind="proc", more=not last)

    def _internal_error(self, exc: Exception, where: str) -> SqlError:
        log.exception("session %d: internal error in %s", self.session.spid, where)
        return SqlError(50101, f"emulator: internal error in {where}: {type(exc).__name__}: "
                               f"{exc}. This is an emulator bug; please report the statement.")

    def _prepare(self, stmt: str, definitions: str) -> int:
        handle = next(self._handles)
        self._prepared[handle] = (stmt, parse_param_definitions(definitions))
        return handle

    def _lookup(self, handle: Any) -> tuple[str, list[str]]:
        try:
            return self._prepared[int(handle)]
        except (KeyError, TypeError, ValueError):
            raise SqlError(8179, f"Could not find prepared statement with handle {handle}.") \
                from None

    def _execute(self, stmt: str, names: list[str], values: list[Any], call: RpcCall,
                 reply: Reply, *, status: bool = True) -> None:
        if len(values) > len(names):
            raise SqlError(8144, f"Procedure or function has too many arguments specified "
                                 f"({len(values)} values for {len(names)} parameters).")
        params = dict(zip(names, values, strict=False))
        was = self.sql.in_transaction
        results: list[StatementResult] = self.sql.execute(stmt, params)
        self._transaction_envchanges(was, reply)
        reply.results(results, nocount=self.sql.nocount, in_proc=True)
        if status:
            reply.return_status(0)
