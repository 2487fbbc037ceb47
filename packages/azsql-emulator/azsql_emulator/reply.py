"""Build a server response (packet type 0x04) token by token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from azsql_emulator.errors import SqlError
from azsql_emulator.sqltypes import SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import DoneStatus, EnvChangeType, FeatureId, TokenType
from azsql_emulator.tds.resultset import RowEncoder, encode_colmetadata
from azsql_emulator.tds.tokens import (
    Done,
    EnvChange,
    LoginAck,
    Message,
    ReturnValue,
    encode_done,
    encode_envchange,
    encode_error,
    encode_featureextack,
    encode_info,
    encode_loginack,
    encode_returnstatus,
    encode_returnvalue,
)
from azsql_emulator.tds.typeinfo import type_info_for

if TYPE_CHECKING:
    from azsql_emulator.sql.engine import StatementResult

SERVER_NAME = "azsql-emulator"
PROGRAM_NAME = "Microsoft SQL Server"
PROGRAM_VERSION = bytes((12, 0, 0x07, 0xD0))  # 12.0.2000, what Azure SQL Database reports
LANGUAGE = "us_english"
_INT_TYPE = type_info_for(SqlType.parse("int"))
_CMD_SELECT = 0xC1  # curcmd values SQL Server uses (2.2.7.6 leaves them to the server)

# FEATUREEXTACK data per feature the client asked for (wire notes: accepted by Driver 18).
_FEATURE_ACKS = {
    FeatureId.FEDAUTH: b"",  # SECURITYTOKEN without a nonce: no data
    # Driver 18 accepts an empty ack and then enables idle-connection recovery; an
    # InitSessionRecoveryData body built from the spec was refused ("Protocol error in
    # TDS stream"), so the recovery state is not advertised.
    FeatureId.SESSIONRECOVERY: b"",
    FeatureId.DATACLASSIFICATION: b"\x01\x00",  # version 1, not enabled
    FeatureId.UTF8_SUPPORT: b"\x00",
    FeatureId.AZURESQLDNSCACHING: b"\x00",
    FeatureId.USERAGENT: b"\x00",
}


def _b_varchar(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return bytes((len(raw) // 2,)) + raw


class Reply:
    """Accumulate tokens, then hand the payload to the session to frame and send."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def payload(self) -> bytes:
        return b"".join(self._parts)

    def __len__(self) -> int:
        """Number of tokens so far (a mark for :meth:`truncate`)."""
        return len(self._parts)

    def truncate(self, mark: int) -> None:
        """Drop the tokens added after ``mark`` (from ``len(reply)``)."""
        del self._parts[mark:]

    # -- single tokens -------------------------------------------------------------------------
    def envchange(self, kind: int, new: str | bytes, old: str | bytes) -> Reply:
        self._parts.append(encode_envchange(EnvChange(kind, new, old)))
        return self

    def error(self, exc: SqlError) -> Reply:
        for one in (exc, *exc.also):
            self._parts.append(encode_error(Message.from_sql_error(one, server=SERVER_NAME)))
        return self

    def info(self, number: int, text: str, state: int = 1) -> Reply:
        self._parts.append(encode_info(Message(number, state, 0, text, SERVER_NAME)))
        return self

    def done(self, *, more: bool = False, error: bool = False, count: int | None = None,
             attn: bool = False, kind: str = "done", curcmd: int = 0) -> Reply:
        status = DoneStatus.FINAL
        if more:
            status |= DoneStatus.MORE
        if error:
            status |= DoneStatus.ERROR
        if count is not None:
            status |= DoneStatus.COUNT
        if attn:
            status |= DoneStatus.ATTN
        token = {"done": TokenType.DONE, "proc": TokenType.DONEPROC,
                 "inproc": TokenType.DONEINPROC}[kind]
        self._parts.append(encode_done(Done(int(status), curcmd, count or 0, token)))
        return self

    def return_status(self, value: int) -> Reply:
        self._parts.append(encode_returnstatus(value))
        return self

    def inserted_rows(self, count: int, *, last_call_is_last: bool, curcmd: int,
                      rows_counted: bool = True) -> Reply:
        """``count`` successful one-row sp_execute calls: per call DONEINPROC (one row),
        RETURNSTATUS 0 and DONEPROC with MORE, the last DONEPROC without MORE when the run
        ends the message. The same tokens as :meth:`done` and :meth:`return_status` make,
        built once and repeated."""
        if count <= 0:
            return self
        one = (encode_done(Done(int(DoneStatus.MORE | (DoneStatus.COUNT if rows_counted
                                                         else DoneStatus.FINAL)),
                                curcmd, 1 if rows_counted else 0, TokenType.DONEINPROC))
               + encode_returnstatus(0))
        more = encode_done(Done(int(DoneStatus.MORE), 0, 0, TokenType.DONEPROC))
        last = encode_done(Done(int(DoneStatus.FINAL), 0, 0, TokenType.DONEPROC))
        self._parts.append((one + more) * (count - 1))
        self._parts.append(one + (last if last_call_is_last else more))
        return self

    def return_int(self, name: str, value: int, ordinal: int = 0) -> Reply:
        self._parts.append(encode_returnvalue(ReturnValue(ordinal, name, _INT_TYPE, value)))
        return self

    # -- composites ----------------------------------------------------------------------------
    def login_ack(self, *, database: str, packet_size: int,
                  client_features: Sequence[int]) -> Reply:
        """The login response Microsoft's driver gets from Azure (see tds-wire-notes.md)."""
        self.envchange(EnvChangeType.DATABASE, database, "master")
        self.info(5701, f"Changed database context to '{database}'.", state=2)
        self.envchange(EnvChangeType.SQL_COLLATION, DEFAULT_COLLATION, b"")
        self.envchange(EnvChangeType.LANGUAGE, LANGUAGE, "")
        self.info(5703, f"Changed language setting to {LANGUAGE}.")
        self._parts.append(encode_loginack(LoginAck(1, b"\x74\x00\x00\x04", PROGRAM_NAME,
                                                    PROGRAM_VERSION)))
        self.envchange(EnvChangeType.PACKET_SIZE, str(packet_size), "4096")
        acks: list[tuple[int, bytes]] = []
        for feature in client_features:
            if feature in _FEATURE_ACKS:
                acks.append((feature, _FEATURE_ACKS[FeatureId(feature)]))
        if acks:
            self._parts.append(encode_featureextack(acks))
        return self.done()

    def results(self, results: Sequence[StatementResult], *, nocount: bool,
                in_proc: bool = False) -> Reply:
        """Tokens for a batch's statement results; the last DONE is final unless in a proc."""
        kind = "inproc" if in_proc else "done"
        if not results and not in_proc:
            return self.done()
        for i, res in enumerate(results):
            more = in_proc or i < len(results) - 1
            if res.error is not None:
                self.error(res.error).done(more=more, error=True, kind=kind)
                continue
            if res.columns is not None:
                self._parts.append(encode_colmetadata(res.columns))
                encode = RowEncoder(res.columns).encode
                self._parts.extend(encode(row) for row in res.rows)
                self.done(more=more, count=len(res.rows), kind=kind, curcmd=_CMD_SELECT)
                continue
            count = None if (nocount or res.rowcount is None) else res.rowcount
            self.done(more=more, count=count, kind=kind)
        return self
