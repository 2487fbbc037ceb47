"""TDS packet framing: the 8-byte header, splitting messages into packets, reassembly (2.2.3)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from azsql_emulator.tds.constants import PacketStatus, PacketType

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HEADER_SIZE",
    "MAX_PACKET_SIZE",
    "MIN_PACKET_SIZE",
    "Message",
    "MessageAssembler",
    "PacketHeader",
    "ProtocolError",
    "decode_header",
    "encode_header",
    "encode_message",
]

HEADER_SIZE = 8
MIN_PACKET_SIZE = 512  # smallest packet size a LOGIN7 may negotiate (2.2.6.4)
MAX_PACKET_SIZE = 32767  # largest negotiable packet size (2.2.6.4)
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024 * 1024  # a bound so one client cannot exhaust memory

_HEADER = struct.Struct(">BBHHBB")
_TYPE_STATUS_LENGTH = struct.Struct(">BBH")
_VALID_TYPES = frozenset(int(t) for t in PacketType)
_EOM = int(PacketStatus.EOM)
_IGNORE = int(PacketStatus.IGNORE)
_ATTENTION = int(PacketType.ATTENTION)


class ProtocolError(Exception):
    """Bytes from the peer do not follow MS-TDS; the session should answer or drop the link."""


@dataclass(frozen=True, slots=True)
class PacketHeader:
    """The 8-byte packet header (2.2.3.1); length and spid are big-endian on the wire."""

    type: int
    status: int
    length: int
    spid: int = 0
    packet_id: int = 1
    window: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """One reassembled TDS message: packet type, OR of all packet statuses, and the payload."""

    type: int
    status: int
    payload: bytes

    @property
    def reset_connection(self) -> bool:
        """True when the client asked to reset the session before this request (0x08 or 0x10)."""
        return bool(self.status & (PacketStatus.RESET_CONNECTION
                                   | PacketStatus.RESET_CONNECTION_SKIP_TRAN))


def encode_header(h: PacketHeader) -> bytes:
    """Encode a packet header.

    >>> encode_header(PacketHeader(0x04, 0x01, 8)).hex()
    '0401000800000100'
    """
    return _HEADER.pack(h.type, h.status, h.length, h.spid, h.packet_id, h.window)


def decode_header(b: bytes, *, max_length: int = MAX_PACKET_SIZE) -> PacketHeader:
    """Decode and check a packet header from the first 8 bytes of ``b``.

    :param max_length: largest packet length accepted (the negotiated packet size).
    """
    if len(b) < HEADER_SIZE:
        raise ProtocolError(f"packet header needs {HEADER_SIZE} bytes, got {len(b)}")
    ptype, status, length, spid, packet_id, window = _HEADER.unpack_from(b, 0)
    if ptype not in _VALID_TYPES:
        raise ProtocolError(f"unknown TDS packet type 0x{ptype:02x}")
    if length < HEADER_SIZE:
        raise ProtocolError(f"packet length {length} is shorter than the 8-byte header")
    if length > max_length:
        raise ProtocolError(f"packet length {length} exceeds the packet size {max_length}")
    return PacketHeader(ptype, status, length, spid, packet_id, window)


def encode_message(packet_type: int, payload: bytes, packet_size: int, *, spid: int = 0,
                   status_extra: int = 0) -> bytes:
    """Split ``payload`` into packets of at most ``packet_size`` bytes (header included).

    Packet ids start at 1 and wrap modulo 256; the last packet carries EOM; an empty
    payload still makes one packet. ``status_extra`` (e.g. RESET_CONNECTION) goes on the
    first packet only, as the spec requires for the reset bits.

    >>> encode_message(0x04, b"", 4096).hex()
    '0401000800000100'
    """
    if not HEADER_SIZE < packet_size <= 65535:
        raise ValueError(f"packet size {packet_size} out of range")
    chunk = packet_size - HEADER_SIZE
    n = len(payload)
    view = memoryview(payload)
    out: list[bytes | memoryview] = []
    pack = _HEADER.pack
    packet_id = 1
    offset = 0
    while True:
        end = min(offset + chunk, n)
        status = _EOM if end >= n else 0
        if offset == 0:
            status |= status_extra
        out.append(pack(packet_type, status, HEADER_SIZE + end - offset, spid, packet_id, 0))
        out.append(view[offset:end])
        if end >= n:
            return b"".join(out)
        offset = end
        packet_id = (packet_id + 1) & 0xFF


class MessageAssembler:
    """Reassemble TDS messages from bytes that arrive in arbitrary chunks.

    Messages whose last packet has IGNORE set are dropped (the client abandoned them, 2.2.3.1.2).
    An ATTENTION packet is always a message of its own, even while another is incomplete.

    :param max_packet_size: largest packet accepted; raise it after an ENVCHANGE packet size.
    :param max_message_size: largest reassembled payload accepted.

    >>> asm = MessageAssembler()
    >>> asm.feed(encode_message(0x01, b"hi", 512))
    [Message(type=1, status=1, payload=b'hi')]
    """

    def __init__(self, max_packet_size: int = MAX_PACKET_SIZE,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_packet_size = max_packet_size
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._type: int | None = None
        self._status = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a message (partial packets and messages)."""
        return len(self._buf) + self._size

    @property
    def in_message(self) -> bool:
        """True while a multi-packet message is incomplete."""
        return self._type is not None

    def wanted(self) -> int:
        """Bytes still needed to complete the current packet (8 when between packets)."""
        if len(self._buf) < HEADER_SIZE:
            return HEADER_SIZE - len(self._buf)
        length = (self._buf[2] << 8) | self._buf[3]
        return max(length - len(self._buf), 0) or HEADER_SIZE

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return every message completed by them, in order."""
        # Hot path (a parameter array is ~280 packets): headers are read in place, only
        # a bad one goes through decode_header for its error, and each body is copied
        # once out of ``data`` (no copy into the buffer while nothing is left over).
        buf = self._buf
        if buf:
            buf += data
            src: bytes | bytearray = buf
        else:
            src = data
        out: list[Message] = []
        pos = 0
        n = len(src)
        unpack = _TYPE_STATUS_LENGTH.unpack_from
        limit = self.max_packet_size
        view = memoryview(src)
        try:
            while n - pos >= HEADER_SIZE:
                ptype, status, length = unpack(src, pos)
                if ptype not in _VALID_TYPES or not HEADER_SIZE <= length <= limit:
                    decode_header(bytes(src[pos:pos + HEADER_SIZE]), max_length=limit)
                if n - pos < length:
                    break
                msg = self._add_body(ptype, status, bytes(view[pos + HEADER_SIZE:pos + length]))
                pos += length
                if msg is not None:
                    out.append(msg)
        finally:
            view.release()
            if src is buf:
                del buf[:pos]
            elif pos < n:
                buf += src[pos:]
        return out

    def _add_body(self, ptype: int, status: int, body: bytes) -> Message | None:
        if ptype == _ATTENTION and self._type != _ATTENTION:
            # Attention is a signal, not data: deliver it at once, keep any partial message.
            return Message(ptype, status | _EOM, body)
        if self._type is None:
            self._type = ptype
            self._status = 0
        elif ptype != self._type:
            raise ProtocolError(f"packet of type 0x{ptype:02x} inside a message of type "
                                f"0x{self._type:02x}")
        self._size += len(body)
        if self._size > self.max_message_size:
            raise ProtocolError(f"message exceeds {self.max_message_size} bytes")
        self._parts.append(body)
        self._status |= status
        if not status & _EOM:
            return None
        payload = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        msg = Message(self._type, self._status, payload)
        self._parts = []
        self._size = 0
        self._type = None
        if status & _IGNORE:
            return None
        return msg
