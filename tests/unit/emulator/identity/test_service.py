"""IdentityService: issue_token, validate/authenticate refusals with reasons, metrics, env."""

from __future__ import annotations

import pathlib
import time

import jwt
import pytest

from azsql_emulator.errors import LoginError
from azsql_emulator.identity import IdentityService, pki


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    with IdentityService(tmp_path_factory.mktemp("svc"), database="salesdb") as service:
        yield service


def _refused(idp, token, reason, *, login=False, now=None):
    before = idp.metrics()["failures_by_reason"].get(reason, 0)
    with pytest.raises(LoginError) as info:
        if login:
            idp.authenticate(token, now=now)
        else:
            idp.validate(token, now=now)
    assert info.value.reason == reason and info.value.number == 18456
    for part in [token, *token.split(".")]:
        assert not part or part not in info.value.message
    assert idp.metrics()["failures_by_reason"][reason] == before + 1
    return info.value.message


def test_default_token_is_for_the_default_service_principal(idp):
    identity = idp.validate(idp.issue_token())
    sp = idp.credentials.service_principal
    assert (identity.appid, identity.oid, identity.idtyp) == (sp.client_id, sp.object_id, "app")
    assert idp.authenticate(idp.issue_token()).name == "azsql-loader-sp"  # default database salesdb


def test_user_token_for_default_user(idp):
    token = idp.issue_token(oid=idp.credentials.user_object_id)
    principal = idp.authenticate(token, "master")
    assert (principal.kind, principal.login_name) == ("user", idp.credentials.user_upn)
    assert jwt.decode(token, options={"verify_signature": False})["idtyp"] == "user"


def test_lifetime_default_and_override(idp):
    claims = idp.validate(idp.issue_token()).claims
    assert claims["exp"] - claims["iat"] == 3600
    claims = idp.validate(idp.issue_token(lifetime=120)).claims
    assert claims["exp"] - claims["iat"] == 120


def test_expired_token_refused(idp):
    message = _refused(idp, idp.issue_token(lifetime=-301 - 5), "expired")
    assert "The access token has expired" in message


def test_token_just_inside_skew_accepted(idp):
    idp.validate(idp.issue_token(lifetime=-200))


def test_future_nbf_refused(idp):
    _refused(idp, idp.issue_token(nbf=int(time.time()) + 900), "not_yet_valid")


def test_wrong_audience_refused(idp):
    message = _refused(idp, idp.issue_token(audience="https://management.azure.com/"), "audience")
    assert "audience is not valid for this server" in message.replace(
        "'https://management.azure.com/' ", ""
    )


def test_wrong_issuer_refused(idp):
    _refused(
        idp,
        idp.issue_token(iss="https://sts.windows.net/00000000-0000-4000-8000-000000000000/"),
        "issuer",
    )


def test_tampered_signature_refused(idp):
    head, payload, signature = idp.issue_token().split(".")
    tampered = signature[:-6] + ("AAAAAA" if not signature.endswith("AAAAAA") else "BBBBBB")
    _refused(idp, f"{head}.{payload}.{tampered}", "signature")


def test_alg_none_refused(idp):
    claims = idp.validate(idp.issue_token()).claims
    _refused(idp, jwt.encode(dict(claims), None, algorithm="none"), "signature")


def test_token_signed_by_another_key_refused(idp):
    claims = dict(idp.validate(idp.issue_token()).claims)
    forged = jwt.encode(
        claims, pki.new_rsa_key(), algorithm="RS256", headers={"kid": idp.signing_key.kid}
    )
    _refused(idp, forged, "signature")


def test_unknown_principal_refused_at_login(idp):
    token = idp.issue_token(appid="12345678-0000-4000-8000-000000000000")
    assert idp.validate(token).appid == "12345678-0000-4000-8000-000000000000"
    _refused(idp, token, "unknown_principal", login=True)


def test_no_user_app_refused_at_login(idp):
    _refused(
        idp,
        idp.issue_token(appid=idp.credentials.no_user_app.client_id),
        "unknown_principal",
        login=True,
    )


def test_malformed_refused(idp):
    _refused(idp, "definitely-not-a-jwt", "malformed")


def test_sql_login(idp):
    creds = idp.credentials
    assert idp.check_sql_login(creds.sql_login, creds.sql_password).kind == "sql"
    with pytest.raises(LoginError) as info:
        idp.check_sql_login(creds.sql_login, "Wrong-Password-1")
    assert info.value.reason == "password" and "Wrong-Password-1" not in info.value.message


def test_metrics_count_distinct_uti(idp):
    before = idp.metrics()
    for _ in range(5):
        idp.issue_token()
    after = idp.metrics()
    assert after["tokens_issued"] - before["tokens_issued"] == 5
    assert after["distinct_uti"] - before["distinct_uti"] == 5
    assert after["tokens_issued_by_grant"]["direct"] >= 5


def test_env_names_the_emulator(idp):
    env = idp.env
    assert env["IDENTITY_ENDPOINT"] == f"{idp.authority_host}/msi/token"
    assert env["AZURE_AUTHORITY_HOST"] == idp.authority_host.rstrip("/")
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == str(idp.ca_cert_path)
    assert env["AZURE_TENANT_ID"] == idp.tenant_id
    assert idp.authority_host.startswith("https://127.0.0.1:")
    assert idp.server_cert_path.name == "server.pem" and idp.server_key_path.exists()


@pytest.mark.parametrize(("kind", "app"), [
    ("managed-identity", "managed_identity"), ("service-principal", "service_principal"),
    ("certificate", "certificate_app"), ("workload-identity", "workload_app")])
def test_env_for_one_identity_holds_only_its_own_variables(idp, kind, app):
    env = idp.env_for(kind)
    creds = idp.credentials
    assert "SSL_CERT_FILE" not in env  # never every OpenSSL client's trust
    bundle = env["REQUESTS_CA_BUNDLE"]
    assert bundle == str(idp.ca_bundle_path) and bundle != str(idp.ca_cert_path)
    assert env["AZSQL_BULK_SERVER_CERTIFICATE"] == str(idp.server_cert_path)
    assert env["AZSQL_BULK_ENCRYPT"] == "strict"
    secrets = {a.client_secret for a in (creds.service_principal, creds.reader_app,
                                          creds.writer_app, creds.loader_app, creds.no_user_app)}
    held = secrets & set(env.values())
    assert held == ({creds.service_principal.client_secret} if kind == "service-principal"
                    else set())
    if kind == "managed-identity":
        assert "AZURE_CLIENT_ID" not in env and env["IDENTITY_HEADER"]
    else:
        assert env["AZURE_CLIENT_ID"] == getattr(creds, app).client_id
        assert "IDENTITY_HEADER" not in env
    if kind == "workload-identity":
        assert pathlib.Path(env["AZURE_FEDERATED_TOKEN_FILE"]).read_text().count(".") == 2


def test_ca_bundle_adds_the_emulator_ca_to_the_systems(idp):
    text = idp.ca_bundle().read_text(encoding="ascii")
    assert idp.ca_cert_path.read_text(encoding="ascii").strip() in text
    assert text.count("-----BEGIN CERTIFICATE-----") > 1  # the system's CAs are kept


def test_env_for_an_unknown_kind_names_the_known_ones(idp):
    with pytest.raises(ValueError, match=r"'azure-cli'.*managed-identity, service-principal"):
        idp.env_for("azure-cli")


def test_temporary_state_dir_removed_on_close():
    service = IdentityService().start()
    state = service.state_dir
    assert (state / "ca.pem").exists()
    service.close()
    assert not state.exists()


def test_federated_assertion_file(idp, tmp_path):
    path = idp.issue_federated_assertion(path=tmp_path / "token")
    claims = jwt.decode(path.read_text(), options={"verify_signature": False})
    assert claims["aud"] == ["api://AzureADTokenExchange"]
    assert claims["sub"] == idp.credentials.workload_app.federated_subject
    assert path.stat().st_mode & 0o077 == 0
