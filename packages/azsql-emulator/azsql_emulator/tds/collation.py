"""The 5-byte TDS COLLATION (2.2.5.1.2) and the code page it implies for varchar data."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from azsql_emulator.tds.packet import ProtocolError

__all__ = [
    "DEFAULT_COLLATION",
    "Collation",
    "collation_codec",
    "decode_collation",
    "encode_collation",
]

_COLLATION = struct.Struct("<IB")

# Flag bits (the 8 bits above the 20-bit LCID).
IGNORE_CASE = 0x01
IGNORE_ACCENT = 0x02
IGNORE_WIDTH = 0x04
IGNORE_KANA = 0x08
BINARY = 0x10
BINARY2 = 0x20
UTF8 = 0x40


@dataclass(frozen=True)
class Collation:
    """A collation as TDS carries it: LCID, comparison flags, version and SQL sort id.

    The default is SQL_Latin1_General_CP1_CI_AS (sort id 52, code page 1252).
    """

    lcid: int = 0x0409
    flags: int = IGNORE_CASE | IGNORE_WIDTH | IGNORE_KANA
    version: int = 0
    sort_id: int = 52

    @property
    def utf8(self) -> bool:
        return bool(self.flags & UTF8)

    @property
    def codec(self) -> str:
        """The Python codec for varchar data in this collation."""
        return _codec(self.lcid, self.flags, self.sort_id)


def encode_collation(c: Collation) -> bytes:
    """Encode a collation as 5 bytes.

    >>> encode_collation(Collation()).hex()
    '0904d00034'
    """
    if not (0 <= c.lcid < 1 << 20 and 0 <= c.flags < 256 and 0 <= c.version < 16
            and 0 <= c.sort_id < 256):
        raise ValueError(f"collation field out of range: {c}")
    return _COLLATION.pack(c.lcid | c.flags << 20 | c.version << 28, c.sort_id)


def decode_collation(raw: bytes) -> Collation:
    """Decode 5 collation bytes."""
    if len(raw) != 5:
        raise ProtocolError(f"collation must be 5 bytes, got {len(raw)}")
    info, sort_id = _COLLATION.unpack(bytes(raw))
    return Collation(info & 0xFFFFF, (info >> 20) & 0xFF, info >> 28, sort_id)


DEFAULT_COLLATION: bytes = encode_collation(Collation())


# SQL collation sort ids -> code page ("SQL Server Collation Name", sort order ids).
_SORT_ID_RANGES = (
    ((30, 34), "cp437"),
    ((40, 44), "cp850"), ((49, 49), "cp850"), ((55, 61), "cp850"),
    ((50, 54), "cp1252"), ((71, 72), "cp1252"), ((183, 186), "cp1252"), ((210, 217), "cp1252"),
    ((80, 96), "cp1250"),
    ((104, 108), "cp1251"),
    ((112, 114), "cp1253"), ((120, 124), "cp1253"),
    ((128, 130), "cp1254"),
    ((136, 138), "cp1255"),
    ((144, 146), "cp1256"),
    ((152, 160), "cp1257"),
    ((192, 193), "cp932"), ((200, 200), "cp932"),
    ((194, 195), "cp949"), ((201, 201), "cp949"),
    ((196, 197), "cp950"), ((202, 202), "cp950"),
    ((198, 199), "cp936"), ((203, 203), "cp936"),
    ((204, 206), "cp874"),
)

# Windows collations: code page by primary language id (low 10 bits of the LCID).
_PRIMARY_LANGUAGE = {
    0x01: "cp1256", 0x05: "cp1250", 0x08: "cp1253", 0x0D: "cp1255", 0x0E: "cp1250",
    0x11: "cp932", 0x12: "cp949", 0x15: "cp1250", 0x18: "cp1250", 0x19: "cp1251",
    0x1A: "cp1250", 0x1B: "cp1250", 0x1C: "cp1250", 0x1E: "cp874", 0x1F: "cp1254",
    0x20: "cp1256", 0x22: "cp1251", 0x23: "cp1251", 0x24: "cp1250", 0x25: "cp1257",
    0x26: "cp1257", 0x27: "cp1257", 0x29: "cp1256", 0x2A: "cp1258", 0x2F: "cp1251",
    0x3F: "cp1251", 0x40: "cp1251", 0x43: "cp1251", 0x44: "cp1251", 0x50: "cp1251",
}
_CHINESE = {0x0804: "cp936", 0x1004: "cp936", 0x0404: "cp950", 0x0C04: "cp950", 0x1404: "cp950"}
_SERBIAN_CYRILLIC = {0x0C1A, 0x1C1A, 0x281A, 0x301A}


@lru_cache(maxsize=256)
def _codec(lcid: int, flags: int, sort_id: int) -> str:
    if flags & UTF8:
        return "utf-8"
    if sort_id:
        for (lo, hi), codec in _SORT_ID_RANGES:
            if lo <= sort_id <= hi:
                return codec
        return "cp1252"
    lang = lcid & 0xFFFF
    if lang in _CHINESE:
        return _CHINESE[lang]
    if lang in _SERBIAN_CYRILLIC:
        return "cp1251"
    return _PRIMARY_LANGUAGE.get(lcid & 0x3FF, "cp1252")


@lru_cache(maxsize=256)
def collation_codec(raw: bytes | None) -> str:
    """The Python codec for varchar data under 5 raw collation bytes (cp1252 when None)."""
    if raw is None:
        return "cp1252"
    return decode_collation(raw).codec
