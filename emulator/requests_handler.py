"""Requests after login: SQL batches, RPCs, transaction-manager requests, attention."""

from __future__ import annotations

import itertools
import logging
import re
import struct
from typing import TYPE_CHECKING, Any

from emulator.errors import SqlError
from emulator.reply import Reply
from emulator.tds.constants import EnvChangeType, PacketType, ProcId, TransactionRequest
from emulator.tds.packet import ProtocolError
from emulator.tds.requests import RpcCall, decode_rpc, decode_sql_batch, decode_tm_request

if TYPE_CHECKING:
    from emulator.session import Session
    from emulator.sql.engine import SqlSession, StatementResult
    from emulator.tds.packet import Message

log = logging.getLogger("emulator.requests")

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

    def handle(self, msg: Message) -> None:
        reply = Reply()
        if msg.reset_connection:
            self._reset(reply)
        if msg.type == PacketType.SQL_BATCH:
            self.metrics.add("sql_batches")
            self._sql_batch(msg.payload, reply)
        elif msg.type == PacketType.RPC:
            self._rpc(msg.payload, reply)
        elif msg.type == PacketType.TRANSACTION_MANAGER:
            self._transaction(msg.payload, reply)
        elif msg.type == PacketType.ATTENTION:
            # Requests run to completion before the next is read, so there is nothing
            # left to cancel; acknowledge so the client stops waiting.
            reply.done(attn=True)
        else:
            raise ProtocolError(f"unexpected packet type 0x{msg.type:02x} after login")
        payload = reply.payload()
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
        was = self.sql.in_transaction
        try:
            results = self.sql.execute(batch.text)
        except SqlError as exc:
            reply.error(exc).done(error=True)
            return
        self._transaction_envchanges(was, reply)
        reply.results(results, nocount=self.sql.nocount)

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
        calls = decode_rpc(payload)
        self.metrics.add("rpc_calls", len(calls))
        for i, call in enumerate(calls):
            self._rpc_call(call, reply, last=i == len(calls) - 1)

    def _rpc_call(self, call: RpcCall, reply: Reply, *, last: bool) -> None:
        proc = call.proc_id if call.proc_id is not None else _PROC_NAMES.get(
            (call.name or "").lower().removeprefix("sys.").removeprefix("[sys].").strip("[]"))
        name = (call.name or "").lower()
        values = [p.value for p in call.params]
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
            elif name.endswith("sp_datatype_info_100") or name.endswith("sp_datatype_info"):
                # The driver only caches what it gets; an empty answer is accepted.
                reply.return_status(0)
            else:
                raise SqlError(2812, f"Could not find stored procedure '{call.name or proc}'.")
        except SqlError as exc:
            reply.error(exc).return_status(-6 if exc.severity >= 16 else 0)
        except (IndexError, TypeError, ValueError) as exc:
            reply.error(SqlError(8144, f"Procedure or function {call.name or proc} has too many "
                                       f"or too few arguments ({exc}).")).return_status(-6)
        reply.done(kind="proc", more=not last)

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
