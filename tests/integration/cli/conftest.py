"""Fixtures of the CLI's integration tests: the emulator's SQL login; ``reader`` (pyodbc)."""

from __future__ import annotations

import pytest
from integration.cli.cli_env import clean_env
from loads import reader

__all__ = ["conn_args", "reader", "sql_env"]


@pytest.fixture(scope="module")
def sql_env(emu_proc) -> dict[str, str]:
    """A clean environment holding only the emulator's SQL password."""
    return clean_env(AZSQL_BULK_SQL_PASSWORD=emu_proc.credentials.sql_password)


@pytest.fixture(scope="module")
def conn_args(emu_proc) -> list[str]:
    """``--server ... --auth sql ...``: the emulator over strict TLS."""
    return ["--server", f"{emu_proc.tds_host},{emu_proc.tds_port}",
            "--database", emu_proc.database, "--auth", "sql",
            "--sql-user", emu_proc.credentials.sql_login, "--encrypt", "strict",
            "--server-certificate", emu_proc.server_cert,
            "--host-name-in-certificate", "localhost", "--login-timeout", "15"]
