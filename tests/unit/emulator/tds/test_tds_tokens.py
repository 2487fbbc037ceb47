"""Server tokens: golden login reply pieces, result sets, round trips."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.errors import LoginError
from azsql_emulator.sqltypes import ColumnInfo, SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import DataType, DoneStatus, EnvChangeType, FeatureId, TokenType
from azsql_emulator.tds.login7 import FeatureExt
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.tokens import (
    ColMetadata,
    Column,
    Done,
    EnvChange,
    ErrorMessage,
    FeatureExtAck,
    InfoMessage,
    LoginAck,
    Message,
    Order,
    ReturnStatus,
    ReturnValue,
    Row,
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
    encode_info,
    encode_loginack,
    encode_order,
    encode_returnstatus,
    encode_returnvalue,
    encode_row,
)
from azsql_emulator.tds.typeinfo import TypeInfo

TXN = bytes.fromhex("0102030405060708")


def test_select_1_reply_golden() -> None:
    cols = [ColumnInfo("", SqlType.parse("int"), nullable=False)]
    data = (encode_colmetadata(cols) + encode_row(cols, [1])
            + encode_done(Done(DoneStatus.COUNT, 0xC1, 1)))
    assert data.hex() == ("810100" "00000000" "0000" "2604" "00"
                          "d1" "0401000000"
                          "fd" "1000" "c100" "0100000000000000")
    md, row, done = decode_token_stream(data)
    assert md.column_infos == cols
    assert row == Row([1])
    assert done == Done(DoneStatus.COUNT, 0xC1, 1, TokenType.DONE)


def test_transaction_envchanges_golden() -> None:
    assert encode_envchange(EnvChange(EnvChangeType.BEGIN_TRANSACTION, TXN, b"")).hex() == \
        "e30b0008" "08" + TXN.hex() + "00"
    assert encode_envchange(EnvChange(EnvChangeType.COMMIT_TRANSACTION, b"", TXN)).hex() == \
        "e30b0009" "00" "08" + TXN.hex()
    assert encode_envchange(EnvChange(EnvChangeType.ROLLBACK_TRANSACTION, b"", TXN))[3] == 10


def test_string_envchange_golden() -> None:
    raw = encode_envchange(EnvChange(EnvChangeType.DATABASE, "db", "master"))
    assert raw.hex() == "e31300" "01" "02" + "db".encode("utf-16-le").hex() + "06" + \
        "master".encode("utf-16-le").hex()


def test_loginack_golden() -> None:
    raw = encode_loginack(LoginAck(1, bytes.fromhex("74000004"), "Emu", bytes([16, 0, 0x10, 1])))
    assert raw.hex() == "ad1000" "01" "74000004" "03" + "Emu".encode("utf-16-le").hex() + \
        "10001001"


def test_featureextack_golden() -> None:
    ack = FeatureExtAck([FeatureExt(FeatureId.FEDAUTH, b""), FeatureExt(FeatureId.UTF8_SUPPORT,
                                                                        b"\x00")])
    assert encode_featureextack(ack).hex() == "ae" "0200000000" "0a0100000000" "ff"
    assert encode_featureextack([(2, b"")]) == bytes.fromhex("ae0200000000ff")
    assert decode_featureextack(encode_featureextack(ack))[0].features == [(2, b""), (10, b"\0")]


def test_full_login_reply_round_trip() -> None:
    """The reply tds-wire-notes.md says Microsoft's driver accepts, token by token."""
    tokens = [
        EnvChange(EnvChangeType.DATABASE, "bulkdb", "master"),
        InfoMessage(5701, 2, 0, "Changed database context to 'bulkdb'.", "emu", "", 1),
        EnvChange(EnvChangeType.SQL_COLLATION, DEFAULT_COLLATION, b""),
        EnvChange(EnvChangeType.LANGUAGE, "us_english", ""),
        InfoMessage(5703, 1, 0, "Changed language setting to us_english.", "emu", "", 1),
        LoginAck(),
        EnvChange(EnvChangeType.PACKET_SIZE, "8000", "4096"),
        FeatureExtAck([FeatureExt(2, b""), FeatureExt(1, b""), FeatureExt(9, b"\x01\x00"),
                       FeatureExt(10, b"\x00"), FeatureExt(11, b"\x00"), FeatureExt(16, b"\x00")]),
        Done(),
    ]
    enc = {EnvChange: encode_envchange, InfoMessage: encode_info, LoginAck: encode_loginack,
           FeatureExtAck: encode_featureextack, Done: encode_done}
    data = b"".join(enc[type(t)](t) for t in tokens)
    assert decode_token_stream(data) == tokens


def test_login_failure_golden() -> None:
    err = Message.from_sql_error(LoginError("Login failed for user '<token-identified principal>'.",
                                            reason="expired"), server="emu")
    data = encode_error(err) + encode_done(Done(DoneStatus.ERROR))
    tokens = decode_token_stream(data)
    assert isinstance(tokens[0], ErrorMessage)
    assert (tokens[0].number, tokens[0].severity, tokens[0].state) == (18456, 14, 1)
    assert tokens[0].text.startswith("Login failed")
    assert tokens[1].status == DoneStatus.ERROR
    assert data[:1] == b"\xaa"


def test_rpc_reply_tokens() -> None:
    handle = ReturnValue(1, "@handle", TypeInfo(DataType.INTN, 4), 17)
    data = (encode_done(Done(DoneStatus.MORE | DoneStatus.COUNT, 0xC3, 1, TokenType.DONEINPROC))
            + encode_returnstatus(0) + encode_returnvalue(handle)
            + encode_done(Done(kind=TokenType.DONEPROC)))
    doneinproc, status, rv, doneproc = decode_token_stream(data)
    assert doneinproc.kind == TokenType.DONEINPROC and doneinproc.status == 0x11
    assert status == ReturnStatus(0)
    assert rv == handle
    assert doneproc.kind == TokenType.DONEPROC


def test_nbcrow_chosen_when_smaller() -> None:
    cols = [ColumnInfo(f"c{i}", SqlType.parse("nvarchar(max)")) for i in range(10)]
    values = [None] * 9 + ["x"]
    raw = encode_row(cols, values)
    assert raw[0] == TokenType.NBCROW
    assert raw[1:3] == bytes([0xFF, 0x01])  # bitmap: columns 0-8 NULL
    md = decode_colmetadata(encode_colmetadata(cols))[0]
    row, pos = decode_row(raw, 0, md.columns)
    assert row == Row(values) and row.nbc and pos == len(raw)
    # One NULL int: 1 byte in ROW, 1 byte bitmap in NBCROW: ROW is not larger.
    assert encode_row([ColumnInfo("a", SqlType.parse("int"))], [None]) == b"\xd1\x00"


def test_nbcrow_needed_for_fixed_types() -> None:
    tis = [TypeInfo(DataType.INT4, 4), TypeInfo(DataType.INT4, 4)]
    raw = RowEncoder(tis).encode([None, 5])
    assert raw == bytes.fromhex("d2" "01" "05000000")
    assert decode_row(raw, 0, tis)[0] == Row([None, 5])


def test_row_before_metadata_is_an_error() -> None:
    with pytest.raises(ProtocolError):
        decode_token_stream(b"\xd1\x00")


def test_no_metadata_form() -> None:
    assert encode_colmetadata(None) == b"\x81\xff\xff"
    assert decode_colmetadata(b"\x81\xff\xff")[0] == ColMetadata(None)


def test_text_columns_carry_table_name_and_textptr() -> None:
    col = Column("t", TypeInfo(DataType.NTEXT, 2**31 - 1, collation=DEFAULT_COLLATION),
                 table_name=("dbo", "tbl"))
    data = encode_colmetadata([col]) + RowEncoder([col]).encode(["hey"]) + \
        RowEncoder([col]).encode([None])
    md, row, null_row = decode_token_stream(data)
    assert md.columns == [col]
    assert row == Row(["hey"]) and null_row == Row([None])


# --- round trips ----------------------------------------------------------------------------

names = st.text(max_size=20)
messages = st.builds(Message, st.integers(-2**31, 2**31 - 1), st.integers(0, 255),
                     st.integers(0, 255), st.text(max_size=300), names, names,
                     st.integers(-2**31, 2**31 - 1))


@given(messages, st.booleans())
def test_message_round_trip(m: Message, error: bool) -> None:
    raw = (encode_error if error else encode_info)(m)
    got, pos = decode_message(raw)
    assert pos == len(raw) and isinstance(got, ErrorMessage if error else InfoMessage)
    assert (got.number, got.state, got.severity, got.text, got.server, got.procedure, got.line) \
        == (m.number, m.state, m.severity, m.text, m.server, m.procedure, m.line)


string_envs = st.sampled_from([EnvChangeType.DATABASE, EnvChangeType.LANGUAGE,
                               EnvChangeType.PACKET_SIZE, EnvChangeType.CHARSET])
binary_envs = st.sampled_from([EnvChangeType.SQL_COLLATION, EnvChangeType.BEGIN_TRANSACTION,
                               EnvChangeType.COMMIT_TRANSACTION, EnvChangeType.ROLLBACK_TRANSACTION,
                               EnvChangeType.RESET_CONNECTION_ACK, EnvChangeType.ROUTING,
                               EnvChangeType.PROMOTE_TRANSACTION])


@given(st.builds(EnvChange, string_envs, names, names)
       | st.builds(EnvChange, binary_envs, st.binary(max_size=40), st.binary(max_size=40)))
def test_envchange_round_trip(e: EnvChange) -> None:
    raw = encode_envchange(e)
    assert decode_envchange(raw) == (e, len(raw))


@given(st.builds(LoginAck, st.integers(0, 255), st.binary(min_size=4, max_size=4), names,
                 st.binary(min_size=4, max_size=4)))
def test_loginack_round_trip(a: LoginAck) -> None:
    raw = encode_loginack(a)
    assert decode_loginack(raw) == (a, len(raw))


@given(st.builds(Done, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**64 - 1),
                 st.sampled_from([TokenType.DONE, TokenType.DONEPROC, TokenType.DONEINPROC])))
def test_done_round_trip(d: Done) -> None:
    assert decode_done(encode_done(d)) == (d, 13)


@given(st.integers(-2**31, 2**31 - 1))
def test_returnstatus_round_trip(v: int) -> None:
    assert decode_returnstatus(encode_returnstatus(ReturnStatus(v))) == (ReturnStatus(v), 5)


@given(st.lists(st.integers(1, 0xFFFF), max_size=10).map(tuple))
def test_order_round_trip(cols: tuple[int, ...]) -> None:
    raw = encode_order(Order(cols))
    assert decode_order(raw) == (Order(cols), len(raw))


@given(st.lists(st.builds(FeatureExt, st.integers(0, 254), st.binary(max_size=10)), max_size=6))
def test_featureextack_round_trip(fs: list[FeatureExt]) -> None:
    raw = encode_featureextack(FeatureExtAck(fs))
    assert decode_featureextack(raw) == (FeatureExtAck(fs), len(raw))


# Types whose Python values survive exactly, with value strategies.
EXACT = {
    "bit": st.booleans(), "int": st.integers(-2**31, 2**31 - 1),
    "bigint": st.integers(-2**63, 2**63 - 1), "float": st.floats(allow_nan=False),
    "decimal(20,4)": st.integers(-(10**20 - 1), 10**20 - 1).map(lambda u: Decimal(f"{u}E-4")),
    "money": st.integers(-2**63, 2**63 - 1).map(lambda u: Decimal(f"{u}E-4")),
    "nvarchar(20)": st.text(max_size=10), "nvarchar(max)": st.text(max_size=100),
    "varchar(max)": st.text(st.characters(codec="cp1252"), max_size=50),
    "varbinary(max)": st.binary(max_size=100), "date": st.dates(),
    "datetime2(7)": st.datetimes(max_value=dt.datetime(9999, 12, 31)),
    "uniqueidentifier": st.uuids(),
}


@st.composite
def result_sets(draw):
    sqls = draw(st.lists(st.sampled_from(sorted(EXACT)), min_size=1, max_size=12))
    cols = [ColumnInfo(f"col{i}", SqlType.parse(s), draw(st.booleans()))
            for i, s in enumerate(sqls)]
    rows = draw(st.lists(st.tuples(*[st.none() | EXACT[s] for s in sqls]), max_size=5))
    return cols, [list(r) for r in rows]


@given(result_sets())
def test_result_set_round_trip(rs) -> None:
    cols, rows = rs
    enc = RowEncoder(cols)
    data = encode_colmetadata(cols) + b"".join(enc.encode(r) for r in rows) + encode_done(
        Done(DoneStatus.COUNT, 0xC1, len(rows)))
    md, *got_rows, done = decode_token_stream(data)
    assert md.column_infos == cols
    assert [r.values for r in got_rows] == rows
    assert done.rowcount == len(rows)


@given(st.integers(0, 0xFFFF), names, st.sampled_from(sorted(EXACT)), st.data())
def test_returnvalue_round_trip(ordinal: int, name: str, sql: str, data) -> None:
    from azsql_emulator.tds.typeinfo import type_info_for
    value = data.draw(st.none() | EXACT[sql])
    rv = ReturnValue(ordinal, name, type_info_for(SqlType.parse(sql)), value)
    raw = encode_returnvalue(rv)
    assert decode_returnvalue(raw) == (rv, len(raw))
