"""``AzureSqlBulkHook`` against the emulator: connections from ``AIRFLOW_CONN_*`` variables."""

from __future__ import annotations

import json
import logging

import pytest
from integration.airflow.airflow_env import conn_json

pytest.importorskip("airflow.sdk")
pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration


@pytest.fixture
def airflow_env(identity_vars):
    """The emulator's identity endpoint and CA only; connections are added per test."""
    return identity_vars


def hook_for(conn_id: str):
    from airflow_integration.hooks import AzureSqlBulkHook

    return AzureSqlBulkHook(conn_id)


def test_managed_identity_connection_reports_its_principal(emu_proc, airflow_env):
    airflow_env.setenv("AIRFLOW_CONN_AZSQL_MI", conn_json(emu_proc, "managed_identity"))
    ok, message = hook_for("azsql_mi").test_connection()
    assert ok, message
    # Azure SQL names an app or managed identity <client id>@<tenant id>.
    identity = emu_proc.credentials.managed_identity
    assert f"as {identity.client_id}@{emu_proc.tenant_id} (managed-identity)" in message
    assert f"/{emu_proc.database} as" in message


def test_service_principal_secret_comes_from_the_password_field(emu_proc, airflow_env, caplog):
    airflow_env.setenv("AIRFLOW_CONN_AZSQL_SP", conn_json(emu_proc, "service_principal"))
    caplog.set_level(logging.DEBUG)
    hook = hook_for("azsql_sp")
    ok, message = hook.test_connection()
    app = emu_proc.credentials.service_principal
    assert ok, message
    assert f"as {app.client_id}@{emu_proc.tenant_id} (service-principal)" in message
    options = hook.connection_options()
    assert options.credential.client_id == app.client_id
    for text in (message, repr(options), repr(hook), caplog.text):
        assert app.client_secret not in text


def test_a_wrong_secret_fails_without_showing_it(emu_proc, airflow_env, caplog):
    fields = json.loads(conn_json(emu_proc, "service_principal"))
    wrong = "emu~not-the-secret-" + "x" * 20
    fields["password"] = wrong
    airflow_env.setenv("AIRFLOW_CONN_AZSQL_BAD", json.dumps(fields))
    ok, message = hook_for("azsql_bad").test_connection()
    assert not ok and "service-principal" in message
    assert wrong not in message and wrong not in caplog.text


def test_identity_from_an_azure_connection(emu_proc, airflow_env):
    app = emu_proc.credentials.service_principal
    airflow_env.setenv("AIRFLOW_CONN_AZURE_SP", json.dumps({
        "conn_type": "azure", "login": app.client_id, "password": app.client_secret,
        "extra": {"tenantId": emu_proc.tenant_id}}))
    airflow_env.setenv("AIRFLOW_CONN_AZSQL_VIA_AZURE", conn_json(
        emu_proc, "managed_identity", azure_conn_id="azure_sp",
        authority_host=emu_proc.authority_host, disable_instance_discovery=True))
    ok, message = hook_for("azsql_via_azure").test_connection()
    assert ok, message
    assert f"as {app.client_id}@{emu_proc.tenant_id} (service-principal)" in message


def test_get_conn_runs_sql_with_a_token_login(emu_proc, airflow_env):
    airflow_env.setenv("AIRFLOW_CONN_AZSQL_MI", conn_json(emu_proc, "managed_identity"))
    hook = hook_for("azsql_mi")
    try:
        with hook.get_conn() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT DB_NAME()")
            assert cursor.fetchall() == [[emu_proc.database]]
            assert conn.token_expires_at is not None and conn.seconds_left() > 0
    finally:
        hook.close()
