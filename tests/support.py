"""Helpers the integration tests share: ODBC connection strings and token structures."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from engine.connection_string import build_connection_string

SQL_COPT_SS_ACCESS_TOKEN = 1256


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
