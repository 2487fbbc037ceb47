"""Each azure-identity credential gets a token from the emulator over HTTPS, and it logs in.

The whole chain is real: azure-identity / MSAL over TLS to the emulator's identity
endpoints, then Microsoft's ODBC driver presenting that token in LOGIN7 FEDAUTH.
"""

from __future__ import annotations

from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
identity = pytest.importorskip("azure.identity")
pytestmark = pytest.mark.integration

SCOPE = "https://database.windows.net/.default"


@pytest.fixture
def azure_env(emu, monkeypatch):
    for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in emu.env.items():
        if name != "SSL_CERT_FILE":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_cert)


def _authority(emu):
    return {"authority": emu.identity.authority_host, "disable_instance_discovery": True}


def _credential(emu, kind, tmp_path):
    creds = emu.identity.credentials
    if kind == "managed_identity":
        return identity.ManagedIdentityCredential(), creds.managed_identity
    if kind == "client_secret":
        app = creds.service_principal
        return identity.ClientSecretCredential(emu.tenant_id, app.client_id, app.client_secret,
                                               **_authority(emu)), app
    if kind == "certificate":
        app = creds.certificate_app
        return identity.CertificateCredential(emu.tenant_id, app.client_id,
                                              certificate_path=str(app.certificate_path),
                                              **_authority(emu)), app
    app = creds.workload_app
    token_file = emu.identity.issue_federated_assertion(client_id=app.client_id,
                                                        path=tmp_path / "sa-token")
    return identity.WorkloadIdentityCredential(tenant_id=emu.tenant_id, client_id=app.client_id,
                                               token_file_path=str(token_file),
                                               **_authority(emu)), app


@pytest.mark.parametrize("kind", ["managed_identity", "client_secret", "certificate",
                                  "workload_identity"])
def test_credential_token_logs_in(emu, driver_path, azure_env, tmp_path, kind):
    credential, app = _credential(emu, kind, tmp_path)
    token = credential.get_token(SCOPE).token
    before = emu.metrics()
    conn = pyodbc.connect(odbc_string(emu, driver_path), autocommit=True, timeout=15,
                          attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})
    with closing(conn):
        login, db = conn.cursor().execute("SELECT SUSER_SNAME(), DB_NAME()").fetchone()
        spid = conn.cursor().execute("SELECT @@SPID").fetchone()[0]
        session = next(s for s in emu.tds.sessions_info() if s["spid"] == spid)
    assert login == f"{app.client_id}@{emu.tenant_id}"
    assert db == emu.database
    assert session["principal"] == emu.identity.authenticate(token, emu.database).name
    after = emu.metrics()
    assert after["logins_ok"] == before["logins_ok"] + 1
    assert after["distinct_tokens"] == before["distinct_tokens"] + 1


def test_default_azure_credential_logs_in(emu, driver_path, azure_env):
    # EnvironmentCredential (AZURE_CLIENT_ID/SECRET from emu.env) answers first
    token = identity.DefaultAzureCredential(disable_instance_discovery=True).get_token(SCOPE)
    conn = pyodbc.connect(odbc_string(emu, driver_path), autocommit=True, timeout=15,
                          attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token.token)})
    with closing(conn):
        assert conn.cursor().execute("SELECT DB_NAME()").fetchone()[0] == emu.database
