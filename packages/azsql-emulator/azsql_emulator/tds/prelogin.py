"""PRELOGIN message codec (2.2.6.5): option table, then option data."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from azsql_emulator.tds.constants import PreloginOption
from azsql_emulator.tds.packet import ProtocolError

__all__ = ["Prelogin", "decode_prelogin", "decode_version", "encode_prelogin", "encode_version"]

_ENTRY = struct.Struct(">BHH")  # token, offset, length: big-endian in PRELOGIN
_VERSION = struct.Struct(">BBHH")
_U32_BE = struct.Struct(">I")
_KNOWN = frozenset(int(o) for o in PreloginOption)


def encode_version(major: int, minor: int, build: int, subbuild: int = 0) -> bytes:
    """The 6-byte VERSION option: major, minor, build (u16 BE), sub-build (u16 BE).

    >>> encode_version(18, 6, 2).hex()
    '120600020000'
    """
    return _VERSION.pack(major, minor, build, subbuild)


def decode_version(raw: bytes) -> tuple[int, int, int, int]:
    """Split a 6-byte VERSION option into (major, minor, build, subbuild)."""
    if len(raw) != 6:
        raise ProtocolError(f"PRELOGIN VERSION must be 6 bytes, got {len(raw)}")
    return _VERSION.unpack(raw)


@dataclass
class Prelogin:
    """PRELOGIN options; None means the option is absent (or, for THREADID, empty).

    :param version: raw 6-byte VERSION (see :func:`encode_version`).
    :param encryption: B_FENCRYPTION (:class:`~azsql_emulator.tds.constants.Encryption`).
    :param instopt: instance name bytes incl. the trailing 0x00 (clients send ``b"\\x00"``).
    :param threadid: client thread id (u32 BE); servers send the option empty.
    :param mars: 0 or 1.
    :param traceid: 36 bytes: connection id GUID, activity id GUID, activity sequence.
    :param fedauth_required: 0 or 1.
    :param nonce: 32 bytes.
    :param unknown: other option tokens and their raw data, kept so they round-trip.
    """

    version: bytes = field(default_factory=lambda: encode_version(0, 0, 0))
    encryption: int | None = None
    instopt: bytes | None = None
    threadid: int | None = None
    mars: int | None = None
    traceid: bytes | None = None
    fedauth_required: int | None = None
    nonce: bytes | None = None
    unknown: dict[int, bytes] = field(default_factory=dict)
    #: True when THREADID was present but empty (a server reply); keeps round trips exact.
    threadid_empty: bool = False


def _options(p: Prelogin) -> list[tuple[int, bytes]]:
    opts: list[tuple[int, bytes]] = [(PreloginOption.VERSION, p.version)]
    if p.encryption is not None:
        opts.append((PreloginOption.ENCRYPTION, bytes([p.encryption])))
    if p.instopt is not None:
        opts.append((PreloginOption.INSTOPT, p.instopt))
    if p.threadid is not None:
        opts.append((PreloginOption.THREADID, _U32_BE.pack(p.threadid)))
    elif p.threadid_empty:
        opts.append((PreloginOption.THREADID, b""))
    if p.mars is not None:
        opts.append((PreloginOption.MARS, bytes([p.mars])))
    if p.traceid is not None:
        opts.append((PreloginOption.TRACEID, p.traceid))
    if p.fedauth_required is not None:
        opts.append((PreloginOption.FEDAUTHREQUIRED, bytes([p.fedauth_required])))
    if p.nonce is not None:
        opts.append((PreloginOption.NONCEOPT, p.nonce))
    opts.extend(sorted(p.unknown.items()))
    return opts


def encode_prelogin(p: Prelogin) -> bytes:
    """Encode a PRELOGIN payload (client request or server reply).

    >>> encode_prelogin(Prelogin(encode_version(16, 0, 1000), encryption=2)).hex()
    '00000b00060100110001ff100003e8000002'
    """
    opts = _options(p)
    offset = len(opts) * _ENTRY.size + 1
    table = bytearray()
    data = bytearray()
    for token, value in opts:
        table += _ENTRY.pack(token, offset + len(data), len(value))
        data += value
    table.append(PreloginOption.TERMINATOR)
    return bytes(table + data)


def decode_prelogin(b: bytes) -> Prelogin:
    """Decode a PRELOGIN payload; raise ProtocolError on a malformed option table."""
    p = Prelogin()
    seen: set[int] = set()
    pos = 0
    n = len(b)
    while True:
        if pos >= n:
            raise ProtocolError("PRELOGIN option table has no terminator")
        token = b[pos]
        if token == PreloginOption.TERMINATOR:
            break
        if pos + _ENTRY.size > n:
            raise ProtocolError("PRELOGIN option table truncated")
        _, offset, length = _ENTRY.unpack_from(b, pos)
        pos += _ENTRY.size
        if offset + length > n:
            raise ProtocolError(f"PRELOGIN option 0x{token:02x} points past the end "
                                f"({offset}+{length} > {n})")
        if token in seen:
            raise ProtocolError(f"PRELOGIN option 0x{token:02x} appears twice")
        seen.add(token)
        _set_option(p, token, bytes(b[offset:offset + length]))
    if PreloginOption.VERSION not in seen:
        raise ProtocolError("PRELOGIN has no VERSION option")
    return p


def _one_byte(token: int, value: bytes) -> int | None:
    if not value:
        return None
    if len(value) != 1:
        raise ProtocolError(f"PRELOGIN option 0x{token:02x} must be 1 byte, got {len(value)}")
    return value[0]


def _set_option(p: Prelogin, token: int, value: bytes) -> None:
    if token == PreloginOption.VERSION:
        if len(value) != 6:
            raise ProtocolError(f"PRELOGIN VERSION must be 6 bytes, got {len(value)}")
        p.version = value
    elif token == PreloginOption.ENCRYPTION:
        p.encryption = _one_byte(token, value)
    elif token == PreloginOption.INSTOPT:
        p.instopt = value
    elif token == PreloginOption.THREADID:
        if not value:
            p.threadid_empty = True
        elif len(value) == 4:
            p.threadid = _U32_BE.unpack(value)[0]
        else:
            raise ProtocolError(f"PRELOGIN THREADID must be 0 or 4 bytes, got {len(value)}")
    elif token == PreloginOption.MARS:
        p.mars = _one_byte(token, value)
    elif token == PreloginOption.TRACEID:
        if len(value) != 36:
            raise ProtocolError(f"PRELOGIN TRACEID must be 36 bytes, got {len(value)}")
        p.traceid = value
    elif token == PreloginOption.FEDAUTHREQUIRED:
        p.fedauth_required = _one_byte(token, value)
    elif token == PreloginOption.NONCEOPT:
        if len(value) != 32:
            raise ProtocolError(f"PRELOGIN NONCEOPT must be 32 bytes, got {len(value)}")
        p.nonce = value
    else:
        p.unknown[token] = value
