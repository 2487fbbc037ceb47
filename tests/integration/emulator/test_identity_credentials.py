"""Real azure-identity credentials against the emulator's identity provider over real HTTPS.

No mocks: every credential below is azure-identity's own class, talking TLS to
the emulator's endpoints, trusting its CA through ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    EnvironmentCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

from azsql_emulator.errors import LoginError
from azsql_emulator.identity import IdentityService

pytestmark = pytest.mark.integration

SCOPE = "https://database.windows.net/.default"
_CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    with IdentityService(tmp_path_factory.mktemp("idp")) as service:
        yield service


@pytest.fixture
def env(idp, monkeypatch):
    """The emulator's environment, with only REQUESTS_CA_BUNDLE as CA trust."""
    for name in _CA_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in idp.env.items():
        if name != "SSL_CERT_FILE":
            monkeypatch.setenv(name, value)
    return idp.env


def _claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def _secret_credential(idp, app, secret=None):
    return ClientSecretCredential(
        idp.tenant_id,
        app.client_id,
        secret or app.client_secret,
        authority=idp.authority_host,
        disable_instance_discovery=True,
    )


def _get(idp, path, headers=None):
    request = urllib.request.Request(idp.authority_host + path, headers=headers or {})
    try:
        with urllib.request.urlopen(
            request, context=idp.client_ssl_context(), timeout=10
        ) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _post(idp, path, form):
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(idp.authority_host + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(
            request, context=idp.client_ssl_context(), timeout=10
        ) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- the four credential types, unchanged -------------------------------------------------


def test_managed_identity_credential(idp, env):
    token = ManagedIdentityCredential().get_token(SCOPE)
    principal = idp.authenticate(token.token, "appdb")
    assert principal.name == "azsql-emulator-mi"
    assert principal.login_name == f"{idp.credentials.managed_identity.client_id}@{idp.tenant_id}"
    assert principal.roles == {"db_owner"}
    claims = _claims(token.token)
    assert claims["aud"] == "https://database.windows.net/"
    assert claims["idtyp"] == "app" and claims["oid"] == idp.credentials.managed_identity.object_id
    assert abs(token.expires_on - claims["exp"]) <= 2


def test_user_assigned_managed_identity_by_client_id(idp, env):
    client_id = idp.credentials.managed_identity.client_id
    token = ManagedIdentityCredential(client_id=client_id).get_token(SCOPE)
    assert idp.validate(token.token).appid == client_id


def test_client_secret_credential(idp, env):
    token = _secret_credential(idp, idp.credentials.service_principal).get_token(SCOPE)
    identity = idp.validate(token.token)
    assert identity.appid == idp.credentials.service_principal.client_id
    assert identity.claims["appidacr"] == "1"
    assert idp.authenticate(token.token, "master").name == "azsql-loader-sp"


def test_certificate_credential(idp, env):
    app = idp.credentials.certificate_app
    credential = CertificateCredential(
        idp.tenant_id,
        app.client_id,
        certificate_path=str(app.certificate_path),
        authority=idp.authority_host,
        disable_instance_discovery=True,
    )
    token = credential.get_token(SCOPE)
    assert idp.validate(token.token).claims["appidacr"] == "2"
    assert idp.authenticate(token.token).name == "azsql-loader-cert"


def test_certificate_credential_with_sha256_thumbprint_and_chain(idp, env):
    # send_certificate_chain makes MSAL send x5c; the emulator must still find the key.
    app = idp.credentials.certificate_app
    credential = CertificateCredential(
        idp.tenant_id,
        app.client_id,
        certificate_path=str(app.certificate_path),
        authority=idp.authority_host,
        disable_instance_discovery=True,
        send_certificate_chain=True,
    )
    assert idp.authenticate(credential.get_token(SCOPE).token).name == "azsql-loader-cert"


def test_workload_identity_credential(idp, env, tmp_path):
    app = idp.credentials.workload_app
    token_file = idp.issue_federated_assertion(client_id=app.client_id, path=tmp_path / "sa-token")
    credential = WorkloadIdentityCredential(
        tenant_id=idp.tenant_id,
        client_id=app.client_id,
        token_file_path=str(token_file),
        authority=idp.authority_host,
        disable_instance_discovery=True,
    )
    token = credential.get_token(SCOPE)
    assert idp.authenticate(token.token).name == "azsql-loader-workload"


def test_workload_identity_from_environment(idp, env, tmp_path, monkeypatch):
    token_file = idp.issue_federated_assertion(path=tmp_path / "sa-token")
    for name, value in idp.workload_env(token_file).items():
        if name != "SSL_CERT_FILE":
            monkeypatch.setenv(name, value)
    token = WorkloadIdentityCredential(disable_instance_discovery=True).get_token(SCOPE)
    assert idp.authenticate(token.token).name == "azsql-loader-workload"


def test_environment_credential(idp, env):
    # EnvironmentCredential reads AZURE_* from env; an emulator authority needs
    # instance discovery off (MSAL would ask login.microsoftonline.com about it).
    token = EnvironmentCredential(disable_instance_discovery=True).get_token(SCOPE)
    assert idp.authenticate(token.token).name == "azsql-loader-sp"


def test_default_azure_credential(idp, env):
    # Without disable_instance_discovery=True, EnvironmentCredential inside it would first
    # ask login.microsoftonline.com whether the emulator authority is known.
    token = DefaultAzureCredential(disable_instance_discovery=True).get_token(SCOPE)
    assert idp.authenticate(token.token).name == "azsql-loader-sp"


def test_concurrent_token_requests(idp, env):
    before = idp.metrics()
    tokens: list[str] = []
    errors: list[BaseException] = []

    def worker():
        try:
            for _ in range(5):
                credential = _secret_credential(idp, idp.credentials.writer_app)  # no shared cache
                tokens.append(credential.get_token(SCOPE).token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len({_claims(t)["uti"] for t in tokens}) == 40
    after = idp.metrics()
    assert after["tokens_issued"] - before["tokens_issued"] == 40
    assert after["distinct_uti"] - before["distinct_uti"] == 40


def test_role_defaults_through_real_credentials(idp, env):
    creds = idp.credentials
    reader = idp.authenticate(_secret_credential(idp, creds.reader_app).get_token(SCOPE).token)
    assert reader.roles == {"db_datareader"}
    writer = idp.authenticate(_secret_credential(idp, creds.writer_app).get_token(SCOPE).token)
    assert writer.roles == {"db_datareader", "db_datawriter"}
    token = _secret_credential(idp, creds.no_user_app).get_token(SCOPE).token
    assert idp.validate(token).appid == creds.no_user_app.client_id  # the token itself is fine
    with pytest.raises(LoginError) as info:
        idp.authenticate(token, "appdb")
    assert info.value.reason == "unknown_principal" and token not in info.value.message


# -- CA trust --------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_ca_trust_through_requests_variables(idp, env, monkeypatch, variable):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv(variable, str(idp.ca_cert_path))
    assert ManagedIdentityCredential().get_token(SCOPE).token
    assert _secret_credential(idp, idp.credentials.service_principal).get_token(SCOPE).token


def test_ssl_cert_file_alone_is_not_honoured(idp, env, monkeypatch):
    # azure-core and MSAL use requests, which verifies with certifi unless
    # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE say otherwise; SSL_CERT_FILE is ignored.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(idp.ca_cert_path))
    with pytest.raises(ClientAuthenticationError, match="CERTIFICATE_VERIFY_FAILED"):
        _secret_credential(idp, idp.credentials.service_principal).get_token(SCOPE)


# -- renewal and persistence --------------------------------------------------------------


def test_azure_identity_renews_expired_tokens(tmp_path, monkeypatch):
    with IdentityService(tmp_path, token_lifetime=2) as short:
        for name in _CA_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in short.env.items():
            monkeypatch.setenv(name, value)
        for credential in (
            ManagedIdentityCredential(),
            _secret_credential(short, short.credentials.service_principal),
        ):
            first = credential.get_token(SCOPE)
            time.sleep(max(0.0, first.expires_on - time.time()) + 1.1)
            second = credential.get_token(SCOPE)
            assert second.token != first.token
            assert _claims(first.token)["uti"] != _claims(second.token)["uti"]
            assert second.expires_on > first.expires_on
        metrics = short.metrics()
        assert metrics["tokens_issued"] == metrics["distinct_uti"] >= 4


def test_restarted_emulator_validates_tokens_it_issued_before(tmp_path):
    with IdentityService(tmp_path) as first:
        token = first.issue_token()
        ca = first.ca_cert_path.read_bytes()
    with IdentityService(tmp_path) as second:
        assert second.validate(token).appid == second.credentials.service_principal.client_id
        assert second.ca_cert_path.read_bytes() == ca  # clients that trust ca.pem keep working


# -- endpoint shapes and errors -----------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/{t}/v2.0", "/{t}"])
def test_discovery_documents_point_at_this_server(idp, prefix):
    status, doc = _get(idp, prefix.format(t=idp.tenant_id) + "/.well-known/openid-configuration")
    assert status == 200
    for key in ("token_endpoint", "authorization_endpoint", "issuer", "jwks_uri"):
        assert doc[key].startswith(f"{idp.authority_host}/{idp.tenant_id}"), key
    status, jwks = _get(idp, doc["jwks_uri"][len(idp.authority_host) :])
    assert status == 200 and jwks == idp.jwks


@pytest.mark.parametrize("path", ["/{t}/discovery/v2.0/keys", "/common/discovery/keys"])
def test_jwks_verifies_issued_tokens(idp, path):
    status, jwks = _get(idp, path.format(t=idp.tenant_id))
    assert status == 200
    (key,) = jwks["keys"]
    assert {"kty": "RSA", "use": "sig"}.items() <= key.items() and {"kid", "n", "e", "x5t"} <= set(
        key
    )
    token = idp.issue_token()
    claims = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="https://database.windows.net/"
    )
    assert claims["tid"] == idp.tenant_id


def test_bad_client_secret_gives_aadsts7000215(idp, env):
    app = idp.credentials.service_principal
    wrong = "wrong-secret-value-1234567890"
    with pytest.raises(ClientAuthenticationError) as info:
        _secret_credential(idp, app, secret=wrong).get_token(SCOPE)
    assert "AADSTS7000215" in str(info.value) and wrong not in str(info.value)
    status, body = _post(
        idp,
        f"/{idp.tenant_id}/oauth2/v2.0/token",
        {
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": wrong,
            "scope": SCOPE,
        },
    )
    assert status == 401
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215:") and wrong not in json.dumps(body)


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"grant_type": "password"}, 400, 70003),
        ({"grant_type": "client_credentials", "scope": SCOPE}, 400, 900144),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "00000000-0000-4000-8000-000000000000",
                "scope": SCOPE,
                "client_secret": "x",
            },
            400,
            700016,
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "{sp}",
                "scope": "https://database.windows.net/user",
            },
            400,
            1002012,
        ),
        ({"grant_type": "client_credentials", "client_id": "{sp}", "scope": SCOPE}, 401, 7000218),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "{sp}",
                "scope": SCOPE,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "not.a.jwt",
            },
            401,
            50027,
        ),
    ],
)
def test_token_endpoint_errors_use_aad_shape(idp, form, status, code):
    form = {
        k: v.replace("{sp}", idp.credentials.service_principal.client_id) for k, v in form.items()
    }
    got_status, body = _post(idp, f"/{idp.tenant_id}/oauth2/v2.0/token", form)
    assert (got_status, body["error_codes"]) == (status, [code])
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert idp.metrics()["endpoint_failures"].get(f"AADSTS{code}", 0) >= 1


def test_unknown_tenant_refused(idp):
    status, body = _get(
        idp, "/00000000-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration"
    )
    assert status == 400 and body["error_codes"] == [90002]


def test_federated_assertion_with_wrong_subject_refused(idp, env, tmp_path):
    app = idp.credentials.workload_app
    token_file = idp.issue_federated_assertion(
        subject="system:serviceaccount:other:intruder", path=tmp_path / "t"
    )
    credential = WorkloadIdentityCredential(
        tenant_id=idp.tenant_id,
        client_id=app.client_id,
        token_file_path=str(token_file),
        authority=idp.authority_host,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        credential.get_token(SCOPE)


def test_federated_assertion_for_another_app_refused(idp, env, tmp_path):
    token_file = idp.issue_federated_assertion(path=tmp_path / "t")
    credential = WorkloadIdentityCredential(
        tenant_id=idp.tenant_id,
        client_id=idp.credentials.service_principal.client_id,
        token_file_path=str(token_file),
        authority=idp.authority_host,
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700211"):
        credential.get_token(SCOPE)


def test_managed_identity_endpoint_contract(idp):
    header = {"X-IDENTITY-HEADER": idp.env["IDENTITY_HEADER"]}
    path = "/msi/token?api-version=2019-08-01&resource=https://database.windows.net"
    status, body = _get(idp, path, header)
    assert status == 200
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["token_type"] == "Bearer" and body["resource"] == "https://database.windows.net"
    assert (
        body["expires_on"].isdigit()
        and int(body["expires_on"]) == _claims(body["access_token"])["exp"]
    )
    assert _claims(body["access_token"])["aud"] == "https://database.windows.net/"
    status, body = _get(idp, path, {"X-IDENTITY-HEADER": "wrong"})
    assert status == 401 and "access_token" not in body
    status, _ = _get(idp, path)
    assert status == 401
    status, _ = _get(idp, path + "&client_id=00000000-0000-4000-8000-000000000000", header)
    assert status == 400


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_https_endpoints_speak_tls12_and_tls13(idp, version):
    context = idp.client_ssl_context()
    context.minimum_version = context.maximum_version = version
    with urllib.request.urlopen(
        f"{idp.authority_host}/common/discovery/keys", context=context, timeout=10
    ) as resp:
        assert resp.status == 200


def test_untrusting_client_is_refused_and_server_survives(idp):
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(
            f"{idp.authority_host}/common/discovery/keys",
            context=ssl.create_default_context(),
            timeout=10,
        )
    assert _get(idp, "/common/discovery/keys")[0] == 200


def test_repr_and_metrics_hold_no_secret(idp, env):
    token = ManagedIdentityCredential().get_token(SCOPE).token
    text = " ".join(
        repr(x) for x in (idp, idp.credentials, idp.clients, idp.principals, idp.signing_key)
    )
    text += json.dumps(idp.metrics())
    for secret in (
        token,
        idp.env["IDENTITY_HEADER"],
        idp.credentials.service_principal.client_secret,
        idp.credentials.sql_password,
    ):
        assert secret not in text
