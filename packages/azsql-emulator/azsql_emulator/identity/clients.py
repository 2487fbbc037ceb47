"""Registered clients (app registrations, managed identities) and the default test credentials.

The emulator's tenant knows a handful of clients out of the box. Their ids are
fixed (so configuration can name them); their secrets, the SQL login password
and the client certificate are generated once per state directory and kept in
``credentials.json`` / ``client-cert.pem`` there (both owner-only).

Ids follow one pattern: for app number ``N`` the client id (``appid``) is
``3c0ffee0-000N-4000-8000-00000000a00N`` and the object id (``oid``) is
``3c0ffee0-000N-4000-8000-00000000b00N``.

== ======================= ================= ===========================================
N  display name            how it signs in   database roles (user database, master)
== ======================= ================= ===========================================
1  azsql-emulator-mi       managed identity  db_owner, db_owner
2  azsql-loader-sp         client secret     db_owner, db_owner
3  azsql-loader-cert       certificate       db_owner, db_owner
4  azsql-loader-workload   federated token   db_owner, db_owner
5  azsql-reader            client secret     db_datareader, none
6  azsql-writer            client secret     db_datareader + db_datawriter, none
7  azsql-nouser            client secret     none (valid tokens, refused at login)
== ======================= ================= ===========================================

The default tenant is ``3c0ffee0-0000-4000-8000-000000000000``.

Example::

    creds = load_or_create_default_credentials(state_dir)
    registry = ClientRegistry.with_defaults(creds)
    registry.get(creds.service_principal.client_id).check_secret(creds.service_principal.client_secret)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from azsql_emulator.identity import pki

__all__ = [
    "DEFAULT_SQL_LOGIN",
    "DEFAULT_TENANT_ID",
    "DEFAULT_USER_OBJECT_ID",
    "DEFAULT_USER_UPN",
    "DEFAULT_WORKLOAD_SUBJECT",
    "EMULATOR_FEDERATION_ISSUER",
    "TOKEN_EXCHANGE_AUDIENCE",
    "AppCredentials",
    "ClientRegistration",
    "ClientRegistry",
    "DefaultCredentials",
    "FederatedCredential",
    "load_or_create_default_credentials",
]

DEFAULT_TENANT_ID = "3c0ffee0-0000-4000-8000-000000000000"
# The emulator's own workload-identity token issuer (stands in for a Kubernetes
# cluster's OIDC issuer). Fixed, not derived from the port, so federated
# credentials persisted in a state directory survive restarts.
EMULATOR_FEDERATION_ISSUER = "https://oidc.azsql-emulator.invalid/"
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a secret
DEFAULT_WORKLOAD_SUBJECT = "system:serviceaccount:default:azsql-loader"
DEFAULT_USER_OBJECT_ID = "3c0ffee0-0008-4000-8000-00000000b008"
DEFAULT_USER_UPN = "sqladmin@azsqlemulator.onmicrosoft.com"
DEFAULT_SQL_LOGIN = "azsql_admin"

_DEFAULT_APPS = {
    # role in DefaultCredentials: (display name, client id, object id)
    "managed_identity": (
        "azsql-emulator-mi",
        "3c0ffee0-0001-4000-8000-00000000a001",
        "3c0ffee0-0001-4000-8000-00000000b001",
    ),
    "service_principal": (
        "azsql-loader-sp",
        "3c0ffee0-0002-4000-8000-00000000a002",
        "3c0ffee0-0002-4000-8000-00000000b002",
    ),
    "certificate_app": (
        "azsql-loader-cert",
        "3c0ffee0-0003-4000-8000-00000000a003",
        "3c0ffee0-0003-4000-8000-00000000b003",
    ),
    "workload_app": (
        "azsql-loader-workload",
        "3c0ffee0-0004-4000-8000-00000000a004",
        "3c0ffee0-0004-4000-8000-00000000b004",
    ),
    "reader_app": (
        "azsql-reader",
        "3c0ffee0-0005-4000-8000-00000000a005",
        "3c0ffee0-0005-4000-8000-00000000b005",
    ),
    "writer_app": (
        "azsql-writer",
        "3c0ffee0-0006-4000-8000-00000000a006",
        "3c0ffee0-0006-4000-8000-00000000b006",
    ),
    "no_user_app": (
        "azsql-nouser",
        "3c0ffee0-0007-4000-8000-00000000a007",
        "3c0ffee0-0007-4000-8000-00000000b007",
    ),
    "loader_app": (
        "azsql-bulk-loader",
        "3c0ffee0-0009-4000-8000-00000000a009",
        "3c0ffee0-0009-4000-8000-00000000b009",
    ),
}
_SECRET_APPS = ("service_principal", "reader_app", "writer_app", "no_user_app", "loader_app")
_CREDENTIALS_FILE = "credentials.json"
_CLIENT_CERT_FILE = "client-cert.pem"


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential on an app: which external tokens it trusts.

    :param issuer: the external token's ``iss``.
    :param subject: the external token's ``sub``.
    :param audiences: accepted ``aud`` values of the external token.
    """

    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE_AUDIENCE,)


@dataclass(frozen=True)
class ClientRegistration:
    """One client the token endpoint knows: an app registration or a managed identity.

    :param client_id: application (client) id, the token's ``appid``.
    :param object_id: the service principal's object id, the token's ``oid``.
    :param display_name: name shown in the directory.
    :param kind: ``app`` or ``managed_identity``.
    :param secret_digests: SHA-256 digests of the valid client secrets.
    :param certificates: certificates whose keys may sign client assertions.
    :param federated: federated credentials (workload identity).
    """

    client_id: str
    object_id: str
    display_name: str
    kind: str = "app"
    secret_digests: tuple[bytes, ...] = field(default=(), repr=False)
    certificates: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    federated: tuple[FederatedCredential, ...] = ()

    def check_secret(self, secret: str) -> bool:
        """Tell whether ``secret`` is one of this client's secrets, in constant time.

        :param secret: the presented client secret.
        """
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        matched = False
        for known in self.secret_digests:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def certificate_for(
        self, *, x5t: str | None = None, x5t_s256: str | None = None
    ) -> x509.Certificate | None:
        """Find the registered certificate a client assertion's header points at.

        :param x5t: SHA-1 thumbprint (base64url) from the assertion header.
        :param x5t_s256: SHA-256 thumbprint (base64url) from the assertion header.
        """
        # MSAL pads its base64url thumbprints; RFC 7515 says unpadded. Accept both.
        x5t = x5t.rstrip("=") if isinstance(x5t, str) else None
        x5t_s256 = x5t_s256.rstrip("=") if isinstance(x5t_s256, str) else None
        for cert in self.certificates:
            if x5t_s256 and hmac.compare_digest(pki.thumbprint_sha256(cert), x5t_s256):
                return cert
            if x5t and hmac.compare_digest(pki.thumbprint_sha1(cert), x5t):
                return cert
        return None


def secret_digest(secret: str) -> bytes:
    """Return the digest a :class:`ClientRegistration` stores for ``secret``.

    :param secret: a client secret.
    """
    return hashlib.sha256(secret.encode("utf-8")).digest()


class ClientRegistry:
    """The clients the token endpoints accept, by client id (thread-safe for reads)."""

    def __init__(self) -> None:
        self._clients: dict[str, ClientRegistration] = {}

    def register(self, client: ClientRegistration) -> None:
        """Add or replace a client.

        :param client: the registration.
        """
        self._clients[client.client_id.lower()] = client

    def get(self, client_id: str) -> ClientRegistration | None:
        """Return the client with this id (case-insensitive, as Entra compares GUIDs).

        :param client_id: the application (client) id.
        """
        return self._clients.get(client_id.lower())

    def find_managed_identity(
        self, *, client_id: str | None = None, object_id: str | None = None
    ) -> ClientRegistration | None:
        """Find a managed identity by client or object id; with neither, the system-assigned one.

        :param client_id: a user-assigned identity's client id.
        :param object_id: a user-assigned identity's object id.
        """
        for client in self._clients.values():
            if client.kind != "managed_identity":
                continue
            if client_id and client.client_id.lower() != client_id.lower():
                continue
            if object_id and client.object_id.lower() != object_id.lower():
                continue
            return client
        return None

    def __iter__(self):
        return iter(list(self._clients.values()))

    def __len__(self) -> int:
        return len(self._clients)

    def __repr__(self) -> str:
        return f"ClientRegistry({len(self._clients)} clients)"

    @classmethod
    def with_defaults(cls, creds: DefaultCredentials) -> ClientRegistry:
        """Build a registry holding the default clients of :class:`DefaultCredentials`.

        :param creds: the default credentials (ids, secrets, certificate).
        """
        registry = cls()
        for role in _DEFAULT_APPS:
            app: AppCredentials = getattr(creds, role)
            certificates: tuple[x509.Certificate, ...] = ()
            if app.certificate_path is not None:
                certificates = (pki.load_certificate(app.certificate_path),)
            federated: tuple[FederatedCredential, ...] = ()
            if app.federated_subject:
                federated = (
                    FederatedCredential(EMULATOR_FEDERATION_ISSUER, app.federated_subject),
                )
            registry.register(
                ClientRegistration(
                    client_id=app.client_id,
                    object_id=app.object_id,
                    display_name=app.display_name,
                    kind="managed_identity" if role == "managed_identity" else "app",
                    secret_digests=(secret_digest(app.client_secret),) if app.client_secret else (),
                    certificates=certificates,
                    federated=federated,
                )
            )
        return registry


@dataclass(frozen=True)
class AppCredentials:
    """What a client needs to sign in as one default app (secrets hidden from repr).

    :param display_name: the app's name (also its database user name by default).
    :param client_id: application (client) id.
    :param object_id: service principal object id.
    :param client_secret: the secret, for secret-based apps.
    :param certificate_path: PEM with private key and certificate, for ``CertificateCredential``.
    :param federated_subject: the ``sub`` its federated credential trusts.
    """

    display_name: str
    client_id: str
    object_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    federated_subject: str | None = None


@dataclass(frozen=True)
class DefaultCredentials:
    """The emulator's built-in test identities for one state directory.

    :param tenant_id: the tenant.
    :param managed_identity: App Service-style managed identity (db_owner).
    :param service_principal: client-secret app (db_owner); what ``env`` signs in as.
    :param certificate_app: certificate-credential app (db_owner).
    :param workload_app: federated (workload identity) app (db_owner).
    :param reader_app: read-only app (db_datareader).
    :param writer_app: writer without DDL (db_datareader, db_datawriter).
    :param no_user_app: valid tokens, but no user in any database.
    :param loader_app: a least-privilege loader (db_datareader, db_datawriter, db_ddladmin):
        creates schemas and tables and loads them, but has no VIEW DATABASE STATE.
    :param user_object_id: a directory user (db_owner) for user tokens.
    :param user_upn: that user's UPN.
    :param sql_login: the SQL-auth login (db_owner).
    :param sql_password: its password.
    """

    tenant_id: str
    managed_identity: AppCredentials
    service_principal: AppCredentials
    certificate_app: AppCredentials
    workload_app: AppCredentials
    reader_app: AppCredentials
    writer_app: AppCredentials
    no_user_app: AppCredentials
    loader_app: AppCredentials
    user_object_id: str = DEFAULT_USER_OBJECT_ID
    user_upn: str = DEFAULT_USER_UPN
    sql_login: str = DEFAULT_SQL_LOGIN
    sql_password: str = field(default="", repr=False)


def load_or_create_default_credentials(
    state_dir: Path, tenant_id: str | None = None
) -> DefaultCredentials:
    """Load the default credentials of ``state_dir`` or generate and save them.

    :param state_dir: the emulator state directory.
    :param tenant_id: tenant to use; ``None`` keeps the saved one (or the default tenant).
    :raises ValueError: ``credentials.json`` exists but cannot be read.
    """
    path = state_dir / _CREDENTIALS_FILE
    saved: dict = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(saved, dict) or not isinstance(saved.get("secrets", {}), dict):
                raise ValueError("expected an object with a 'secrets' object")
        except ValueError as exc:
            raise ValueError(
                f"{path}: cannot read the emulator's saved credentials ({exc}); "
                "delete the file to regenerate them"
            ) from None
    tenant = tenant_id or saved.get("tenant_id") or DEFAULT_TENANT_ID
    stored_secrets: dict[str, str] = dict(saved.get("secrets", {}))
    for role in _SECRET_APPS:
        stored_secrets.setdefault(role, _new_client_secret())
    sql_password = saved.get("sql_password") or _new_sql_password()
    cert_path = state_dir / _CLIENT_CERT_FILE
    if not cert_path.exists():
        key = pki.new_rsa_key()
        cert = pki.self_signed_certificate(_DEFAULT_APPS["certificate_app"][0], key)
        pki.write_certificates(cert_path, cert, key=key)
    updated = {
        "version": 1,
        "tenant_id": tenant,
        "secrets": stored_secrets,
        "sql_password": sql_password,
    }
    if updated != saved:
        _write_private_json(path, updated)
    apps: dict[str, AppCredentials] = {}
    for role, (name, client_id, object_id) in _DEFAULT_APPS.items():
        apps[role] = AppCredentials(
            display_name=name,
            client_id=client_id,
            object_id=object_id,
            client_secret=stored_secrets.get(role),
            certificate_path=cert_path if role == "certificate_app" else None,
            federated_subject=DEFAULT_WORKLOAD_SUBJECT if role == "workload_app" else None,
        )
    return DefaultCredentials(
        tenant_id=tenant,
        managed_identity=apps["managed_identity"],
        service_principal=apps["service_principal"],
        certificate_app=apps["certificate_app"],
        workload_app=apps["workload_app"],
        reader_app=apps["reader_app"],
        writer_app=apps["writer_app"],
        no_user_app=apps["no_user_app"],
        loader_app=apps["loader_app"],
        sql_password=sql_password,
    )


def _new_client_secret() -> str:
    # Shaped like Entra secrets (40 characters, '~' and '.' allowed) but random.
    return "emu~" + secrets.token_urlsafe(27)


def _new_sql_password() -> str:
    # Azure SQL requires three of: upper, lower, digit, symbol.
    alphabet = string.ascii_letters + string.digits
    return "Az9!" + "".join(secrets.choice(alphabet) for _ in range(20))


def _write_private_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
