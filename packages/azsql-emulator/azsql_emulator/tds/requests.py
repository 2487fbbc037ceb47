"""Client request payloads: ALL_HEADERS (2.2.5.3), SQL batch (2.2.6.7), RPC (2.2.6.6) and
transaction manager requests (2.2.6.9)."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from azsql_emulator.tds.collation import collation_codec
from azsql_emulator.tds.columns import COLUMNAR_TYPES, ColumnarRun, WireColumn
from azsql_emulator.tds.constants import AllHeadersType, ParamStatus, TransactionRequest
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.primitives import b_varchar, checked, read_b_varchar
from azsql_emulator.tds.typeinfo import PLP_SIZE, TypeInfo, encode_type_info, read_type_info
from azsql_emulator.tds.values import encode_value, native_framing, read_value

try:  # the native decoder of parameter arrays (native/tdsfast); optional
    from azsql_emulator import _tdsfast as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a source tree without the built extension
    _native = None

_SP_EXECUTE = 12

__all__ = [
    "AllHeaders",
    "RpcCall",
    "RpcParam",
    "RpcRequest",
    "SqlBatch",
    "TmRequest",
    "decode_all_headers",
    "decode_rpc",
    "decode_sql_batch",
    "decode_tm_request",
    "encode_all_headers",
    "encode_rpc",
    "encode_sql_batch",
    "encode_tm_request",
]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<IH")  # HeaderLength (includes itself), HeaderType
_TXN = struct.Struct("<8sI")  # TransactionDescriptor, OutstandingRequestCount
_PROC_ID = struct.Struct("<HHH")  # 0xFFFF, ProcID, OptionFlags
_NAME_OPTIONS = struct.Struct("<H")
_NO_TXN = b"\x00" * 8
# Separators between calls of one RPC request: BatchFlag 0xFF (TDS 7.2+), NoExecFlag 0xFE,
# and the pre-7.2 BatchFlag 0x80 (a 128-character parameter name would collide with it).
_SEPARATORS = frozenset({0xFF, 0xFE, 0x80})


# --- ALL_HEADERS -------------------------------------------------------------------------

@dataclass(frozen=True)
class AllHeaders:
    """ALL_HEADERS: the transaction the request runs in, and optional tracing.

    :param transaction_descriptor: 8 bytes from the last ENVCHANGE begin-transaction (zeros: none).
    :param outstanding_requests: requests the client has outstanding (1 without MARS).
    :param trace_activity: 20 bytes (activity id GUID + sequence) when sent.
    :param query_notifications: raw query-notification header data when sent.
    """

    transaction_descriptor: bytes = _NO_TXN
    outstanding_requests: int = 1
    trace_activity: bytes | None = None
    query_notifications: bytes | None = None


def encode_all_headers(h: AllHeaders) -> bytes:
    """Encode ALL_HEADERS (22 bytes with the transaction descriptor alone).

    >>> len(encode_all_headers(AllHeaders()))
    22
    """
    if len(h.transaction_descriptor) != 8:
        raise ValueError("transaction descriptor must be 8 bytes")
    parts = []
    if h.query_notifications is not None:
        parts.append(_HEADER.pack(6 + len(h.query_notifications),
                                  AllHeadersType.QUERY_NOTIFICATIONS) + h.query_notifications)
    parts.append(_HEADER.pack(6 + _TXN.size, AllHeadersType.TRANSACTION_DESCRIPTOR)
                 + _TXN.pack(h.transaction_descriptor, h.outstanding_requests))
    if h.trace_activity is not None:
        if len(h.trace_activity) != 20:
            raise ValueError("trace activity must be 20 bytes")
        parts.append(_HEADER.pack(26, AllHeadersType.TRACE_ACTIVITY) + h.trace_activity)
    body = b"".join(parts)
    return _U32.pack(4 + len(body)) + body


def _read_all_headers(buf: bytes, pos: int) -> tuple[AllHeaders, int]:
    (total,) = _U32.unpack_from(buf, pos)
    end = pos + total
    if total < 4 or end > len(buf):
        raise ProtocolError(f"ALL_HEADERS length {total} does not fit the {len(buf)}-byte request")
    pos += 4
    descriptor, outstanding, trace, notifications = _NO_TXN, 1, None, None
    while pos < end:
        length, htype = _HEADER.unpack_from(buf, pos)
        if length < 6 or pos + length > end:
            raise ProtocolError(f"ALL_HEADERS header length {length} does not fit")
        data = buf[pos + 6:pos + length]
        if htype == AllHeadersType.TRANSACTION_DESCRIPTOR:
            if len(data) != _TXN.size:
                raise ProtocolError(f"transaction descriptor header of {len(data)} bytes, not 12")
            descriptor, outstanding = _TXN.unpack(data)
        elif htype == AllHeadersType.TRACE_ACTIVITY:
            if len(data) != 20:
                raise ProtocolError(f"trace activity header of {len(data)} bytes, not 20")
            trace = bytes(data)
        elif htype == AllHeadersType.QUERY_NOTIFICATIONS:
            notifications = bytes(data)
        else:
            raise ProtocolError(f"unknown ALL_HEADERS header type {htype}")
        pos += length
    return AllHeaders(descriptor, outstanding, trace, notifications), end


@checked
def decode_all_headers(buf: bytes, pos: int = 0) -> tuple[AllHeaders, int]:
    """Decode ALL_HEADERS at ``pos``; return it and the position after it."""
    return _read_all_headers(buf, pos)


# --- SQL batch ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SqlBatch:
    """A SQL batch request: headers and T-SQL text."""

    headers: AllHeaders
    text: str


def encode_sql_batch(b: SqlBatch) -> bytes:
    """Encode a SQL batch payload."""
    return encode_all_headers(b.headers) + b.text.encode("utf-16-le", "surrogatepass")


@checked
def decode_sql_batch(payload: bytes) -> SqlBatch:
    """Decode a SQL batch payload (ALL_HEADERS, then UTF-16LE text)."""
    headers, pos = _read_all_headers(payload, 0)
    if (len(payload) - pos) % 2:
        raise ProtocolError("SQL batch text has an odd number of bytes")
    return SqlBatch(headers, str(payload[pos:], "utf-16-le", "surrogatepass"))


# --- transaction manager -----------------------------------------------------------------

@dataclass(frozen=True)
class TmRequest:
    """A transaction manager request.

    :param isolation_level: TM_BEGIN_XACT isolation level.
    :param name: transaction (or savepoint) name for BEGIN, COMMIT, ROLLBACK, SAVE.
    :param flags: COMMIT/ROLLBACK XACT_FLAGS; bit 0x01 (fBeginXact) starts a new transaction.
    :param new_isolation_level: isolation level of that new transaction.
    :param new_name: name of that new transaction.
    :param data: raw payload of the other requests (DTC address, propagate, promote).
    """

    headers: AllHeaders
    request_type: int
    isolation_level: int = 0
    name: str = ""
    flags: int = 0
    new_isolation_level: int = 0
    new_name: str = ""
    data: bytes = b""

    @property
    def begin_new(self) -> bool:
        """True when COMMIT/ROLLBACK asks the server to begin a new transaction."""
        return bool(self.flags & 0x01)


_NAMED = frozenset({TransactionRequest.TM_COMMIT_XACT, TransactionRequest.TM_ROLLBACK_XACT})
_KNOWN_TM = frozenset(int(t) for t in TransactionRequest)


def encode_tm_request(r: TmRequest) -> bytes:
    """Encode a transaction manager request payload."""
    out = bytearray(encode_all_headers(r.headers))
    out += _U16.pack(r.request_type)
    if r.request_type == TransactionRequest.TM_BEGIN_XACT:
        out.append(r.isolation_level)
        out += b_varchar(r.name)
    elif r.request_type in _NAMED:
        out += b_varchar(r.name)
        out.append(r.flags)
        if r.flags & 0x01:
            out.append(r.new_isolation_level)
            out += b_varchar(r.new_name)
    elif r.request_type == TransactionRequest.TM_SAVE_XACT:
        out += b_varchar(r.name)
    else:
        out += r.data
    return bytes(out)


@checked
def decode_tm_request(payload: bytes) -> TmRequest:
    """Decode a transaction manager request payload."""
    headers, pos = _read_all_headers(payload, 0)
    (rtype,) = _U16.unpack_from(payload, pos)
    pos += 2
    iso, name, flags, new_iso, new_name, data = 0, "", 0, 0, "", b""
    if rtype == TransactionRequest.TM_BEGIN_XACT:
        iso = payload[pos]
        name, pos = read_b_varchar(payload, pos + 1)
    elif rtype in _NAMED:
        name, pos = read_b_varchar(payload, pos)
        flags = payload[pos]
        pos += 1
        if flags & 0x01:
            new_iso = payload[pos]
            new_name, pos = read_b_varchar(payload, pos + 1)
    elif rtype == TransactionRequest.TM_SAVE_XACT:
        name, pos = read_b_varchar(payload, pos)
    elif rtype in _KNOWN_TM:
        data, pos = bytes(payload[pos:]), len(payload)
    else:
        raise ProtocolError(f"unknown transaction manager request type {rtype}")
    if pos != len(payload):
        raise ProtocolError(f"{len(payload) - pos} stray bytes after transaction manager request")
    return TmRequest(headers, rtype, iso, name, flags, new_iso, new_name, data)


# --- RPC ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RpcParam:
    """One RPC parameter: name ('' when positional), status flags, wire type and value."""

    name: str
    status: int
    type_info: TypeInfo
    value: Any

    @property
    def is_output(self) -> bool:
        return bool(self.status & ParamStatus.BY_REF_VALUE)


@dataclass(frozen=True)
class RpcCall:
    """One procedure call: by ``proc_id`` (sp_execute = 12...) or by ``name``."""

    name: str = ""
    proc_id: int | None = None
    options: int = 0
    params: list[RpcParam] = field(default_factory=list)


class FastCall(tuple):
    """An sp_execute call decoded natively (see :func:`decode_rpc`): a tuple of its
    parameter values, the handle first. Reads like an :class:`RpcCall`; ``params`` is
    built on demand from the run's shared metadata (class attributes of a per-run
    subclass), so the parameter-array path never builds per-parameter objects."""

    __slots__ = ()
    name = ""
    proc_id: int | None = 12
    options = 0
    param_meta: tuple[tuple[str, int, TypeInfo], ...] = ()

    @property
    def params(self) -> list[RpcParam]:
        return [RpcParam(n, st, ti, v)
                for (n, st, ti), v in zip(self.param_meta, self, strict=True)]


def call_values(call: RpcCall | FastCall) -> tuple[Any, ...] | list[Any]:
    """The parameter values of a call, without building parameter objects when it can."""
    if isinstance(call, FastCall):
        return call
    return [p.value for p in call.params]


class RpcRequest(list[RpcCall]):
    """The calls of one RPC request message, with its ALL_HEADERS as ``headers``."""

    def __init__(self, calls: Sequence[RpcCall] = (), headers: AllHeaders | None = None) -> None:
        super().__init__(calls)
        self.headers = headers or AllHeaders()


def encode_rpc(calls: Sequence[RpcCall], headers: AllHeaders | None = None) -> bytes:
    """Encode an RPC request payload; calls are separated by the 0xFF batch flag."""
    out = [encode_all_headers(headers or AllHeaders())]
    for i, call in enumerate(calls):
        if i:
            out.append(b"\xff")
        if call.proc_id is not None:
            out.append(_PROC_ID.pack(0xFFFF, call.proc_id, call.options))
        else:
            raw = call.name.encode("utf-16-le", "surrogatepass")
            if not raw or len(raw) >= 0x1FFFE:
                raise ValueError("RPC procedure name must have 1-65534 characters")
            out.append(_U16.pack(len(raw) // 2) + raw + _NAME_OPTIONS.pack(call.options))
        for p in call.params:
            out.append(b_varchar(p.name) + bytes((p.status,)) + encode_type_info(p.type_info)
                       + encode_value(p.type_info, p.value))
    return b"".join(out)


@checked
def decode_rpc(payload: bytes, *, columnar: bool = False) -> RpcRequest:
    """Decode an RPC request payload into its calls (``.headers`` holds ALL_HEADERS).

    >>> req = decode_rpc(encode_rpc([RpcCall(proc_id=12, params=[
    ...     RpcParam("", 0, TypeInfo(0x26, 4), 5)])]))
    >>> req[0].proc_id, req[0].params[0].value
    (12, 5)

    :param columnar: decode parameter arrays column-wise where the native decoder can:
        such a run of calls is then one :class:`~azsql_emulator.tds.columns.ColumnarRun` item.
    """
    buf = bytes(payload)
    headers, pos = _read_all_headers(buf, 0)
    calls, pos = _read_calls(buf, pos, columnar)
    return RpcRequest(calls, headers)


def _expand_run(buf: bytes, start: int) -> list[Any]:
    return _read_calls(buf, start, False)[0]


def _columnar_run(buf: bytes, call_start: int, first: RpcCall, metas: list[bytes]
                  ) -> ColumnarRun | None:
    """The calls from ``first`` on, decoded column-wise, when there are 2 or more."""
    infos = [p.type_info for p in first.params]
    if any(ti.type not in COLUMNAR_TYPES or ti.size == PLP_SIZE for ti in infos):
        return None
    if any(ti.type in _CODE_PAGE_TEXT and not ascii_safe(collation_codec(ti.collation))
           for ti in infos):
        return None
    count, end, cols = _native.decode_columns(
        buf, call_start, True, buf[call_start:call_start + 6], metas,
        [ti.type for ti in infos], [ti.scale for ti in infos])
    if count < 2:
        return None
    return ColumnarRun(first, count, [WireColumn(ti, *c) for ti, c in zip(infos, cols,
                                                                           strict=True)],
                       buf, call_start, end, _expand_run)


_CODE_PAGE_TEXT = frozenset({0xA7, 0xAF})  # BIGVARCHR, BIGCHAR
_ASCII = bytes(range(128))


@functools.cache
def ascii_safe(codec: str) -> bool:
    """True when the code page reads ASCII bytes as ASCII (decode_columns keeps them)."""
    try:
        return str(_ASCII, codec, "replace") == _ASCII.decode("ascii")
    except LookupError:
        return False


def _read_calls(buf: bytes, pos: int, columnar: bool) -> tuple[list[Any], int]:
    calls: list[Any] = []
    n = len(buf)
    u16 = _U16.unpack_from
    read_ti = read_type_info
    read_val = read_value
    encrypted = int(ParamStatus.ENCRYPTED)  # a plain int: IntFlag's & costs µs per parameter
    while True:
        call_start = pos
        (name_len,) = u16(buf, pos)
        if name_len == 0xFFFF:
            proc_id, options = _PROC_ID.unpack_from(buf, pos)[1:]
            name = ""
            pos += 6
        else:
            end = pos + 2 + 2 * name_len
            if end + 2 > n or name_len == 0:
                raise ProtocolError(f"RPC procedure name of {name_len} characters does not fit")
            name = str(buf[pos + 2:end], "utf-16-le", "surrogatepass")
            proc_id = None
            (options,) = u16(buf, end)
            pos = end + 2
        params: list[RpcParam] = []
        metas: list[bytes] = []
        while pos < n and buf[pos] not in _SEPARATORS:
            meta_start = pos
            pname_end = pos + 1 + 2 * buf[pos]
            if pname_end >= n:
                raise ProtocolError("RPC parameter name runs past the end of the request")
            pname = str(buf[pos + 1:pname_end], "utf-16-le", "surrogatepass") \
                if pname_end > pos + 1 else ""
            status = buf[pname_end]
            if status & encrypted:
                raise ProtocolError("encrypted RPC parameters (Always Encrypted) are not supported")
            ti, pos = read_ti(buf, pname_end + 1)
            metas.append(buf[meta_start:pos])
            value, pos = read_val(ti, buf, pos)
            params.append(RpcParam(pname, status, ti, value))
        call = RpcCall(name, proc_id, options, params)
        run = None
        if columnar and proc_id == _SP_EXECUTE and params and _native is not None and pos < n:
            run = _columnar_run(buf, call_start, call, metas)
        if run is not None:
            calls.append(run)
            pos = run.end
        else:
            calls.append(call)
        if run is None and proc_id == _SP_EXECUTE and params and _native is not None \
                and pos < n:
            # a parameter array: the calls that follow repeat this one's layout
            infos = [p.type_info for p in params]
            framing = [native_framing(ti) for ti in infos]
            rows = []
            if False not in framing:
                rows, pos = _native.decode_run(buf, pos, buf[call_start:call_start + 6],
                                               metas, [ti.type for ti in infos], framing,
                                               infos)
            if rows:
                kind = type("FastCall", (FastCall,), {
                    "__slots__": (), "options": options,
                    "param_meta": tuple((p.name, p.status, p.type_info) for p in params)})
                calls.extend(map(kind, rows))
        if pos >= n:
            break
        pos += 1  # batch flag
        if pos >= n:
            break  # tolerate a trailing separator
    if pos > n:
        raise ProtocolError("RPC request truncated")
    return calls, pos
