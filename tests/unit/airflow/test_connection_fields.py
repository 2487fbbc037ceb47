"""Airflow connections -> engine connection options, for every auth kind (no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_integration.connection_fields import connection_options, extra_value
from engine.credentials import CredentialKind
from engine.errors import ConfigurationError

sdk = pytest.importorskip("airflow.sdk")

SECRET = "sp-secret-Very~Hidden.value-123"


def conn(**fields) -> object:
    fields.setdefault("host", "myserver.database.windows.net")
    fields.setdefault("schema", "sales")
    extra = fields.pop("extra", {})
    return sdk.Connection(conn_id="x", conn_type="azure_sql_bulk", extra=json.dumps(extra),
                          **fields)


def test_defaults_are_managed_identity_port_1433_and_encryption():
    options = connection_options(conn())
    assert (options.server, options.port, options.database) == (
        "myserver.database.windows.net", 1433, "sales")
    assert options.credential.kind is CredentialKind.MANAGED_IDENTITY
    assert options.credential.client_id is None
    assert str(options.encrypt) == "yes"


def test_user_assigned_managed_identity_and_strict_encryption(tmp_path):
    pem = tmp_path / "server.pem"
    options = connection_options(conn(port=14330, extra={
        "auth": "managed_identity", "managed_identity_client_id": "mi-client",
        "encrypt": "strict", "server_certificate": str(pem),
        "host_name_in_certificate": "*.database.windows.net", "login_timeout": "20"}))
    assert options.port == 14330 and options.credential.client_id == "mi-client"
    assert str(options.encrypt) == "strict" and options.server_certificate == Path(pem)
    assert options.host_name_in_certificate == "*.database.windows.net"
    assert options.login_timeout == 20


def test_service_principal_takes_the_secret_from_the_password_field():
    options = connection_options(conn(login="app-id", password=SECRET, extra={
        "auth": "service_principal", "tenant_id": "tenant"}))
    credential = options.credential
    assert credential.kind is CredentialKind.SERVICE_PRINCIPAL
    assert (credential.client_id, credential.tenant_id) == ("app-id", "tenant")
    assert credential.secret_store is not None and credential.secret_store() == SECRET
    for text in (repr(options), repr(credential), str(options)):
        assert SECRET not in text


def test_service_principal_client_id_extra_wins_over_login_and_certificate_needs_no_secret():
    options = connection_options(conn(login="login-id", extra={
        "auth": "service_principal", "client_id": "extra-id", "tenant_id": "t",
        "certificate_path": "/run/secrets/sp.pem"}))
    assert options.credential.client_id == "extra-id"
    assert options.credential.certificate_path == Path("/run/secrets/sp.pem")
    assert options.credential.secret_store is None


def test_service_principal_without_secret_or_certificate_is_refused():
    with pytest.raises(ConfigurationError, match="password field"):
        connection_options(conn(login="app", extra={"auth": "service_principal"}))


@pytest.mark.parametrize(("auth", "kind"), [
    ("workload_identity", CredentialKind.WORKLOAD_IDENTITY),
    ("azure_cli", CredentialKind.AZURE_CLI),
    ("default", CredentialKind.DEFAULT),
    ("managed-identity", CredentialKind.MANAGED_IDENTITY),  # the engine's spelling works too
])
def test_other_auth_kinds(auth, kind):
    options = connection_options(conn(extra={"auth": auth, "tenant_id": "t", "client_id": "c"}))
    assert options.credential.kind is kind


def test_password_is_ignored_unless_service_principal():
    options = connection_options(conn(password=SECRET, extra={"auth": "managed_identity"}))
    assert options.credential.secret_store is None


@pytest.mark.parametrize("auth", ["kerberos", "sql", "access_token"])
def test_unknown_or_cli_only_auth_lists_the_choices(auth):
    with pytest.raises(ConfigurationError, match="managed_identity, workload_identity"):
        connection_options(conn(extra={"auth": auth}))


def test_missing_host_or_database_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="no host"):
        connection_options(conn(host=None))
    with pytest.raises(ConfigurationError, match="no schema"):
        connection_options(conn(schema=None))


def test_ui_prefixed_extras_and_empty_strings():
    extra = {"extra__azure_sql_bulk__auth": "azure_cli", "tenant_id": "",
             "extra__azure_sql_bulk__tenant_id": "t2"}
    assert extra_value(extra, "tenant_id") == "t2"
    options = connection_options(conn(extra=extra))
    assert options.credential.kind is CredentialKind.AZURE_CLI
    assert options.credential.tenant_id == "t2"


def test_sovereign_cloud_and_private_authority():
    options = connection_options(conn(extra={
        "auth": "default", "cloud": "usgov", "authority_host": "https://login.example",
        "disable_instance_discovery": "true"}))
    credential = options.credential
    assert credential.effective_scope == "https://database.usgovcloudapi.net/.default"
    assert credential.authority_host == "https://login.example"
    assert credential.disable_instance_discovery is True


def test_azure_connection_identity_service_principal_and_default():
    azure_sp = sdk.Connection(conn_id="azure", conn_type="azure", login="sp-app",
                              password=SECRET, extra=json.dumps({"tenantId": "t"}))
    options = connection_options(conn(extra={"auth": "managed_identity"}), azure_sp)
    assert options.credential.kind is CredentialKind.SERVICE_PRINCIPAL
    assert (options.credential.client_id, options.credential.tenant_id) == ("sp-app", "t")
    assert options.credential.secret_store() == SECRET  # type: ignore[misc]
    azure_mi = sdk.Connection(conn_id="azure", conn_type="azure", extra=json.dumps(
        {"managed_identity_client_id": "mi"}))
    options = connection_options(conn(), azure_mi)
    assert options.credential.kind is CredentialKind.DEFAULT
    assert options.credential.client_id == "mi"


def test_connection_from_an_environment_uri(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AZSQL_URI",
                       "azure-sql-bulk://app-id:s3cr%7Et@srv.database.windows.net:1444/sales"
                       "?auth=service_principal&tenant_id=t&encrypt=yes")
    found = sdk.BaseHook.get_connection("azsql_uri")
    options = connection_options(found)
    assert (options.server, options.port, options.database) == (
        "srv.database.windows.net", 1444, "sales")
    assert options.credential.secret_store() == "s3cr~t"  # type: ignore[misc]
    assert "s3cr~t" not in repr(options)
