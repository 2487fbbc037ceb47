"""Issuing and validating Entra-style access tokens: every refusal has its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from azsql_emulator.errors import LoginError
from azsql_emulator.identity import pki
from azsql_emulator.identity.jwt_tokens import (
    SQL_AUDIENCE,
    TokenIssuer,
    TokenValidator,
    audience_for_resource,
    load_or_create_signing_key,
    v2_issuer,
)

TENANT = "11111111-2222-4333-8444-555555555555"
APP = "aaaaaaaa-0000-4000-8000-000000000001"
OID = "bbbbbbbb-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    path = tmp_path_factory.mktemp("jwt")
    files = pki.load_or_create_pki(path)
    ca_cert, ca_key = (
        pki.load_certificate(files.ca_cert_path),
        pki.load_private_key(files.ca_key_path),
    )
    return path, load_or_create_signing_key(path, ca_cert, ca_key)


@pytest.fixture(scope="module")
def issuer(state):
    return TokenIssuer(state[1], TENANT)


@pytest.fixture(scope="module")
def validator(state):
    return TokenValidator([state[1]], TENANT)


def _app_claims(issuer, **overrides):
    claims = issuer.access_token_claims(oid=OID, appid=APP, idtyp="app")
    claims.update(overrides)
    return claims


def _refused(validator, token, reason, now=None):
    with pytest.raises(LoginError) as info:
        validator.validate(token, now=now)
    err = info.value
    assert err.reason == reason
    assert err.number == 18456
    assert token not in err.message and token.split(".")[1] not in err.message
    assert err.message.startswith("Login failed for user '<token-identified principal>'.")
    return err.message


def test_valid_app_token_round_trips(issuer, validator):
    token = issuer.issue(_app_claims(issuer))
    identity = validator.validate(token)
    assert (identity.oid, identity.appid, identity.tid, identity.idtyp) == (OID, APP, TENANT, "app")
    assert identity.audience == SQL_AUDIENCE
    assert identity.issuer == f"https://sts.windows.net/{TENANT}/"
    assert identity.expires_at - identity.issued_at == 3600
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == header["x5t"]
    assert identity.claims["jti"] and identity.uti and len(identity.uti) == 22


def test_user_token_has_upn_and_name(issuer, validator):
    claims = issuer.access_token_claims(
        oid=OID, appid=None, idtyp="user", upn="u@example.com", name="u"
    )
    identity = validator.validate(issuer.issue(claims))
    assert (identity.idtyp, identity.upn, identity.name, identity.appid) == (
        "user",
        "u@example.com",
        "u",
        None,
    )


def test_every_token_has_fresh_uti_and_jti(issuer):
    claims = [issuer.access_token_claims(oid=OID, appid=APP, idtyp="app") for _ in range(50)]
    assert len({c["uti"] for c in claims}) == 50
    assert len({c["jti"] for c in claims}) == 50


@pytest.mark.parametrize("aud", ["https://database.windows.net/", "https://database.windows.net"])
def test_both_sql_audience_spellings_accepted(issuer, validator, aud):
    assert validator.validate(issuer.issue(_app_claims(issuer, aud=aud))).audience == aud


@pytest.mark.parametrize(
    "aud",
    [
        "https://storage.azure.com",
        "https://database.windows.net//",
        "HTTPS://DATABASE.WINDOWS.NET/",
        "",
    ],
)
def test_other_audiences_refused(issuer, validator, aud):
    message = _refused(validator, issuer.issue(_app_claims(issuer, aud=aud)), "audience")
    assert "audience" in message and "not valid for this server" in message


def test_audience_list_refused(issuer, validator):
    _refused(validator, issuer.issue(_app_claims(issuer, aud=[SQL_AUDIENCE])), "audience")


def test_v2_issuer_accepted(issuer, validator):
    assert validator.validate(
        issuer.issue(_app_claims(issuer, iss=v2_issuer(TENANT)))
    ).issuer == v2_issuer(TENANT)


@pytest.mark.parametrize(
    "iss",
    [
        "https://sts.windows.net/99999999-2222-4333-8444-555555555555/",
        "https://evil.example.com/",
        f"https://sts.windows.net/{TENANT}",
    ],
)
def test_other_issuers_refused(issuer, validator, iss):
    _refused(validator, issuer.issue(_app_claims(issuer, iss=iss)), "issuer")


def test_expired_beyond_skew_refused_within_skew_accepted(issuer, validator):
    now = time.time()
    token = issuer.issue(_app_claims(issuer, exp=int(now) - 299))
    validator.validate(token, now=now)
    message = _refused(
        validator, issuer.issue(_app_claims(issuer, exp=int(now) - 301)), "expired", now=now
    )
    assert "The access token has expired" in message


def test_not_yet_valid_refused(issuer, validator):
    now = time.time()
    validator.validate(issuer.issue(_app_claims(issuer, nbf=int(now) + 299)), now=now)
    token = issuer.issue(_app_claims(issuer, nbf=int(now) + 600))
    assert "not valid yet" in _refused(validator, token, "not_yet_valid", now=now)


def test_validate_uses_given_now(issuer, validator):
    token = issuer.issue(_app_claims(issuer))
    _refused(validator, token, "expired", now=time.time() + 3600 + 301)


def test_tampered_payload_refused(issuer, validator):
    header, payload, signature = issuer.issue(_app_claims(issuer)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["oid"] = "cccccccc-0000-4000-8000-000000000001"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(validator, f"{header}.{forged}.{signature}", "signature")


def test_tampered_signature_refused(issuer, validator):
    token = issuer.issue(_app_claims(issuer))
    head, payload, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    _refused(validator, f"{head}.{payload}.{signature[:10]}{flipped}{signature[11:]}", "signature")


def test_alg_none_refused(issuer, validator, state):
    claims = _app_claims(issuer)
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": state[1].kid})
    assert "algorithm" in _refused(validator, token, "signature")


def test_hs256_with_public_key_as_secret_refused(issuer, validator, state):
    # The classic key-confusion attack: HMAC keyed with the published RSA public key.
    public_pem = state[1].public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = {"alg": "HS256", "typ": "JWT", "kid": state[1].kid}
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in (head, _app_claims(issuer))
    ]
    signing_input = b".".join(segments)
    mac = base64.urlsafe_b64encode(
        hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    ).rstrip(b"=")
    _refused(validator, (signing_input + b"." + mac).decode(), "signature")


def test_token_signed_by_another_key_with_same_kid_refused(issuer, validator, state):
    other = pki.new_rsa_key()
    token = jwt.encode(_app_claims(issuer), other, algorithm="RS256", headers={"kid": state[1].kid})
    _refused(validator, token, "signature")


def test_token_with_unknown_kid_refused(issuer, validator):
    other = pki.new_rsa_key()
    token = jwt.encode(_app_claims(issuer), other, algorithm="RS256", headers={"kid": "not-ours"})
    assert "key this server does not know" in _refused(validator, token, "signature")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "a.b.c.d", "eyJ.eyJ.sig"])
def test_malformed_tokens_refused(validator, token):
    with pytest.raises(LoginError) as info:
        validator.validate(token)
    assert info.value.reason in {"malformed", "signature"}


def test_missing_exp_is_malformed(issuer, validator):
    claims = _app_claims(issuer)
    del claims["exp"]
    _refused(validator, issuer.issue(claims), "malformed")


def test_token_without_principal_is_malformed(issuer, validator):
    claims = _app_claims(issuer)
    del claims["oid"], claims["appid"]
    _refused(validator, issuer.issue(claims), "malformed")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_only_ever_raises_login_error(validator, text):
    with pytest.raises(LoginError) as info:
        validator.validate(text)
    assert info.value.reason in {"malformed", "signature"}


@pytest.mark.parametrize(
    ("requested", "aud"),
    [
        ("https://database.windows.net/.default", "https://database.windows.net/"),
        ("https://database.windows.net", "https://database.windows.net/"),
        ("https://database.windows.net/", "https://database.windows.net/"),
        ("https://storage.azure.com/.default", "https://storage.azure.com"),
    ],
)
def test_audience_for_resource(requested, aud):
    assert audience_for_resource(requested) == aud


def test_jwks_entry_fields(state):
    jwk = state[1].public_jwk()
    assert {"kty", "use", "kid", "n", "e", "x5t"} <= set(jwk)
    assert (jwk["kty"], jwk["use"], jwk["e"]) == ("RSA", "sig", "AQAB")
    public = jwt.PyJWK(jwk).key
    assert public.public_numbers() == state[1].public_key.public_numbers()


def test_signing_key_persists(state):
    path, key = state
    files = pki.load_or_create_pki(path)
    again = load_or_create_signing_key(
        path, pki.load_certificate(files.ca_cert_path), pki.load_private_key(files.ca_key_path)
    )
    assert again.kid == key.kid
    assert "PRIVATE" not in repr(again)
