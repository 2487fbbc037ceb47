"""Raw value codecs (no length prefix, no NULL form): round trips and bad lengths."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.tds.constants import DataType as D
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.raw_values import RAW_CODECS, raw_codecs
from azsql_emulator.tds.typeinfo import TypeInfo


def _round_trip(ti: TypeInfo, value: object) -> object:
    encode, decode = raw_codecs(ti.type)
    return decode(ti, encode(ti, value))


@given(st.integers(-2**63, 2**63 - 1))
def test_bigint_round_trip(value: int) -> None:
    assert _round_trip(TypeInfo(D.INT8, 8), value) == value


@given(st.decimals(min_value=Decimal("-1e20"), max_value=Decimal("1e20"), places=6,
                   allow_nan=False, allow_infinity=False))
def test_decimal_round_trip(value: Decimal) -> None:
    assert _round_trip(TypeInfo(D.DECIMALN, 17, 38, 6), value) == value


@given(st.text())
def test_nvarchar_round_trip(value: str) -> None:
    assert _round_trip(TypeInfo(D.NVARCHAR, 8000), value) == value


@given(st.binary(max_size=64))
def test_varbinary_round_trip(value: bytes) -> None:
    assert _round_trip(TypeInfo(D.BIGVARBIN, 8000), value) == value


def test_guid_is_sent_in_wire_order() -> None:
    value = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    encode, decode = raw_codecs(D.GUID)
    raw = encode(TypeInfo(D.GUID, 16), value)
    assert raw.hex() == "33221100554477668899aabbccddeeff"
    assert decode(TypeInfo(D.GUID, 16), raw) == value


@pytest.mark.parametrize(("data_type", "raw"), [
    (D.INTN, b"\x01\x02\x03"), (D.BITN, b""), (D.FLTN, b"\x00" * 5),
    (D.MONEYN, b"\x00" * 6), (D.DECIMALN, b"\x01\x00"), (D.GUID, b"\x00" * 15),
])
def test_a_bad_length_is_a_protocol_error(data_type: int, raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        RAW_CODECS[data_type][1](TypeInfo(data_type, len(raw)), raw)


def test_overflow_and_wrong_type_are_value_errors() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        raw_codecs(D.INT2)[0](TypeInfo(D.INT2, 2), 40_000)
    with pytest.raises(ValueError, match="expected a str"):
        raw_codecs(D.NVARCHAR)[0](TypeInfo(D.NVARCHAR, 8000), 5)


def test_an_unknown_type_has_no_codecs() -> None:
    with pytest.raises(KeyError):
        raw_codecs(0x00)
