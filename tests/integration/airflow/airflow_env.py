"""What the Airflow integration tests share: data shape, emulator connections, checks."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

FILES = 8
ROWS_PER_FILE = 1_000
TOTAL_ROWS = FILES * ROWS_PER_FILE
# Variables that would let azure-identity find an identity other than the one under test.
AZURE_VARS = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
              "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT",
              "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZSQL_BULK_ACCESS_TOKEN")


def rows_table(n: int, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table({"id": pa.array(ids, pa.int64()),
                     "amount": pa.array([i * 0.25 for i in ids], pa.float64()),
                     "name": pa.array([f"row-{i:06d}" for i in ids], pa.string())})


def identity_env(emu) -> dict[str, str]:
    """Only the managed-identity endpoint and the CA: no service principal secret."""
    env = {k: v for k, v in emu.env.items() if k not in ("AZURE_CLIENT_SECRET",
                                                          "AZURE_CLIENT_ID", "AZURE_TENANT_ID")}
    env["SSL_CERT_FILE"] = emu.ca_cert
    env["REQUESTS_CA_BUNDLE"] = emu.ca_cert
    return env


def conn_json(emu, auth: str, **extra: object) -> str:
    """An AIRFLOW_CONN_* value (JSON) for the emulator with ``auth``."""
    fields: dict[str, object] = {
        "conn_type": "azure_sql_bulk", "host": emu.tds_host, "port": emu.tds_port,
        "schema": emu.database,
        "extra": {"auth": auth, "encrypt": "strict", "server_certificate": emu.server_cert,
                  "host_name_in_certificate": "localhost", "login_timeout": 15, **extra}}
    if auth == "service_principal":
        app = emu.credentials.service_principal
        fields["login"] = app.client_id
        fields["password"] = app.client_secret
        fields["extra"].update({"tenant_id": emu.tenant_id,  # type: ignore[union-attr]
                                "authority_host": emu.authority_host,
                                "disable_instance_discovery": True})
    return json.dumps(fields)


def check_exact(conn, table: str, n: int) -> None:
    """``table`` holds ids 0..n-1 exactly once, with their amounts and names."""
    count, distinct, total, amount = conn.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT id), SUM(id), SUM(amount) FROM {table}").fetchone()
    assert (count, distinct, total) == (n, n, n * (n - 1) // 2)
    assert amount == pytest.approx(n * (n - 1) // 2 * 0.25, rel=0, abs=1e-6)
    probes = [0, n // 2 + 1, n - 1]
    got = conn.execute(f"SELECT id, amount, name FROM {table} WHERE id IN (?, ?, ?) "
                       "ORDER BY id", *probes).fetchall()
    assert [tuple(r) for r in got] == [(i, i * 0.25, f"row-{i:06d}") for i in probes]


def journal(conn, load_id: str) -> tuple[int, int]:
    """(batches, rows) journaled under ``load_id``."""
    batches, rows = conn.execute("SELECT COUNT(*), COALESCE(SUM([rows]), 0) FROM "
                                 "[azsql_bulk].[load_journal] WHERE load_id = ?",
                                 load_id).fetchone()
    return batches, rows
