"""Bad bytes into every decoder: ProtocolError or a result, never IndexError/struct.error/...."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azsql_emulator.sqltypes import ColumnInfo, SqlType
from azsql_emulator.tds import temporal
from azsql_emulator.tds.constants import DataType, EnvChangeType, FedAuthLibrary, TokenType
from azsql_emulator.tds.login7 import (
    FeatureExt,
    FedAuthFeature,
    Login7,
    decode_features,
    decode_fedauth_feature,
    decode_login7,
    encode_features,
    encode_fedauth_feature,
    encode_login7,
)
from azsql_emulator.tds.packet import MessageAssembler, ProtocolError, decode_header, encode_message
from azsql_emulator.tds.prelogin import Prelogin, decode_prelogin, encode_prelogin, encode_version
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
from azsql_emulator.tds.tokens import (
    Done,
    EnvChange,
    FeatureExtAck,
    LoginAck,
    Message,
    Order,
    ReturnValue,
    RowEncoder,
    decode_colmetadata,
    decode_done,
    decode_envchange,
    decode_featureextack,
    decode_loginack,
    decode_message,
    decode_order,
    decode_returnstatus,
    decode_returnvalue,
    decode_row,
    decode_token_stream,
    encode_colmetadata,
    encode_done,
    encode_envchange,
    encode_error,
    encode_featureextack,
    encode_loginack,
    encode_order,
    encode_returnstatus,
    encode_returnvalue,
)
from azsql_emulator.tds.types import (
    TypeInfo,
    decode_collation,
    decode_column_value,
    decode_plp,
    decode_type_info,
    decode_value,
    decode_variant,
    encode_column_value,
    encode_plp,
    encode_type_info,
    encode_value,
    encode_variant,
    type_info_for,
)

SQL_TYPES = ["bit", "tinyint", "int", "bigint", "real", "float", "decimal(38,4)", "money",
             "smallmoney", "varchar(20)", "char(4)", "varchar(max)", "nvarchar(20)",
             "nvarchar(max)", "varbinary(10)", "varbinary(max)", "date", "time(7)", "datetime",
             "smalldatetime", "datetime2(3)", "datetimeoffset(7)", "uniqueidentifier"]
SAMPLE_VALUES = {"bit": True, "tinyint": 9, "int": -5, "bigint": 2**40, "real": 1.5,
                 "float": -2.5, "decimal(38,4)": Decimal("-123.4567"), "money": Decimal("1.5"),
                 "smallmoney": Decimal("-2"), "varchar(20)": "héllo", "char(4)": "ab",
                 "varchar(max)": "x" * 40, "nvarchar(20)": "ñandú", "nvarchar(max)": "y" * 40,
                 "varbinary(10)": b"\x00\x01", "varbinary(max)": b"z" * 30,
                 "date": dt.date(2024, 2, 29), "time(7)": dt.time(12, 30, 1, 5),
                 "datetime": dt.datetime(2020, 1, 1, 1, 1, 1),
                 "smalldatetime": dt.datetime(2020, 1, 1),
                 "datetime2(3)": dt.datetime(2020, 5, 6, 7, 8, 9, 123000),
                 "datetimeoffset(7)": dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                 "uniqueidentifier": uuid.UUID(int=12345)}
INFOS = [type_info_for(SqlType.parse(s)) for s in SQL_TYPES] + [
    TypeInfo(DataType.INT4, 4), TypeInfo(DataType.FLT8, 8), TypeInfo(DataType.MONEY, 8),
    TypeInfo(DataType.DATETIME, 8),
    TypeInfo(DataType.NTEXT, 2**31 - 1, collation=bytes.fromhex("0904d00034")),
    TypeInfo(DataType.IMAGE, 2**31 - 1), TypeInfo(DataType.SSVARIANT, 8009),
    TypeInfo(DataType.XML, 0xFFFF),
]
COLUMNS = [ColumnInfo(s, SqlType.parse(s)) for s in SQL_TYPES]
WIRE_COLUMNS = decode_colmetadata(encode_colmetadata(COLUMNS))[0].columns
TOKEN = encode_fedauth_feature(FedAuthFeature(FedAuthLibrary.SECURITYTOKEN, True, "tok", b"n" * 32))

# decoder name -> (decoder taking bytes, valid samples)
DECODERS: dict[str, tuple[Callable[[bytes], Any], list[bytes]]] = {
    "header": (decode_header, [encode_message(1, b"abc", 512)]),
    "assembler": (lambda b: MessageAssembler(max_packet_size=4096).feed(b),
                  [encode_message(3, b"x" * 100, 40)]),
    "prelogin": (decode_prelogin, [encode_prelogin(Prelogin(encode_version(18, 6, 2),
                                                             0, b"\x00", 7, 0, bytes(36), 1))]),
    "login7": (decode_login7, [encode_login7(Login7(hostname="h", username="u", password="p",
                                                    database="db", sspi=b"ss", features=[
                                                        FeatureExt(2, TOKEN), FeatureExt(1)]))]),
    "fedauth": (decode_fedauth_feature, [TOKEN, bytes.fromhex("0501")]),
    "features": (decode_features, [encode_features([FeatureExt(1, b"ab"), FeatureExt(9)])]),
    "collation": (decode_collation, [bytes.fromhex("0904d00034")]),
    "type_info": (lambda b: decode_type_info(b, 0), [encode_type_info(i) for i in INFOS]),
    "plp": (lambda b: decode_plp(b, 0), [encode_plp(b"abcdef"), encode_plp(None)]),
    "variant": (lambda b: decode_variant(b, 0),
                [encode_variant(v) for v in (1, "s", Decimal("1.5"), dt.date(2020, 1, 1))]),
    "token_stream": (decode_token_stream, [
        encode_colmetadata(COLUMNS) + RowEncoder(COLUMNS).encode(
            [SAMPLE_VALUES[s] for s in SQL_TYPES]) + RowEncoder(COLUMNS).encode(
            [None] * len(SQL_TYPES)) + encode_done(Done(0x10, 0xC1, 2)),
        encode_envchange(EnvChange(EnvChangeType.DATABASE, "db", "master"))
        + encode_error(Message(208, 1, 16, "Invalid object name 'x'.", "emu", "p", 3))
        + encode_loginack(LoginAck()) + encode_featureextack([(2, b"")]) + encode_order(Order((1,)))
        + encode_returnstatus(0) + encode_returnvalue(ReturnValue(1, "@h", INFOS[2], 5)),
    ]),
    "envchange": (decode_envchange, [encode_envchange(EnvChange(EnvChangeType.PACKET_SIZE, "8000",
                                                                "4096"))]),
    "message": (decode_message, [encode_error(Message(1, text="boom"))]),
    "loginack": (decode_loginack, [encode_loginack(LoginAck())]),
    "featureextack": (decode_featureextack, [encode_featureextack(FeatureExtAck([(1, b"x")]))]),
    "done": (decode_done, [encode_done(Done(kind=TokenType.DONEPROC))]),
    "returnstatus": (decode_returnstatus, [encode_returnstatus(3)]),
    "returnvalue": (decode_returnvalue, [encode_returnvalue(ReturnValue(1, "@h", INFOS[13], "v"))]),
    "order": (decode_order, [encode_order(Order((1, 2)))]),
    "colmetadata": (decode_colmetadata, [encode_colmetadata(COLUMNS)]),
    "row": (lambda b: decode_row(b, 0, WIRE_COLUMNS),
            [RowEncoder(COLUMNS).encode([SAMPLE_VALUES[s] for s in SQL_TYPES])]),
    "all_headers": (decode_all_headers, [encode_all_headers(AllHeaders(trace_activity=bytes(20)))]),
    "sql_batch": (decode_sql_batch, [encode_sql_batch(SqlBatch(AllHeaders(), "SELECT 1"))]),
    "tm_request": (decode_tm_request, [encode_tm_request(TmRequest(AllHeaders(), 7, name="t",
                                                                   flags=1, new_name="n"))]),
    "rpc": (decode_rpc, [encode_rpc([RpcCall(proc_id=12, params=[
        RpcParam("@p", 1, i, SAMPLE_VALUES[s]) for s, i in zip(SQL_TYPES, INFOS, strict=False)]),
        RpcCall("proc", params=[RpcParam("", 0, INFOS[0], None)])])]),
}
_FIXED = (DataType.INT4, DataType.FLT8, DataType.MONEY, DataType.DATETIME)
for _info in INFOS:
    _null = _info.type not in _FIXED
    DECODERS[f"value-{_info.type:02x}-{_info.size}"] = (
        lambda b, i=_info: decode_value(i, b, 0), [encode_value(_info, None)] if _null else [])
    DECODERS[f"column-value-{_info.type:02x}-{_info.size}"] = (
        lambda b, i=_info: decode_column_value(i, b, 0),
        [encode_column_value(_info, None)] if _null else [])
for _name in ("date", "time", "datetime2", "datetimeoffset", "datetime", "smalldatetime"):
    DECODERS[f"temporal-{_name}"] = (getattr(temporal, f"decode_{_name}"), [])


def _call(decoder: Callable[[bytes], Any], data: bytes) -> None:
    try:
        decoder(data)
    except ProtocolError:
        pass


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=150)
@given(data=st.binary(max_size=120))
def test_random_bytes(name: str, data: bytes) -> None:
    _call(DECODERS[name][0], data)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_every_truncation(name: str) -> None:
    decoder, samples = DECODERS[name]
    for sample in samples:
        decoder(sample)  # the sample itself is valid
        for cut in range(len(sample)):
            _call(decoder, sample[:cut])


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=100)
@given(data=st.data())
def test_mutations(name: str, data) -> None:
    decoder, samples = DECODERS[name]
    if not samples:
        return
    sample = bytearray(data.draw(st.sampled_from(samples)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(sample) - 1))
        sample[i] = data.draw(st.integers(0, 255))
    _call(decoder, bytes(sample))


def test_truncated_values_raise() -> None:
    """A cut inside a value must not decode silently into a shorter value."""
    for s in SQL_TYPES:
        info = type_info_for(SqlType.parse(s))
        raw = encode_value(info, SAMPLE_VALUES[s])
        for cut in range(len(raw)):
            with pytest.raises(ProtocolError):
                decode_value(info, raw[:cut], 0)
