"""Helpers for engine load tests against the emulator: targets, a read-back client, data.

The fixtures ``sql_target`` and ``reader`` are re-exported by
``tests/integration/engine/conftest.py``.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from engine.connection import ConnectionOptions, RetryPolicy
from engine.credentials import CredentialOptions
from engine.options import Target

pyodbc = pytest.importorskip("pyodbc")

CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
AZURE_VARS = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
               "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT",
               "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZSQL_BULK_ACCESS_TOKEN")


def connection_options(emulator, credential: CredentialOptions) -> ConnectionOptions:
    return ConnectionOptions(server=emulator.tds_host, port=emulator.tds_port,
                             database=emulator.database, credential=credential,
                             encrypt="strict", server_certificate=emulator.server_cert,
                             host_name_in_certificate="localhost", login_timeout=15,
                             retry=RetryPolicy(attempts=5, base_delay=0.1, max_delay=1.0))


@pytest.fixture
def sql_target(emu_proc, monkeypatch):
    """Makes a Target for a fresh table name, logging in with the emulator's SQL login."""
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", emu_proc.credentials.sql_password)
    credential = CredentialOptions(kind="sql", sql_user=emu_proc.credentials.sql_login)

    def make(prefix: str) -> Target:
        return Target(connection_options(emu_proc, credential),
                      f"dbo.{prefix}_{uuid.uuid4().hex[:8]}")
    return make


@pytest.fixture(scope="module")
def reader(emu_proc, driver_path):
    """A pyodbc connection for reading back (a different client than the loader's)."""
    from support import odbc_string

    creds = emu_proc.credentials
    text = odbc_string(emu_proc, driver_path, UID=creds.sql_login, PWD=creds.sql_password)
    conn = pyodbc.connect(text, autocommit=True)
    yield conn
    conn.close()


def rows_table(n: int, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "amount": pa.array([i * 0.25 for i in ids], pa.float64()),  # exact in binary
        "name": pa.array([f"row-{i:06d}" for i in ids], pa.string()),
    })


def check_exact(conn, table: str, n: int, start: int = 0) -> None:
    count, distinct, total, amount = conn.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT id), SUM(id), SUM(amount) FROM {table}").fetchone()
    ids = range(start, start + n)
    assert (count, distinct, total) == (n, n, sum(ids))
    assert amount == pytest.approx(sum(ids) * 0.25, rel=0, abs=1e-6)
    probes = [start, start + n // 2 + 1, start + n - 1]
    got = conn.execute(f"SELECT id, amount, name FROM {table} WHERE id IN (?, ?, ?) "
                       "ORDER BY id", *probes).fetchall()
    assert [tuple(r) for r in got] == [(i, i * 0.25, f"row-{i:06d}") for i in probes]


def journal_rows(conn, load_id: str) -> tuple[int, int]:
    batches, rows = conn.execute("SELECT COUNT(*), COALESCE(SUM([rows]), 0) FROM "
                                 "[azsql_bulk].[load_journal] WHERE load_id = ?",
                                 load_id).fetchone()
    return batches, rows


