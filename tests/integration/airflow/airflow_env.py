"""What the Airflow integration tests share: data shape, emulator connections, checks."""

from __future__ import annotations

import json

# the same table shape and checks as the engine's load tests (tests/loads.py); AZURE_VARS
# are the variables that would let azure-identity find an identity other than the one
# under test
from loads import AZURE_VARS, check_exact, rows_table
from loads import journal_rows as journal

__all__ = ["AZURE_VARS", "FILES", "ROWS_PER_FILE", "TOTAL_ROWS", "check_exact", "conn_json",
           "identity_env", "journal", "rows_table"]

FILES = 8
ROWS_PER_FILE = 1_000
TOTAL_ROWS = FILES * ROWS_PER_FILE


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
