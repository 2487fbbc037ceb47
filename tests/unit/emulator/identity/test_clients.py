"""Default credentials persist per state directory; client secrets compare safely."""

from __future__ import annotations

import json

import pytest

from azsql_emulator.identity import pki
from azsql_emulator.identity.clients import (
    DEFAULT_TENANT_ID,
    ClientRegistry,
    load_or_create_default_credentials,
)


def test_credentials_persist_and_tenant_override(tmp_path):
    first = load_or_create_default_credentials(tmp_path)
    again = load_or_create_default_credentials(tmp_path)
    assert first == again
    assert first.tenant_id == DEFAULT_TENANT_ID
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
    other = load_or_create_default_credentials(tmp_path, "12345678-0000-4000-8000-000000000000")
    assert other.tenant_id == "12345678-0000-4000-8000-000000000000"
    assert other.service_principal.client_secret == first.service_principal.client_secret


def test_secrets_differ_per_state_dir(tmp_path):
    a = load_or_create_default_credentials(tmp_path / "a")
    b = load_or_create_default_credentials(tmp_path / "b")
    assert a.service_principal.client_id == b.service_principal.client_id
    assert a.service_principal.client_secret != b.service_principal.client_secret
    assert a.sql_password != b.sql_password


def test_corrupt_credentials_file_is_named(tmp_path):
    (tmp_path / "credentials.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(ValueError, match=r"credentials\.json"):
        load_or_create_default_credentials(tmp_path)


def test_registry_checks_secret_and_certificate(tmp_path):
    creds = load_or_create_default_credentials(tmp_path)
    registry = ClientRegistry.with_defaults(creds)
    sp = registry.get(creds.service_principal.client_id.upper())
    assert sp is not None and sp.check_secret(creds.service_principal.client_secret)
    assert not sp.check_secret(creds.reader_app.client_secret)
    assert not sp.check_secret("")
    cert_app = registry.get(creds.certificate_app.client_id)
    cert = pki.load_certificate(creds.certificate_app.certificate_path)
    assert cert_app.certificate_for(x5t=pki.thumbprint_sha1(cert)) == cert
    assert cert_app.certificate_for(x5t_s256=pki.thumbprint_sha256(cert) + "=") == cert
    assert cert_app.certificate_for(x5t="bogus") is None
    assert registry.find_managed_identity().client_id == creds.managed_identity.client_id
    assert registry.find_managed_identity(client_id=creds.service_principal.client_id) is None
    assert creds.service_principal.client_secret not in repr(sp) + repr(registry)


def test_client_cert_file_holds_key_and_cert(tmp_path):
    creds = load_or_create_default_credentials(tmp_path)
    data = creds.certificate_app.certificate_path.read_bytes()
    assert b"PRIVATE KEY" in data and b"CERTIFICATE" in data
    assert json.loads((tmp_path / "credentials.json").read_text())["version"] == 1
