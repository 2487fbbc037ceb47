"""Shared wire primitives: B_VARCHAR / US_VARCHAR strings, token framing, error mapping (2.2.5)."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.values import LOW_LEVEL_ERRORS

__all__ = [
    "U16",
    "U32",
    "b_varchar",
    "body_bounds",
    "check_end",
    "checked",
    "expect_token",
    "read_b_varchar",
    "read_us_varchar",
    "us_varchar",
    "with_length",
]

U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
_TOKEN_U16 = struct.Struct("<BH")
F = TypeVar("F", bound=Callable[..., Any])


def checked(fn: F) -> F:
    """Turn low-level decoding errors (short buffers, bad UTF-16...) into ProtocolError."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LOW_LEVEL_ERRORS as e:
            what = fn.__name__.removeprefix("decode_").replace("_", " ")
            raise ProtocolError(f"malformed {what}: {e}") from None

    return wrapper  # type: ignore[return-value]


def b_varchar(s: str) -> bytes:
    """u8 character count + UTF-16LE (names: at most 255 characters)."""
    raw = s.encode("utf-16-le", "surrogatepass")
    if len(raw) > 510:
        raise ValueError(f"name longer than 255 characters: {s[:40]!r}...")
    return bytes((len(raw) // 2,)) + raw


def us_varchar(s: str) -> bytes:
    """u16 character count + UTF-16LE."""
    raw = s.encode("utf-16-le", "surrogatepass")
    if len(raw) > 0x1FFFE:
        raise ValueError("text longer than 65535 characters")
    return U16.pack(len(raw) // 2) + raw


def read_b_varchar(buf: bytes, pos: int) -> tuple[str, int]:
    """Read a B_VARCHAR at ``pos``."""
    end = pos + 1 + 2 * buf[pos]
    if end > len(buf):
        raise ProtocolError("B_VARCHAR runs past the end of the data")
    return str(buf[pos + 1:end], "utf-16-le", "surrogatepass"), end


def read_us_varchar(buf: bytes, pos: int) -> tuple[str, int]:
    """Read a US_VARCHAR at ``pos``."""
    end = pos + 2 + 2 * U16.unpack_from(buf, pos)[0]
    if end > len(buf):
        raise ProtocolError("US_VARCHAR runs past the end of the data")
    return str(buf[pos + 2:end], "utf-16-le", "surrogatepass"), end


def with_length(token: int, body: bytes) -> bytes:
    """Token byte + u16 length + body."""
    if len(body) > 0xFFFF:
        raise ValueError(f"token 0x{token:02x} body of {len(body)} bytes exceeds 65535")
    return _TOKEN_U16.pack(token, len(body)) + body


def expect_token(buf: bytes, pos: int, token: int) -> None:
    """Raise ProtocolError unless ``buf[pos]`` is ``token``."""
    if buf[pos] != token:
        raise ProtocolError(f"expected token 0x{token:02x} at byte {pos}, got 0x{buf[pos]:02x}")


def body_bounds(buf: bytes, pos: int, token: int) -> tuple[int, int]:
    """Check the token byte and its u16 length; return (body start, body end)."""
    expect_token(buf, pos, token)
    end = pos + 3 + U16.unpack_from(buf, pos + 1)[0]
    if end > len(buf):
        raise ProtocolError(f"token 0x{token:02x} length runs past the end of the data")
    return pos + 3, end


def check_end(pos: int, end: int, token: int) -> None:
    """Raise ProtocolError when a token's fields do not fill exactly its declared length."""
    if pos != end:
        raise ProtocolError(f"token 0x{token:02x} declared length does not match its fields")
