"""The emulator PKI: file layout, certificate shape, persistence, TLS 1.2 and 1.3."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading

import pytest
from cryptography import x509

from azsql_emulator.identity import pki


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return pki.load_or_create_pki(tmp_path_factory.mktemp("pki"))


def _certs(path):
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_server_pem_is_the_leaf_alone_for_odbc_pinning(files):
    certs = _certs(files.server_cert_path)
    assert len(certs) == 1
    assert b"PRIVATE KEY" not in files.server_cert_path.read_bytes()
    leaf = certs[0]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_server_certificate_covers_loopback_names(files):
    leaf = pki.load_certificate(files.server_cert_path)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_ca_is_self_signed_ca_and_signs_the_leaf(files):
    ca = pki.load_certificate(files.ca_cert_path)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ca.verify_directly_issued_by(ca)
    pki.load_certificate(files.server_cert_path).verify_directly_issued_by(ca)
    chain = _certs(files.server_chain_path)
    assert [c.subject for c in chain] == [
        pki.load_certificate(files.server_cert_path).subject,
        ca.subject,
    ]


def test_private_keys_are_owner_only(files):
    assert files.server_key_path.stat().st_mode & 0o077 == 0
    assert files.ca_key_path.stat().st_mode & 0o077 == 0


def test_reload_keeps_ca_and_server_certificate(files):
    again = pki.load_or_create_pki(files.ca_cert_path.parent)
    assert again == files
    assert pki.load_certificate(again.server_cert_path) == pki.load_certificate(
        files.server_cert_path
    )


def test_server_certificate_is_reissued_when_hosts_change(tmp_path):
    first = pki.load_or_create_pki(tmp_path)
    ca_before = first.ca_cert_path.read_bytes()
    leaf_before = first.server_cert_path.read_bytes()
    pki.load_or_create_pki(tmp_path, hosts=("localhost", "127.0.0.1", "::1", "sql.emulator.test"))
    assert first.ca_cert_path.read_bytes() == ca_before
    assert first.server_cert_path.read_bytes() != leaf_before


def test_server_certificate_is_reissued_for_a_new_ca(tmp_path):
    first = pki.load_or_create_pki(tmp_path)
    first.ca_cert_path.unlink()
    first.ca_key_path.unlink()
    again = pki.load_or_create_pki(tmp_path)
    leaf = pki.load_certificate(again.server_cert_path)
    leaf.verify_directly_issued_by(pki.load_certificate(again.ca_cert_path))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_tls_handshake_with_ca_trust(files, version, hostname):
    server_ctx = pki.server_ssl_context(files)
    client_ctx = pki.client_ssl_context(files.ca_cert_path)
    client_ctx.minimum_version = client_ctx.maximum_version = version
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(5))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=hostname) as tls:
                assert (
                    tls.version()
                    == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[
                        version
                    ]
                )
                tls.sendall(b"hello")
                assert tls.recv(5) == b"hello"
    finally:
        thread.join(120)  # a bound for a hang only
        listener.close()
    assert not errors


def test_thumbprints_are_unpadded_base64url(files):
    leaf = pki.load_certificate(files.server_cert_path)
    assert len(pki.thumbprint_sha1(leaf)) == 27 and "=" not in pki.thumbprint_sha1(leaf)
    assert len(pki.thumbprint_sha256(leaf)) == 43
