"""PRELOGIN codec: golden bytes from tds-wire-notes.md and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.tds.constants import Encryption
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.prelogin import (
    Prelogin,
    decode_prelogin,
    decode_version,
    encode_prelogin,
    encode_version,
)

TRACEID = bytes(range(36))
# What ODBC Driver 18 sends (Encrypt=no, access token set): VERSION 12 06 00 02 00 00,
# ENCRYPTION, INSTOPT 00, THREADID, MARS 00, TRACEID (36), FEDAUTHREQUIRED 01, 0xFF.
CLIENT = bytes.fromhex(
    "00002400060100 2a0001 02002b0001 03002c0004 0400300001 0500310024 0600550001 ff"
    "120600020000 00 00 00001234 00".replace(" ", "")) + TRACEID + b"\x01"
# A server reply that worked: VERSION, ENCRYPTION, INSTOPT 00, THREADID (empty), MARS 00,
# FEDAUTHREQUIRED 01.
SERVER = bytes.fromhex(
    "00001f0006 0100250001 0200260001 0300270000 0400270001 0600280001 ff"
    "10000fa00000 02 00 00 01".replace(" ", ""))


def test_version_golden() -> None:
    assert encode_version(18, 6, 2, 0) == bytes.fromhex("120600020000")
    assert decode_version(bytes.fromhex("120600020000")) == (18, 6, 2, 0)


def test_decode_driver_prelogin() -> None:
    p = decode_prelogin(CLIENT)
    assert p.version == bytes.fromhex("120600020000")
    assert p.encryption == Encryption.OFF
    assert p.instopt == b"\x00"
    assert p.threadid == 0x1234
    assert p.mars == 0
    assert p.traceid == TRACEID
    assert p.fedauth_required == 1
    assert p.nonce is None and p.unknown == {}
    assert encode_prelogin(p) == CLIENT


def test_encode_server_reply_golden() -> None:
    reply = Prelogin(encode_version(16, 0, 4000), encryption=Encryption.NOT_SUP, instopt=b"\x00",
                     threadid_empty=True, mars=0, fedauth_required=1)
    assert encode_prelogin(reply) == SERVER
    assert decode_prelogin(SERVER) == reply


def test_unknown_options_are_kept() -> None:
    p = Prelogin(encryption=1, unknown={0x42: b"abc"})
    assert decode_prelogin(encode_prelogin(p)).unknown == {0x42: b"abc"}


@given(st.builds(
    Prelogin,
    version=st.binary(min_size=6, max_size=6),
    encryption=st.none() | st.integers(0, 255),
    instopt=st.none() | st.binary(max_size=20),
    threadid=st.none() | st.integers(0, 2**32 - 1),
    mars=st.none() | st.integers(0, 1),
    traceid=st.none() | st.binary(min_size=36, max_size=36),
    fedauth_required=st.none() | st.integers(0, 1),
    nonce=st.none() | st.binary(min_size=32, max_size=32),
    unknown=st.dictionaries(st.integers(8, 254), st.binary(max_size=10), max_size=3),
))
def test_round_trip(p: Prelogin) -> None:
    assert decode_prelogin(encode_prelogin(p)) == p


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\x00",  # truncated table
    bytes.fromhex("0000060006ff"),  # VERSION points past the end
    bytes.fromhex("0100060001ff01"),  # no VERSION
    bytes.fromhex("00000b0006 0000000000 ff".replace(" ", "")),  # duplicate option
    bytes.fromhex("00000600 05ff0000000000".replace(" ", "")),  # VERSION of 5 bytes
])
def test_malformed(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_prelogin(raw)
