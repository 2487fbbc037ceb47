"""Fixtures of the CLI's integration tests: the emulator's SQL login and a pyodbc reader."""

from __future__ import annotations

import pytest
from integration.cli.cli_env import clean_env


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


@pytest.fixture(scope="module")
def reader(emu_proc, driver_path):
    """A pyodbc connection (SQL login): tables are read back with another client."""
    pyodbc = pytest.importorskip("pyodbc")
    from support import odbc_string

    creds = emu_proc.credentials
    conn = pyodbc.connect(odbc_string(emu_proc, driver_path, UID=creds.sql_login,
                                      PWD=creds.sql_password), autocommit=True)
    yield conn
    conn.close()
