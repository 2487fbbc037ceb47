"""Helpers the integration tests share: ODBC connection strings and token structures."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engine.connection_string import build_connection_string

SQL_COPT_SS_ACCESS_TOKEN = 1256
# Microsoft's driver's SQL types of datetime2, time and datetimeoffset results
SQL_TYPE_TIMESTAMP = 93
SQL_SS_TIME2 = -154
SQL_SS_TIMESTAMPOFFSET = -155


def _fraction(ns: int, digits: int) -> str:
    return f"{ns // 10 ** (9 - digits):0{digits}d}"


def timestamp_text(raw: bytes | None, digits: int = 9) -> str | None:
    """SQL_TIMESTAMP_STRUCT (a pyodbc output converter's bytes) as
    'YYYY-MM-DD hh:mm:ss.fffffffff': the fraction in nanoseconds, which pyodbc's own
    datetime would cut to microseconds."""
    if raw is None:
        return None
    y, mo, d, h, mi, s, ns = struct.unpack("<h5HI", raw)
    return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.{_fraction(ns, digits)}"


def time_text(raw: bytes | None, digits: int = 9) -> str | None:
    """SQL_SS_TIME2_STRUCT as 'hh:mm:ss.fffffffff'."""
    if raw is None:
        return None
    h, mi, s, ns = struct.unpack("<3HxxI", raw)
    return f"{h:02d}:{mi:02d}:{s:02d}.{_fraction(ns, digits)}"


def offset_text(raw: bytes | None, digits: int = 9) -> str | None:
    """SQL_SS_TIMESTAMPOFFSET_STRUCT as 'YYYY-MM-DD hh:mm:ss.fffffffff +hh:mm' (pyodbc has
    no converter of its own for it)."""
    if raw is None:
        return None
    y, mo, d, h, mi, s, ns, tzh, tzm = struct.unpack("<6hI2h", raw)
    sign = "-" if tzh < 0 or tzm < 0 else "+"
    return (f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.{_fraction(ns, digits)} "
            f"{sign}{abs(tzh):02d}:{abs(tzm):02d}")


def read_temporals_as_text(conn) -> None:
    """Make a pyodbc connection return datetime2, time and datetimeoffset values as the
    text of the driver's structs, to the nanosecond.

    :param conn: a pyodbc connection.
    """
    conn.add_output_converter(SQL_TYPE_TIMESTAMP, timestamp_text)
    conn.add_output_converter(SQL_SS_TIME2, time_text)
    conn.add_output_converter(SQL_SS_TIMESTAMPOFFSET, offset_text)


def token_struct(token: str) -> bytes:
    """The ACCESSTOKEN structure Microsoft's driver takes: u32 LE byte length + UTF-16LE."""
    raw = token.encode("utf-16-le")
    return struct.pack("<I", len(raw)) + raw


def odbc_string(emu, driver: str, *, encrypt: str = "strict", database: str | None = None,
                **extra: object) -> str:
    """A connection string for Microsoft's driver pointed at the emulator."""
    attrs: dict[str, object] = {
        "Driver": driver,
        "Server": f"tcp:{emu.tds_host},{emu.tds_port}",
        "Database": database or emu.database,
        "Encrypt": encrypt,
        "LoginTimeout": 15,
    }
    if encrypt == "strict":
        attrs["ServerCertificate"] = emu.server_cert
        attrs["HostNameInCertificate"] = "localhost"
    attrs.update(extra)
    return build_connection_string(attrs)


def inject_fault(emu, **fault: object) -> dict:
    """``POST /faults`` on the emulator's control API (loopback only); returns its answer.

    >>> inject_fault(emu, kind="error", number=40613, at="login")  # doctest: +SKIP
    """
    import json
    import urllib.request

    request = urllib.request.Request(
        emu.control_url + "/faults", data=json.dumps(fault).encode(),
        headers={"Content-Type": "application/json"})
    assert request.full_url.startswith("http://127.0.0.1:"), request.full_url
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict = json.loads(response.read())
    return answer


@contextmanager
def environment(values: dict[str, str], drop: tuple[str, ...] = ()) -> Iterator[None]:
    """Set (and drop) environment variables for the block, then put them back."""
    saved = {k: os.environ.get(k) for k in (*values, *drop)}
    for k in drop:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# A bound for a hung test, not a timing assertion: a slow or busy machine never reaches it.
HANG_SECONDS = 120.0


def wait_until(predicate: Callable[[], object], timeout: float = HANG_SECONDS,
               interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (then one last
    check decides). Wait on the real condition with this, never a fixed sleep."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
