"""Server data-stream tokens (2.2.7): one encode/decode pair per token, and a stream parser.

Every ``decode_x(buf, pos)`` expects the token byte at ``buf[pos]`` and returns
``(token, position after it)``; malformed bytes raise ProtocolError.

>>> data = encode_done(Done(DoneStatus.COUNT, 0xC1, 1))
>>> decode_token_stream(data)
[Done(status=16, curcmd=193, rowcount=1, kind=253)]
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from azsql_emulator.errors import SqlError
from azsql_emulator.tds.constants import ColumnFlag, DoneStatus, EnvChangeType, TokenType
from azsql_emulator.tds.login7 import FeatureExt, decode_features, encode_features
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.primitives import (
    U16,
    U32,
    b_varchar,
    body_bounds,
    check_end,
    checked,
    expect_token,
    read_b_varchar,
    read_us_varchar,
    us_varchar,
    with_length,
)
from azsql_emulator.tds.resultset import (
    ColMetadata,
    Column,
    Row,
    RowEncoder,
    _decode_row,
    decode_colmetadata,
    decode_row,
    encode_colmetadata,
    encode_row,
)
from azsql_emulator.tds.typeinfo import TypeInfo, encode_type_info, read_type_info
from azsql_emulator.tds.values import LOW_LEVEL_ERRORS, encode_column_value, read_column_value

__all__ = [
    "ColMetadata",
    "Column",
    "Done",
    "EnvChange",
    "ErrorMessage",
    "FeatureExtAck",
    "InfoMessage",
    "LoginAck",
    "Message",
    "Order",
    "ReturnStatus",
    "ReturnValue",
    "Row",
    "RowEncoder",
    "UnknownToken",
    "decode_colmetadata",
    "decode_done",
    "decode_envchange",
    "decode_featureextack",
    "decode_loginack",
    "decode_message",
    "decode_order",
    "decode_returnstatus",
    "decode_returnvalue",
    "decode_row",
    "decode_token_stream",
    "encode_colmetadata",
    "encode_done",
    "encode_envchange",
    "encode_error",
    "encode_featureextack",
    "encode_info",
    "encode_loginack",
    "encode_message",
    "encode_order",
    "encode_returnstatus",
    "encode_returnvalue",
    "encode_row",
]

_I32 = struct.Struct("<i")
_DONE = struct.Struct("<BHHQ")
_MSG_HEAD = struct.Struct("<iBB")
_RETVAL_HEAD = struct.Struct("<BIH")


# --- ENVCHANGE (2.2.7.9) -----------------------------------------------------------------

@dataclass(frozen=True)
class EnvChange:
    """An environment change: str values for names/sizes, bytes for collation and transactions."""

    type: int
    new: str | bytes = ""
    old: str | bytes = ""


_B_VARCHAR_ENV = frozenset({EnvChangeType.DATABASE, EnvChangeType.LANGUAGE, EnvChangeType.CHARSET,
                            EnvChangeType.PACKET_SIZE, EnvChangeType.UNICODE_SORTING_LOCAL_ID,
                            EnvChangeType.UNICODE_SORTING_FLAGS,
                            EnvChangeType.REAL_TIME_LOG_SHIPPING,
                            EnvChangeType.USER_INSTANCE_STARTED})


def _env_kinds(t: int) -> tuple[str, str]:
    if t in _B_VARCHAR_ENV:
        return "b_varchar", "b_varchar"
    if t == EnvChangeType.PROMOTE_TRANSACTION:
        return "l_varbyte", "b_varbyte"
    if t == EnvChangeType.ROUTING:
        return "us_varbyte", "us_varbyte"
    return "b_varbyte", "b_varbyte"


def _put(kind: str, v: str | bytes) -> bytes:
    if kind == "b_varchar":
        return b_varchar(str(v))
    raw = bytes(v)  # type: ignore[arg-type]
    if kind == "b_varbyte":
        if len(raw) > 255:
            raise ValueError("B_VARBYTE longer than 255 bytes")
        return bytes((len(raw),)) + raw
    if kind == "us_varbyte":
        return U16.pack(len(raw)) + raw
    return U32.pack(len(raw)) + raw


def _get(kind: str, buf: bytes, pos: int) -> tuple[str | bytes, int]:
    if kind == "b_varchar":
        return read_b_varchar(buf, pos)
    if kind == "b_varbyte":
        start, n = pos + 1, buf[pos]
    elif kind == "us_varbyte":
        start, n = pos + 2, U16.unpack_from(buf, pos)[0]
    else:
        start, n = pos + 4, U32.unpack_from(buf, pos)[0]
    if start + n > len(buf):
        raise ProtocolError("ENVCHANGE value runs past the end of the data")
    return bytes(buf[start:start + n]), start + n


def encode_envchange(e: EnvChange) -> bytes:
    """Encode an ENVCHANGE token.

    >>> encode_envchange(EnvChange(EnvChangeType.PACKET_SIZE, "8000", "4096")).hex()
    'e3130004043800300030003000043400300039003600'
    """
    new_kind, old_kind = _env_kinds(e.type)
    return with_length(TokenType.ENVCHANGE,
                        bytes((e.type,)) + _put(new_kind, e.new) + _put(old_kind, e.old))


@checked
def decode_envchange(buf: bytes, pos: int = 0) -> tuple[EnvChange, int]:
    """Decode an ENVCHANGE token."""
    pos, end = body_bounds(buf, pos, TokenType.ENVCHANGE)
    t = buf[pos]
    new_kind, old_kind = _env_kinds(t)
    new, p = _get(new_kind, buf, pos + 1)
    old, p = _get(old_kind, buf, p)
    check_end(p, end, TokenType.ENVCHANGE)
    return EnvChange(t, new, old), end


# --- ERROR / INFO (2.2.7.10, 2.2.7.13) ---------------------------------------------------

@dataclass(frozen=True)
class Message:
    """An ERROR or INFO message: number, state, class (severity), text, server, proc, line."""

    number: int
    state: int = 1
    severity: int = 16
    text: str = ""
    server: str = ""
    procedure: str = ""
    line: int = 1

    @classmethod
    def from_sql_error(cls, e: SqlError, *, server: str = "", procedure: str = "",
                       line: int = 1) -> Message:
        """Build the message for a SqlError raised by the emulator."""
        return cls(e.number, e.state, e.severity, e.message, server, procedure, line)


@dataclass(frozen=True)
class ErrorMessage(Message):
    """A decoded ERROR token (0xAA)."""


@dataclass(frozen=True)
class InfoMessage(Message):
    """A decoded INFO token (0xAB)."""


def encode_message(token: int, m: Message) -> bytes:
    """Encode ``m`` as an ERROR (0xAA) or INFO (0xAB) token."""
    body = (_MSG_HEAD.pack(m.number, m.state, m.severity) + us_varchar(m.text)
            + b_varchar(m.server) + b_varchar(m.procedure) + _I32.pack(m.line))
    return with_length(token, body)


def encode_error(m: Message) -> bytes:
    """Encode an ERROR token."""
    return encode_message(TokenType.ERROR, m)


def encode_info(m: Message) -> bytes:
    """Encode an INFO token."""
    return encode_message(TokenType.INFO, m)


@checked
def decode_message(buf: bytes, pos: int = 0) -> tuple[Message, int]:
    """Decode an ERROR or INFO token into ErrorMessage / InfoMessage."""
    token = buf[pos]
    if token not in (TokenType.ERROR, TokenType.INFO):
        raise ProtocolError(f"expected ERROR or INFO token, got 0x{token:02x}")
    p, end = body_bounds(buf, pos, token)
    number, state, severity = _MSG_HEAD.unpack_from(buf, p)
    text, p = read_us_varchar(buf, p + _MSG_HEAD.size)
    server, p = read_b_varchar(buf, p)
    procedure, p = read_b_varchar(buf, p)
    (line,) = _I32.unpack_from(buf, p)
    check_end(p + 4, end, token)
    cls = ErrorMessage if token == TokenType.ERROR else InfoMessage
    return cls(number, state, severity, text, server, procedure, line), end


# --- LOGINACK (2.2.7.14) -----------------------------------------------------------------

@dataclass(frozen=True)
class LoginAck:
    """LOGINACK: interface (1 = T-SQL), TDS version as sent (big-endian), program name/version."""

    interface: int = 1
    tds_version: bytes = b"\x74\x00\x00\x04"
    prog_name: str = "Microsoft SQL Server"
    prog_version: bytes = b"\x10\x00\x10\x00"  # major, minor, build high, build low


def encode_loginack(a: LoginAck) -> bytes:
    """Encode a LOGINACK token."""
    if len(a.tds_version) != 4 or len(a.prog_version) != 4:
        raise ValueError("LOGINACK versions must be 4 bytes")
    body = bytes((a.interface,)) + a.tds_version + b_varchar(a.prog_name) + a.prog_version
    return with_length(TokenType.LOGINACK, body)


@checked
def decode_loginack(buf: bytes, pos: int = 0) -> tuple[LoginAck, int]:
    """Decode a LOGINACK token."""
    p, end = body_bounds(buf, pos, TokenType.LOGINACK)
    interface = buf[p]
    version = bytes(buf[p + 1:p + 5])
    name, p = read_b_varchar(buf, p + 5)
    prog = bytes(buf[p:p + 4])
    check_end(p + 4, end, TokenType.LOGINACK)
    return LoginAck(interface, version, name, prog), end


# --- FEATUREEXTACK (2.2.7.11) ------------------------------------------------------------

@dataclass(frozen=True)
class FeatureExtAck:
    """Acknowledged features: (feature_id, data) pairs."""

    features: list[FeatureExt] = field(default_factory=list)


def encode_featureextack(a: FeatureExtAck | Sequence[tuple[int, bytes]]) -> bytes:
    """Encode FEATUREEXTACK from an ack or a list of (feature_id, data)."""
    feats = a.features if isinstance(a, FeatureExtAck) else a
    return bytes((TokenType.FEATUREEXTACK,)) + encode_features([FeatureExt(*f) for f in feats])


@checked
def decode_featureextack(buf: bytes, pos: int = 0) -> tuple[FeatureExtAck, int]:
    """Decode FEATUREEXTACK."""
    expect_token(buf, pos, TokenType.FEATUREEXTACK)
    feats, pos = decode_features(buf, pos + 1)
    return FeatureExtAck(feats), pos


# --- DONE, DONEPROC, DONEINPROC (2.2.7.6-8) ----------------------------------------------

@dataclass(frozen=True)
class Done:
    """DONE / DONEPROC / DONEINPROC (``kind`` is the token byte)."""

    status: int = DoneStatus.FINAL
    curcmd: int = 0
    rowcount: int = 0
    kind: int = TokenType.DONE


_DONE_KINDS = frozenset({TokenType.DONE, TokenType.DONEPROC, TokenType.DONEINPROC})


def encode_done(d: Done) -> bytes:
    """Encode a DONE-family token (13 bytes)."""
    return _DONE.pack(d.kind, d.status, d.curcmd, d.rowcount)


@checked
def decode_done(buf: bytes, pos: int = 0) -> tuple[Done, int]:
    """Decode a DONE, DONEPROC or DONEINPROC token."""
    kind, status, curcmd, rowcount = _DONE.unpack_from(buf, pos)
    if kind not in _DONE_KINDS:
        raise ProtocolError(f"expected a DONE token, got 0x{kind:02x}")
    return Done(status, curcmd, rowcount, kind), pos + _DONE.size


# --- RETURNSTATUS (2.2.7.18) -------------------------------------------------------------

@dataclass(frozen=True)
class ReturnStatus:
    """RETURNSTATUS: a procedure's return value."""

    value: int = 0


def encode_returnstatus(r: ReturnStatus | int) -> bytes:
    """Encode RETURNSTATUS."""
    return bytes((TokenType.RETURNSTATUS,)) + _I32.pack(r.value if isinstance(r, ReturnStatus)
                                                        else r)


@checked
def decode_returnstatus(buf: bytes, pos: int = 0) -> tuple[ReturnStatus, int]:
    """Decode RETURNSTATUS."""
    expect_token(buf, pos, TokenType.RETURNSTATUS)
    return ReturnStatus(_I32.unpack_from(buf, pos + 1)[0]), pos + 5


# --- ORDER (2.2.7.17) --------------------------------------------------------------------

@dataclass(frozen=True)
class Order:
    """ORDER: 1-based ordinals of the ORDER BY columns."""

    columns: tuple[int, ...] = ()


def encode_order(o: Order) -> bytes:
    """Encode ORDER."""
    return with_length(TokenType.ORDER, b"".join(U16.pack(c) for c in o.columns))


@checked
def decode_order(buf: bytes, pos: int = 0) -> tuple[Order, int]:
    """Decode ORDER."""
    p, end = body_bounds(buf, pos, TokenType.ORDER)
    if (end - p) % 2:
        raise ProtocolError("ORDER length is odd")
    return Order(tuple(U16.unpack_from(buf, i)[0] for i in range(p, end, 2))), end


# --- RETURNVALUE (2.2.7.19) --------------------------------------------------------------

@dataclass(frozen=True)
class ReturnValue:
    """RETURNVALUE: an output parameter (status 0x01) or UDF result (0x02)."""

    ordinal: int
    name: str
    type_info: TypeInfo
    value: Any
    status: int = 0x01
    user_type: int = 0
    flags: int = ColumnFlag.NULLABLE


def encode_returnvalue(r: ReturnValue) -> bytes:
    """Encode RETURNVALUE (no length field: the value's own framing ends it)."""
    return (bytes((TokenType.RETURNVALUE,)) + U16.pack(r.ordinal) + b_varchar(r.name)
            + _RETVAL_HEAD.pack(r.status, r.user_type, r.flags) + encode_type_info(r.type_info)
            + encode_column_value(r.type_info, r.value))


@checked
def decode_returnvalue(buf: bytes, pos: int = 0) -> tuple[ReturnValue, int]:
    """Decode RETURNVALUE."""
    expect_token(buf, pos, TokenType.RETURNVALUE)
    (ordinal,) = U16.unpack_from(buf, pos + 1)
    name, p = read_b_varchar(buf, pos + 3)
    status, user_type, flags = _RETVAL_HEAD.unpack_from(buf, p)
    ti, p = read_type_info(buf, p + _RETVAL_HEAD.size)
    value, p = read_column_value(ti, buf, p)
    return ReturnValue(ordinal, name, ti, value, status, user_type, flags), p


# --- tokens kept raw, and the stream parser ----------------------------------------------

@dataclass(frozen=True)
class UnknownToken:
    """A token the codec does not interpret (COLINFO, TABNAME, SSPI, SESSIONSTATE...)."""

    type: int
    data: bytes


_RAW_U16 = frozenset({TokenType.COLINFO, TokenType.TABNAME, TokenType.SSPI})
_RAW_U32 = frozenset({TokenType.SESSIONSTATE, TokenType.FEDAUTHINFO})
_I32_LEN = struct.Struct("<I")


def decode_token_stream(data: bytes) -> list[Any]:
    """Parse a whole server response into token objects, in order.

    ROW/NBCROW are decoded with the latest COLMETADATA. Tokens: EnvChange, ErrorMessage,
    InfoMessage, LoginAck, FeatureExtAck, Done, ReturnStatus, ReturnValue, ColMetadata,
    Row, Order, UnknownToken.
    """
    buf = bytes(data)
    out: list[Any] = []
    tis: list[TypeInfo] | None = None
    pos = 0
    n = len(buf)
    try:
        while pos < n:
            t = buf[pos]
            tok: Any
            if t == TokenType.ROW or t == TokenType.NBCROW:
                if tis is None:
                    raise ProtocolError(f"row token at byte {pos} before any COLMETADATA")
                tok, pos = _decode_row(buf, pos, tis)
            elif t in _DONE_KINDS:
                tok, pos = decode_done(buf, pos)
            elif t == TokenType.COLMETADATA:
                tok, pos = decode_colmetadata(buf, pos)
                if tok.columns is not None:
                    tis = [c.type_info for c in tok.columns]
            elif t in _DECODERS:
                tok, pos = _DECODERS[t](buf, pos)
            elif t in _RAW_U16 or t in _RAW_U32:
                size = (U16 if t in _RAW_U16 else _I32_LEN).unpack_from(buf, pos + 1)[0]
                start = pos + 1 + (2 if t in _RAW_U16 else 4)
                if start + size > n:
                    raise ProtocolError(f"token 0x{t:02x} runs past the end of the data")
                tok, pos = UnknownToken(t, buf[start:start + size]), start + size
            else:
                raise ProtocolError(f"unknown or unsupported token 0x{t:02x} at byte {pos}")
            out.append(tok)
    except LOW_LEVEL_ERRORS as e:
        raise ProtocolError(f"malformed token stream at byte {pos}: {e}") from None
    return out


_DECODERS: dict[int, Callable[[bytes, int], tuple[Any, int]]] = {
    TokenType.ENVCHANGE: decode_envchange, TokenType.ERROR: decode_message,
    TokenType.INFO: decode_message, TokenType.LOGINACK: decode_loginack,
    TokenType.FEATUREEXTACK: decode_featureextack, TokenType.RETURNSTATUS: decode_returnstatus,
    TokenType.RETURNVALUE: decode_returnvalue, TokenType.ORDER: decode_order,
}
