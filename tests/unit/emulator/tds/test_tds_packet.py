"""Packet framing: header codec, message splitting and reassembly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.tds.constants import PacketStatus, PacketType
from azsql_emulator.tds.packet import (
    HEADER_SIZE,
    Message,
    MessageAssembler,
    PacketHeader,
    ProtocolError,
    decode_header,
    encode_header,
    encode_message,
)

packet_types = st.sampled_from([int(t) for t in PacketType])


@given(st.builds(PacketHeader, packet_types, st.integers(0, 255), st.integers(8, 32767),
                 st.integers(0, 65535), st.integers(0, 255), st.integers(0, 255)))
def test_header_round_trip(h: PacketHeader) -> None:
    assert decode_header(encode_header(h)) == h


def test_header_golden_attention() -> None:
    # Query timeout: an 8-byte ATTENTION packet (tds-wire-notes).
    raw = bytes.fromhex("0601000800000100")
    h = decode_header(raw)
    assert (h.type, h.status, h.length, h.packet_id) == (PacketType.ATTENTION, 1, 8, 1)
    assert encode_header(h) == raw


def test_header_length_and_spid_are_big_endian() -> None:
    raw = encode_header(PacketHeader(0x04, 0x01, 0x0102, spid=0x0304, packet_id=5))
    assert raw == bytes.fromhex("0401010203040500")


@pytest.mark.parametrize("raw", [
    bytes.fromhex("0501000800000100"),  # unknown type
    bytes.fromhex("0101000700000100"),  # shorter than the header
    bytes.fromhex("01018000000001 00".replace(" ", "")),  # 32768 > max
    b"\x01\x01\x00",  # truncated header
])
def test_header_rejects_bad_input(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_header(raw)


def test_header_respects_negotiated_max() -> None:
    raw = encode_header(PacketHeader(0x01, 0x01, 4097))
    assert decode_header(raw).length == 4097
    with pytest.raises(ProtocolError):
        decode_header(raw, max_length=4096)


def test_empty_payload_makes_one_packet() -> None:
    assert encode_message(PacketType.TABULAR_RESULT, b"", 4096) == bytes.fromhex("0401000800000100")


def test_split_ids_and_eom() -> None:
    payload = bytes(range(256)) * 10
    data = encode_message(PacketType.SQL_BATCH, payload, 512, spid=55)
    pos, ids, body = 0, [], b""
    while pos < len(data):
        h = decode_header(data[pos:pos + 8])
        assert h.length <= 512 and h.spid == 55
        ids.append(h.packet_id)
        body += data[pos + 8:pos + h.length]
        last = pos + h.length == len(data)
        assert bool(h.status & PacketStatus.EOM) == last
        pos += h.length
    assert body == payload
    assert ids == list(range(1, len(ids) + 1))


def test_packet_ids_wrap_modulo_256() -> None:
    data = encode_message(PacketType.BULK_LOAD, b"x" * 300, HEADER_SIZE + 1)
    ids = [data[i * 9 + 6] for i in range(300)]
    assert ids[:3] == [1, 2, 3] and ids[254] == 255 and ids[255] == 0 and ids[256] == 1


def test_status_extra_only_on_first_packet() -> None:
    data = encode_message(PacketType.RPC, b"y" * 1000, 512,
                          status_extra=PacketStatus.RESET_CONNECTION)
    first = decode_header(data[:8])
    second = decode_header(data[first.length:first.length + 8])
    assert first.status == PacketStatus.RESET_CONNECTION
    assert second.status == PacketStatus.EOM


@given(st.binary(max_size=5000), st.integers(9, 600), packet_types.filter(lambda t: t != 6),
       st.lists(st.integers(1, 700), min_size=1, max_size=30))
def test_reassembly_in_arbitrary_chunks(payload: bytes, size: int, ptype: int,
                                        cuts: list[int]) -> None:
    data = encode_message(ptype, payload, size) * 2
    asm = MessageAssembler()
    out: list[Message] = []
    pos, i = 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += asm.feed(data[pos:pos + step])
        pos += step
        i += 1
    assert out == [Message(ptype, PacketStatus.EOM, payload)] * 2
    assert asm.buffered == 0 and not asm.in_message


def test_one_byte_at_a_time() -> None:
    data = encode_message(PacketType.LOGIN7, b"hello world" * 50, 64)
    asm = MessageAssembler()
    out = []
    for b in data:
        out += asm.feed(bytes([b]))
    assert [m.payload for m in out] == [b"hello world" * 50]


def test_continuation_with_other_type_is_rejected() -> None:
    first = encode_message(PacketType.SQL_BATCH, b"a" * 100, 60)[:60]
    other = encode_message(PacketType.RPC, b"b", 60)
    asm = MessageAssembler()
    assert asm.feed(first) == []
    with pytest.raises(ProtocolError):
        asm.feed(other)


def test_attention_is_its_own_message_even_mid_message() -> None:
    data = encode_message(PacketType.SQL_BATCH, b"a" * 100, 60)
    attention = encode_message(PacketType.ATTENTION, b"", 4096)
    asm = MessageAssembler()
    got = asm.feed(data[:60] + attention)
    assert got == [Message(PacketType.ATTENTION, PacketStatus.EOM, b"")]
    assert asm.feed(data[60:]) == [Message(PacketType.SQL_BATCH, PacketStatus.EOM, b"a" * 100)]


def test_ignored_message_is_dropped() -> None:
    part = encode_message(PacketType.SQL_BATCH, b"a" * 100, 60)[:60]
    cancel = encode_header(PacketHeader(PacketType.SQL_BATCH,
                                        PacketStatus.EOM | PacketStatus.IGNORE, 8))
    asm = MessageAssembler()
    assert asm.feed(part + cancel) == []
    assert asm.feed(encode_message(PacketType.SQL_BATCH, b"ok", 512))[0].payload == b"ok"


def test_message_size_limit() -> None:
    asm = MessageAssembler(max_message_size=100)
    with pytest.raises(ProtocolError):
        asm.feed(encode_message(PacketType.BULK_LOAD, b"z" * 101, 50))


def test_packet_size_limit() -> None:
    asm = MessageAssembler(max_packet_size=512)
    with pytest.raises(ProtocolError):
        asm.feed(encode_message(PacketType.SQL_BATCH, b"z" * 600, 1000))


def test_reset_connection_flag_survives() -> None:
    data = encode_message(PacketType.SQL_BATCH, b"q", 512,
                          status_extra=PacketStatus.RESET_CONNECTION)
    (msg,) = MessageAssembler().feed(data)
    assert msg.reset_connection


@given(st.binary(max_size=200))
def test_garbage_raises_protocol_error_only(data: bytes) -> None:
    try:
        MessageAssembler().feed(data)
    except ProtocolError:
        pass
