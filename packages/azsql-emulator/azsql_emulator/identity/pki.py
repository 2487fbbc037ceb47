"""The emulator's small PKI: a CA, the TLS server certificate, and key files.

One CA (RSA 2048, self-signed, ``CA:true``) signs the server certificate used by
both the identity provider's HTTPS endpoints and the TDS server. Files written
into the state directory:

==================== =====================================================
``ca.pem``           the CA certificate (what clients trust)
``ca-key.pem``       the CA private key (mode 0600)
``server.pem``       the server (leaf) certificate alone, as Microsoft's ODBC
                     driver pins it with ``ServerCertificate=...`` in strict mode
``server-key.pem``   the server private key (mode 0600)
``server-chain.pem`` leaf followed by the CA, what the TLS servers present
==================== =====================================================

Example::

    files = load_or_create_pki(Path("/tmp/emu"))
    context = server_ssl_context(files)
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "SERVER_HOSTS",
    "PkiFiles",
    "client_ssl_context",
    "issue_certificate",
    "load_certificate",
    "load_or_create_pki",
    "load_private_key",
    "new_rsa_key",
    "self_signed_certificate",
    "server_ssl_context",
    "thumbprint_sha1",
    "thumbprint_sha256",
    "write_certificates",
    "write_private_key",
    "write_secret_file",
]

SERVER_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
# Renew a persisted server certificate this long before it expires.
_RENEW_BEFORE = dt.timedelta(days=7)
_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=397)  # the CA/Browser Forum maximum
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences between hosts


@dataclass(frozen=True)
class PkiFiles:
    """Paths of the PEM files the emulator's PKI wrote or loaded.

    :param ca_cert_path: the CA certificate, to trust on clients.
    :param ca_key_path: the CA private key.
    :param server_cert_path: the leaf server certificate alone.
    :param server_key_path: the server private key.
    :param server_chain_path: leaf then CA, for TLS servers to present.
    """

    ca_cert_path: Path
    ca_key_path: Path
    server_cert_path: Path
    server_key_path: Path
    server_chain_path: Path


def new_rsa_key() -> rsa.RSAPrivateKey:
    """Create an RSA 2048 private key (what Azure uses for token signing and TLS)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write a private key as unencrypted PKCS#8 PEM readable by the owner only.

    :param path: destination file.
    :param key: the key to write.
    """
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_file(path, data, mode=0o600)


def write_certificates(
    path: Path, *certs: x509.Certificate, key: rsa.RSAPrivateKey | None = None
) -> None:
    """Write certificates as PEM, optionally preceded by a private key.

    :param path: destination file.
    :param certs: certificates in order (leaf first for chains).
    :param key: when given, the key is written first and the file becomes owner-only,
        the layout azure-identity's ``CertificateCredential`` reads.
    """
    parts = []
    if key is not None:
        parts.append(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    parts.extend(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    _write_file(path, b"".join(parts), mode=0o600 if key is not None else 0o644)


def write_secret_file(path: Path, data: bytes) -> None:
    """Write bytes to a file readable by the owner only (tokens, keys).

    :param path: destination file (parent directories are created).
    :param data: the content.
    """
    _write_file(path, data, mode=0o600)


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Load an unencrypted RSA private key from a PEM file.

    :param path: the PEM file (may also contain certificates).
    :raises ValueError: the file holds no RSA private key.
    """
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: expected an RSA private key, found {type(key).__name__}")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    """Load the first certificate of a PEM file.

    :param path: the PEM file.
    """
    return x509.load_pem_x509_certificate(path.read_bytes())


def thumbprint_sha1(cert: x509.Certificate) -> str:
    """Return the ``x5t`` of a certificate: base64url (unpadded) of its SHA-1 digest.

    :param cert: the certificate.
    """
    return _b64url(cert.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is defined as SHA-1


def thumbprint_sha256(cert: x509.Certificate) -> str:
    """Return the ``x5t#S256`` of a certificate: base64url (unpadded) of its SHA-256 digest.

    :param cert: the certificate.
    """
    return _b64url(cert.fingerprint(hashes.SHA256()))


def self_signed_certificate(
    common_name: str, key: rsa.RSAPrivateKey, *, days: int = 730
) -> x509.Certificate:
    """Create a self-signed end-entity certificate, as app registrations accept for clients.

    :param common_name: the subject CN.
    :param key: the key pair to certify.
    :param days: validity in days.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    hosts: tuple[str, ...] = (),
    server: bool = True,
    lifetime: dt.timedelta = _LEAF_LIFETIME,
) -> x509.Certificate:
    """Issue an end-entity certificate signed by the CA.

    :param ca_cert: the issuing CA certificate.
    :param ca_key: the CA private key.
    :param key: the subject's key pair.
    :param common_name: subject CN.
    :param hosts: DNS names and IP addresses for the subjectAltName (empty: no SAN).
    :param server: mark the certificate for TLS server authentication.
    :param lifetime: validity period.
    """
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names(hosts)), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def load_or_create_pki(state_dir: Path, hosts: tuple[str, ...] = SERVER_HOSTS) -> PkiFiles:
    """Load the CA and server certificate from ``state_dir``, creating what is missing.

    A persisted server certificate is replaced (by one from the same CA) when it
    is near expiry or does not cover ``hosts``, so clients that trust ``ca.pem``
    keep working across restarts.

    :param state_dir: directory holding the PEM files (created if needed).
    :param hosts: names and addresses the server certificate must cover.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    files = PkiFiles(
        ca_cert_path=state_dir / "ca.pem",
        ca_key_path=state_dir / "ca-key.pem",
        server_cert_path=state_dir / "server.pem",
        server_key_path=state_dir / "server-key.pem",
        server_chain_path=state_dir / "server-chain.pem",
    )
    if files.ca_cert_path.exists() and files.ca_key_path.exists():
        ca_cert = load_certificate(files.ca_cert_path)
        ca_key = load_private_key(files.ca_key_path)
    else:
        ca_key = new_rsa_key()
        ca_cert = _create_ca(ca_key)
        write_private_key(files.ca_key_path, ca_key)
        write_certificates(files.ca_cert_path, ca_cert)
    if not _server_cert_usable(files, ca_cert, hosts):
        server_key = new_rsa_key()
        server_cert = issue_certificate(ca_cert, ca_key, server_key, "localhost", hosts=hosts)
        write_private_key(files.server_key_path, server_key)
        write_certificates(files.server_cert_path, server_cert)
        write_certificates(files.server_chain_path, server_cert, ca_cert)
    elif not files.server_chain_path.exists():
        write_certificates(
            files.server_chain_path, load_certificate(files.server_cert_path), ca_cert
        )
    return files


def server_ssl_context(files: PkiFiles) -> ssl.SSLContext:
    """Build the TLS server context (TLS 1.2 and 1.3) presenting the server chain.

    :param files: the PKI files from :func:`load_or_create_pki`.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(str(files.server_chain_path), str(files.server_key_path))
    return context


def client_ssl_context(ca_cert_path: Path) -> ssl.SSLContext:
    """Build a TLS client context that trusts only the emulator's CA.

    :param ca_cert_path: the ``ca.pem`` file.
    """
    context = ssl.create_default_context(cafile=str(ca_cert_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _create_ca(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "azsql-bulk emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "azsql-bulk emulator CA"),
        ]
    )
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_cert_usable(files: PkiFiles, ca_cert: x509.Certificate, hosts: tuple[str, ...]) -> bool:
    if not (files.server_cert_path.exists() and files.server_key_path.exists()):
        return False
    cert = load_certificate(files.server_cert_path)
    if cert.issuer != ca_cert.subject or cert.not_valid_after_utc - _RENEW_BEFORE < _now():
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return set(_general_names(hosts)) <= set(san)


def _general_names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _write_file(path: Path, data: bytes, *, mode: int) -> None:
    # Write then rename so a crash never leaves half a key behind for the next start.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
