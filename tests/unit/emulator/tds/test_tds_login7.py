"""LOGIN7 codec: a hand-built driver login, FEDAUTH layout, round trips, bad offsets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.tds.constants import FeatureId, FedAuthLibrary
from azsql_emulator.tds.login7 import (
    FeatureExt,
    FedAuthFeature,
    Login7,
    decode_features,
    decode_fedauth_feature,
    decode_login7,
    decode_password,
    encode_features,
    encode_fedauth_feature,
    encode_login7,
    encode_password,
)
from azsql_emulator.tds.packet import ProtocolError

TOKEN = "eyJ0eXAiOiJKV1QifQ." + "x" * 15000  # Entra tokens can be ~30 KB as UTF-16


def _driver_login(token: str = TOKEN, nonce: bytes | None = None) -> bytes:
    """A LOGIN7 laid out by hand the way ODBC Driver 18 sends it (tds-wire-notes.md)."""
    fedauth = bytes([(FedAuthLibrary.SECURITYTOKEN << 1) | 0])
    raw_token = token.encode("utf-16-le")
    fedauth += struct.pack("<I", len(raw_token)) + raw_token + (nonce or b"")
    agent = "1|MS-ODBC|18.6.2.1|x86_64|Linux".encode("utf-16-le")
    features = (bytes([0x10]) + struct.pack("<I", len(agent)) + agent
                + bytes([0x01]) + struct.pack("<I", 0)
                + bytes([0x02]) + struct.pack("<I", len(fedauth)) + fedauth
                + bytes([0x09]) + struct.pack("<I", 1) + b"\x01"
                + bytes([0x0A]) + struct.pack("<I", 1) + b"\x01"
                + bytes([0x0B]) + struct.pack("<I", 0) + b"\xff")
    host, app, server = "build-host", "azsql-bulk", "127.0.0.1"
    lib, db = "ODBC", "bulkdb"
    data = bytearray()
    pairs = []

    def put(s: str) -> None:
        pairs.extend((94 + len(data), len(s)))
        data.extend(s.encode("utf-16-le"))

    put(host)
    put("")  # user
    put("")  # password
    put(app)
    put(server)
    ext_at = len(data)
    pairs.extend((94 + ext_at, 4))
    data.extend(b"\0\0\0\0")
    put(lib)
    put("")  # language
    put(db)
    tail_at = 94 + len(data)
    data[ext_at:ext_at + 4] = struct.pack("<I", tail_at)
    data.extend(features)
    header = struct.pack("<IIIIIIBBBBiI", 94 + len(data), 0x74000004, 0, 0x12060002, 4242, 0,
                         0xE0, 0x03, 0x00, 0x10, -60, 0x0409)
    header += struct.pack("<18H", *pairs) + bytes.fromhex("00155d010203")
    header += struct.pack("<HHHHHHI", tail_at, 0, tail_at, 0, tail_at, 0, 0)
    assert len(header) == 94
    return header + bytes(data)


def test_decode_driver_login() -> None:
    raw = _driver_login()
    assert raw[4:8] == bytes.fromhex("04000074")
    login = decode_login7(raw)
    assert login.tds_version == 0x74000004
    assert (login.option_flags1, login.option_flags2, login.option_flags3) == (0xE0, 0x03, 0x10)
    assert login.packet_size == 0 and login.client_pid == 4242 and login.client_time_zone == -60
    assert (login.hostname, login.username, login.password) == ("build-host", "", "")
    assert (login.appname, login.servername, login.library_name) == ("azsql-bulk", "127.0.0.1",
                                                                      "ODBC")
    assert login.database == "bulkdb" and login.client_id == bytes.fromhex("00155d010203")
    assert [f.feature_id for f in login.features] == [0x10, 0x01, 0x02, 0x09, 0x0A, 0x0B]
    assert login.feature(FeatureId.DATACLASSIFICATION).data == b"\x01"
    fed = login.fedauth()
    assert fed == FedAuthFeature(FedAuthLibrary.SECURITYTOKEN, False, TOKEN, None)
    assert fed.token == TOKEN
    # The encoder lays it out identically (same field order, same offsets).
    assert encode_login7(login) == raw


def test_decode_driver_login_with_nonce() -> None:
    fed = decode_login7(_driver_login(nonce=b"n" * 32)).fedauth()
    assert fed.nonce == b"n" * 32


def test_fedauth_golden_layout() -> None:
    data = encode_fedauth_feature(FedAuthFeature(FedAuthLibrary.SECURITYTOKEN, True, "ab",
                                                 b"\x07" * 32))
    assert data == bytes.fromhex("03" "04000000" "61006200") + b"\x07" * 32
    assert encode_fedauth_feature(FedAuthFeature(FedAuthLibrary.SECURITYTOKEN, False, "")) \
        == bytes.fromhex("0200000000")
    adal = encode_fedauth_feature(FedAuthFeature(FedAuthLibrary.ADAL, True, workflow=1))
    assert adal == bytes.fromhex("0501")
    assert decode_fedauth_feature(adal).workflow == 1


def test_secrets_stay_out_of_reprs() -> None:
    login = decode_login7(_driver_login())
    login.password = "hunter2"
    text = repr(login) + repr(login.fedauth())
    assert "hunter2" not in text and "eyJ0" not in text


def test_password_golden() -> None:
    # 'a' = 0x61 0x00 -> swap nibbles 0x16 0x00 -> XOR A5 -> 0xB3 0xA5
    assert encode_password("a") == bytes.fromhex("b3a5")


@given(st.text())
def test_password_round_trip(pw: str) -> None:
    assert decode_password(encode_password(pw)) == pw


names = st.text(max_size=60)
features = st.lists(st.builds(FeatureExt, st.integers(0, 254), st.binary(max_size=50)),
                    max_size=5)


@given(st.builds(
    Login7,
    tds_version=st.sampled_from([0x74000004, 0x73000B00, 0x72090002, 0x08000000]),
    packet_size=st.integers(0, 2**32 - 1), client_prog_ver=st.integers(0, 2**32 - 1),
    client_pid=st.integers(0, 2**32 - 1), connection_id=st.integers(0, 2**32 - 1),
    option_flags1=st.integers(0, 255), option_flags2=st.integers(0, 255),
    type_flags=st.integers(0, 255), option_flags3=st.integers(0, 255).map(lambda f: f & ~0x10),
    client_time_zone=st.integers(-2**31, 2**31 - 1), client_lcid=st.integers(0, 2**32 - 1),
    hostname=names, username=names, password=names, appname=names, servername=names,
    library_name=names, language=names, database=names,
    client_id=st.binary(min_size=6, max_size=6), sspi=st.binary(max_size=100),
    attach_db_file=names, change_password=names, features=features,
))
def test_round_trip(login: Login7) -> None:
    decoded = decode_login7(encode_login7(login))
    if login.features:
        login.option_flags3 |= 0x10
    assert decoded == login


def test_large_token_round_trip() -> None:
    token = "t" * 40000  # 80 KB as UTF-16: beyond 16-bit offsets, fine via the u32 FeatureExt
    f = FedAuthFeature(FedAuthLibrary.SECURITYTOKEN, True, token)
    login = Login7(features=[FeatureExt(FeatureId.FEDAUTH, encode_fedauth_feature(f))])
    assert decode_login7(encode_login7(login)).fedauth() == f


@given(features)
def test_features_round_trip(fs: list[FeatureExt]) -> None:
    assert decode_features(encode_features(fs)) == (fs, len(encode_features(fs)))


@given(st.builds(FedAuthFeature, st.just(FedAuthLibrary.SECURITYTOKEN), st.booleans(),
                 st.text(max_size=100), st.none() | st.binary(min_size=32, max_size=32)))
def test_fedauth_round_trip(f: FedAuthFeature) -> None:
    assert decode_fedauth_feature(encode_fedauth_feature(f)) == f


def _patch(raw: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _without_terminator(raw: bytes) -> bytes:
    return _patch(raw[:-1], 0, "<I", len(raw) - 1)


@pytest.mark.parametrize("mutate", [
    lambda raw: raw[:50],  # shorter than the fixed header
    lambda raw: _patch(raw, 0, "<I", len(raw) + 1),  # Length beyond the data
    lambda raw: _patch(raw, 0, "<I", 90),  # Length inside the fixed header
    lambda raw: _patch(raw, 36, "<H", 60000),  # ibHostName outside the message
    lambda raw: _patch(raw, 38, "<H", 30000),  # cchHostName too long
    lambda raw: _patch(raw, 58, "<H", 0),  # cbExtension 0 while fExtension is set
    _without_terminator,  # FeatureExt block without its 0xFF
])
def test_bad_offsets_raise_protocol_error(mutate) -> None:
    with pytest.raises(ProtocolError):
        decode_login7(mutate(_driver_login(token="abc")))


@pytest.mark.parametrize("data", [b"", b"\x02", b"\x02\x10\x00\x00\x00ab",
                                  b"\x02\x02\x00\x00\x00ab" + b"x" * 5, b"\x06", b"\x05"])
def test_bad_fedauth_data(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_fedauth_feature(data)
