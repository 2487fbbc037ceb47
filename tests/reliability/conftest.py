"""Fixtures of the reliability suite: ``sql_target`` and ``reader`` (tests/loads.py), and a
:class:`scenarios.Lab` on the session's emulator."""

from __future__ import annotations

import pytest
from loads import reader, sql_target

__all__ = ["lab", "reader", "sql_target"]


@pytest.fixture
def lab(emu_proc, driver_path, monkeypatch):
    """The session's emulator, loading with its SQL login; read back with pyodbc."""
    from reliability.scenarios import Lab

    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", emu_proc.credentials.sql_password)
    lab = Lab(emu_proc, driver_path)
    yield lab
    lab.close()
