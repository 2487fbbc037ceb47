"""engine.odbc_connection.Connection.odbc_handle: what it reads from turbodbc, and when not.

The real handle (a patched turbodbc against the emulator) is checked in
tests/integration/engine/test_odbc_handle.py; these use stand-ins for turbodbc's objects.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.odbc_connection import Connection


class _Raw:
    """Shaped like turbodbc.connection.Connection: ``impl`` is the pybind11 object."""

    def __init__(self, impl: object) -> None:
        self.impl = impl

    def close(self) -> None:
        self.impl = None


def _conn(raw: object) -> Connection:
    return Connection(raw, token_expires_at=None, where="srv,1433/db")


def test_odbc_handle_is_the_patched_bindings_integer():
    conn = _conn(_Raw(SimpleNamespace(odbc_handle=0x55D0_1234_5678)))
    assert conn.odbc_handle == 0x55D0_1234_5678


def test_odbc_handle_is_none_without_the_patch():
    assert _conn(_Raw(SimpleNamespace())).odbc_handle is None


@pytest.mark.parametrize("value", [0, None, "0x1"])
def test_odbc_handle_is_none_for_no_handle_or_a_non_integer(value):
    assert _conn(_Raw(SimpleNamespace(odbc_handle=value))).odbc_handle is None


def test_odbc_handle_is_none_once_closed():
    conn = _conn(_Raw(SimpleNamespace(odbc_handle=4096)))
    conn.close()
    assert conn.odbc_handle is None


def test_odbc_handle_is_read_only():
    conn = _conn(_Raw(SimpleNamespace(odbc_handle=4096)))
    with pytest.raises(AttributeError):
        conn.odbc_handle = 1  # type: ignore[misc]
    assert conn.odbc_handle == 4096
