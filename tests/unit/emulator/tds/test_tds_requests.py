"""Client requests: ALL_HEADERS, SQL batch, transaction manager, RPC (golden and round trips)."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.sqltypes import SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import DataType, ProcId, TransactionRequest
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.requests import (
    AllHeaders,
    RpcCall,
    RpcParam,
    SqlBatch,
    TmRequest,
    decode_all_headers,
    decode_rpc,
    decode_sql_batch,
    decode_tm_request,
    encode_all_headers,
    encode_rpc,
    encode_sql_batch,
    encode_tm_request,
)
from azsql_emulator.tds.typeinfo import PLP_SIZE, TypeInfo, type_info_for

TXN = bytes.fromhex("1122334455667788")
COLL = DEFAULT_COLLATION.hex()
# 22-byte ALL_HEADERS: the transaction descriptor header alone (what ODBC Driver 18 sends).
HEADERS = "16000000" "12000000" "0200" + TXN.hex() + "01000000"


def _u16(s: str) -> str:
    return s.encode("utf-16-le").hex()


def test_all_headers_golden() -> None:
    h = AllHeaders(TXN, 1)
    assert encode_all_headers(h).hex() == HEADERS
    assert decode_all_headers(bytes.fromhex(HEADERS)) == (h, 22)


def test_all_headers_with_trace_activity() -> None:
    h = AllHeaders(TXN, 2, trace_activity=bytes(range(20)), query_notifications=b"\x01\x00a\x00")
    raw = encode_all_headers(h)
    assert decode_all_headers(raw) == (h, len(raw))


def test_sql_batch_golden() -> None:
    raw = bytes.fromhex(HEADERS + _u16("SELECT 1"))
    batch = decode_sql_batch(raw)
    assert batch == SqlBatch(AllHeaders(TXN, 1), "SELECT 1")
    assert encode_sql_batch(batch) == raw


def test_tm_begin_golden() -> None:
    raw = bytes.fromhex(HEADERS + "0500" "00" "00")
    r = decode_tm_request(raw)
    assert (r.request_type, r.isolation_level, r.name) == (TransactionRequest.TM_BEGIN_XACT, 0, "")
    assert encode_tm_request(r) == raw


def test_tm_commit_and_begin_new_golden() -> None:
    raw = bytes.fromhex(HEADERS + "0700" "00" "01" "02" "02" + _u16("tx"))
    r = decode_tm_request(raw)
    assert r.request_type == TransactionRequest.TM_COMMIT_XACT
    assert r.begin_new and r.new_isolation_level == 2 and r.new_name == "tx"
    assert encode_tm_request(r) == raw
    rollback = decode_tm_request(bytes.fromhex(HEADERS + "0800" "00" "00"))
    assert rollback.request_type == TransactionRequest.TM_ROLLBACK_XACT and not rollback.begin_new


tm_requests = st.one_of(
    st.builds(TmRequest, st.just(AllHeaders()), st.just(TransactionRequest.TM_BEGIN_XACT),
              isolation_level=st.integers(0, 5), name=st.text(max_size=10)),
    st.builds(TmRequest, st.just(AllHeaders(TXN)),
              st.sampled_from([TransactionRequest.TM_COMMIT_XACT,
                               TransactionRequest.TM_ROLLBACK_XACT]),
              name=st.text(max_size=10), flags=st.just(1), new_isolation_level=st.integers(0, 5),
              new_name=st.text(max_size=10)),
    st.builds(TmRequest, st.just(AllHeaders(TXN)), st.just(TransactionRequest.TM_SAVE_XACT),
              name=st.text(max_size=10)),
    st.builds(TmRequest, st.just(AllHeaders()), st.just(TransactionRequest.TM_PROPAGATE_XACT),
              data=st.binary(max_size=20)),
)


@given(tm_requests)
def test_tm_round_trip(r: TmRequest) -> None:
    assert decode_tm_request(encode_tm_request(r)) == r


@given(st.text(), st.binary(min_size=8, max_size=8), st.integers(0, 2**32 - 1))
def test_sql_batch_round_trip(text: str, txn: bytes, outstanding: int) -> None:
    b = SqlBatch(AllHeaders(txn, outstanding), text)
    assert decode_sql_batch(encode_sql_batch(b)) == b


def _param(name: str, status: int, type_info: str, value: str) -> str:
    n = name.encode("utf-16-le")
    return f"{len(n) // 2:02x}" + n.hex() + f"{status:02x}" + type_info + value


def test_fast_executemany_sp_execute_golden() -> None:
    """ONE RPC message, one sp_execute call per row, separated by 0xFF (tds-wire-notes)."""
    calls = []
    for i, (n, s) in enumerate([(1, "a"), (2, None), (3, "ccc")]):
        nv = "ffff" if s is None else struct.pack("<H", 2 * len(s)).hex() + _u16(s)
        calls.append("ffff" "0c00" "0000"
                     + _param("", 0, "2604", "04" + "05000000")  # the handle
                     + _param("", 0, "2604", "04" + struct.pack("<i", n).hex())
                     + _param("", 0, "e76400" + COLL, nv))
        assert i < 3
    raw = bytes.fromhex(HEADERS + "ff".join(calls))
    req = decode_rpc(raw)
    assert req.headers == AllHeaders(TXN, 1)
    assert [c.proc_id for c in req] == [ProcId.SP_EXECUTE] * 3
    assert [[p.value for p in c.params] for c in req] == [[5, 1, "a"], [5, 2, None], [5, 3, "ccc"]]
    assert req[0].params[2].type_info == TypeInfo(DataType.NVARCHAR, 100,
                                                   collation=DEFAULT_COLLATION)
    assert encode_rpc(req, req.headers) == raw


def test_sp_prepare_golden() -> None:
    sql = "INSERT INTO t VALUES (@P1,@P2)"
    decl = "@P1 int,@P2 nvarchar(50)"

    def plp(s: str) -> str:
        b = s.encode("utf-16-le")
        return struct.pack("<QI", len(b), len(b)).hex() + b.hex() + "00000000"

    raw = bytes.fromhex(HEADERS + "ffff" "0b00" "0000"
                        + _param("@handle", 1, "2604", "00")
                        + _param("@params", 0, "e7ffff" + COLL, plp(decl))
                        + _param("@stmt", 0, "e7ffff" + COLL, plp(sql))
                        + _param("@options", 0, "2604", "0401000000"))
    (call,) = decode_rpc(raw)
    assert call.proc_id == ProcId.SP_PREPARE
    handle, params, stmt, options = call.params
    assert handle.is_output and handle.value is None and handle.name == "@handle"
    assert params.type_info.is_plp and params.value == decl
    assert stmt.value == sql and options.value == 1
    assert params.type_info.to_sql_type() == SqlType.parse("nvarchar(max)")


def test_rpc_by_name_golden() -> None:
    name = "sp_describe_undeclared_parameters"
    raw = bytes.fromhex(HEADERS + struct.pack("<H", len(name)).hex() + _u16(name) + "0000"
                        + _param("", 0, "e7ffff" + COLL, "ffffffffffffffff"))
    (call,) = decode_rpc(raw)
    assert call.name == name and call.proc_id is None and call.params[0].value is None


@pytest.mark.parametrize("sep", ["ff", "fe", "80"])
def test_rpc_separators(sep: str) -> None:
    one = "ffff" "0f00" "0000" + _param("", 0, "2604", "0401000000")
    req = decode_rpc(bytes.fromhex(HEADERS + one + sep + one))
    assert len(req) == 2


def test_rpc_without_params_and_trailing_separator() -> None:
    req = decode_rpc(bytes.fromhex(HEADERS + "ffff" "0f00" "0000" "ff"))
    assert req == [RpcCall("", 15, 0, [])]


def test_rpc_rejects_encrypted_and_tvp_params() -> None:
    base = HEADERS + "ffff" "0a00" "0000"
    with pytest.raises(ProtocolError):
        decode_rpc(bytes.fromhex(base + _param("", 0x08, "2604", "00")))
    with pytest.raises(ProtocolError):
        decode_rpc(bytes.fromhex(base + _param("", 0, "f3", "00")))


PARAM_TYPES = {
    "int": st.integers(-2**31, 2**31 - 1), "bigint": st.integers(-2**63, 2**63 - 1),
    "float": st.floats(allow_nan=False), "bit": st.booleans(),
    "nvarchar(50)": st.text(max_size=25), "nvarchar(max)": st.text(max_size=300),
    "varchar(100)": st.text(st.characters(codec="cp1252"), max_size=100),
    "varbinary(max)": st.binary(max_size=300),
    "decimal(38,10)": st.integers(-(10**38 - 1), 10**38 - 1).map(lambda u: Decimal(f"{u}E-10")),
}


@st.composite
def rpc_params(draw) -> RpcParam:
    sql = draw(st.sampled_from(sorted(PARAM_TYPES)))
    value = draw(st.none() | PARAM_TYPES[sql])
    return RpcParam(draw(st.text(max_size=10)), draw(st.sampled_from([0, 1, 2])),
                    type_info_for(SqlType.parse(sql)), value)


rpc_calls = st.builds(RpcCall, st.text(min_size=1, max_size=20), st.none(), st.integers(0, 7),
                      st.lists(rpc_params(), max_size=5)) | st.builds(
    RpcCall, st.just(""), st.integers(1, 15), st.integers(0, 7), st.lists(rpc_params(), max_size=5))


@given(st.lists(rpc_calls, min_size=1, max_size=4),
       st.builds(AllHeaders, st.binary(min_size=8, max_size=8), st.integers(0, 10)))
def test_rpc_round_trip(calls: list[RpcCall], headers: AllHeaders) -> None:
    req = decode_rpc(encode_rpc(calls, headers))
    assert list(req) == calls
    assert req.headers == headers


def test_rpc_nvarchar_max_chunks_from_client() -> None:
    # Clients may split PLP values into several chunks with an unknown total length.
    value = "feffffffffffffff" "04000000" + _u16("ab") + "02000000" + _u16("c") + "00000000"
    raw = bytes.fromhex(HEADERS + "ffff" "0a00" "0000" + _param("", 0, "e7ffff" + COLL, value))
    assert decode_rpc(raw)[0].params[0].value == "abc"
    assert decode_rpc(raw)[0].params[0].type_info.size == PLP_SIZE
