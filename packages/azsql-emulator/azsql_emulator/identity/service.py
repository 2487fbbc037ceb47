"""The emulator's Entra-style identity provider as one object: keys, endpoints, validation.

``IdentityService`` owns the PKI, the token-signing key, the registered
clients, the principals directory and the HTTPS endpoints. The TDS server asks
it to :meth:`~IdentityService.authenticate` a token (or
:meth:`~IdentityService.check_sql_login`) at login, and uses
:meth:`~IdentityService.server_ssl_context` for TLS.

Example::

    with IdentityService(Path("/tmp/emu")) as idp:
        os.environ.update(idp.env)
        token = ManagedIdentityCredential().get_token("https://database.windows.net/.default").token
        principal = idp.authenticate(token, "appdb")   # Principal(name='azsql-emulator-mi', ...)
"""

from __future__ import annotations

import logging
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from azsql_emulator.errors import LoginError
from azsql_emulator.identity import pki
from azsql_emulator.identity.clients import (
    EMULATOR_FEDERATION_ISSUER,
    TOKEN_EXCHANGE_AUDIENCE,
    ClientRegistration,
    ClientRegistry,
    DefaultCredentials,
    load_or_create_default_credentials,
)
from azsql_emulator.identity.endpoints import IdentityEndpoints
from azsql_emulator.identity.http_server import HttpsServer
from azsql_emulator.identity.jwt_tokens import (
    SQL_AUDIENCE,
    SigningKey,
    TokenIdentity,
    TokenIssuer,
    TokenValidator,
    load_or_create_signing_key,
)
from azsql_emulator.identity.metrics import IdentityMetrics
from azsql_emulator.identity.principals import Principal, PrincipalDirectory

# the identity kinds env_for() offers, as azsql-bulk's --auth spells them ("certificate" is
# a service principal signing in with its certificate)
ENV_IDENTITIES = ("managed-identity", "service-principal", "certificate", "workload-identity")

__all__ = ["IdentityService"]

_LOG = logging.getLogger(__name__)


class IdentityService:
    """Local stand-in for Microsoft Entra ID, scoped to what Azure SQL logins need.

    :param state_dir: where keys, certificates and credentials live; reused if present so a
        restarted emulator still validates its old tokens. ``None``: a temporary directory
        removed by :meth:`close`.
    :param tenant_id: the tenant; ``None`` keeps the saved one or uses ``DEFAULT_TENANT_ID``.
    :param token_lifetime: default access-token lifetime in seconds.
    :param host: address the HTTPS endpoints listen on.
    :param principals_file: JSON principals file (see :mod:`azsql_emulator.identity.principals`);
        ``None`` uses the built-in defaults.
    :param database: the user database the default principals are mapped into.
    :param port: HTTPS port, 0 for an ephemeral one.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        tenant_id: str | None = None,
        token_lifetime: int = 3600,
        host: str = "127.0.0.1",
        principals_file: Path | None = None,
        database: str = "appdb",
        port: int = 0,
    ) -> None:
        self._requested_state_dir = Path(state_dir) if state_dir is not None else None
        self._requested_tenant = tenant_id
        self.token_lifetime = int(token_lifetime)
        self.host = host
        self.port = port
        self.principals_file = Path(principals_file) if principals_file is not None else None
        self.database = database
        self._metrics = IdentityMetrics()
        self._lock = threading.Lock()
        self._started = False
        self._temp_dir: Path | None = None
        self._server: HttpsServer | None = None
        self._identity_header = ""

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> IdentityService:
        """Load or create all state, then serve the HTTPS endpoints; returns ``self``."""
        with self._lock:
            if self._started:
                return self
            if self._requested_state_dir is None:
                self._temp_dir = Path(tempfile.mkdtemp(prefix="azsql-identity-"))
                self.state_dir = self._temp_dir
            else:
                self.state_dir = self._requested_state_dir
            try:
                self._load_state()
                self._serve()
            except BaseException:
                self._cleanup()
                raise
            self._started = True
            _LOG.info("identity provider for tenant %s at %s", self.tenant_id, self.authority_host)
            return self

    def close(self) -> None:
        """Stop the endpoints; remove the state directory if it was temporary."""
        with self._lock:
            self._cleanup()
            self._started = False

    def __enter__(self) -> IdentityService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = getattr(self, "authority_host", None) if self._started else "stopped"
        tenant = getattr(self, "tenant_id", self._requested_tenant)
        return f"IdentityService(tenant_id={tenant!r}, at={where!r})"

    def _load_state(self) -> None:
        state = self.state_dir
        files = pki.load_or_create_pki(state)
        self.ca_cert_path = files.ca_cert_path
        self.server_cert_path = files.server_cert_path
        self.server_key_path = files.server_key_path
        self.server_chain_path = files.server_chain_path
        self._pki_files = files
        ca_cert = pki.load_certificate(files.ca_cert_path)
        ca_key = pki.load_private_key(files.ca_key_path)
        self.credentials: DefaultCredentials = load_or_create_default_credentials(
            state, self._requested_tenant
        )
        self.tenant_id = self.credentials.tenant_id
        self._signing_key = load_or_create_signing_key(state, ca_cert, ca_key, name="signing")
        self._federation_key = load_or_create_signing_key(state, ca_cert, ca_key, name="federation")
        self._issuer = TokenIssuer(self._signing_key, self.tenant_id)
        self._federation_issuer = TokenIssuer(self._federation_key, self.tenant_id)
        self._validator = TokenValidator([self._signing_key], self.tenant_id)
        self.clients = ClientRegistry.with_defaults(self.credentials)
        defaults = PrincipalDirectory.defaults(self.credentials, self.database)
        if self.principals_file is not None:
            self.principals = PrincipalDirectory.from_file(
                self.principals_file, tenant_id=self.tenant_id, defaults=defaults
            )
        else:
            self.principals = defaults

    def _serve(self) -> None:
        self._identity_header = secrets.token_urlsafe(24)
        self._endpoints = IdentityEndpoints(
            tenant_id=self.tenant_id,
            registry=self.clients,
            mint=self._mint_for_client,
            jwks=lambda: self.jwks,
            federated_issuers={EMULATOR_FEDERATION_ISSUER: self._federation_key},
            identity_header=self._identity_header,
            metrics=self._metrics,
        )
        self._server = HttpsServer(
            self._endpoints.handle,
            pki.server_ssl_context(self._pki_files),
            host=self.host,
            port=self.port,
        )
        self._server.start()
        self.authority_host = self._server.base_url
        self._endpoints.authority_host = self.authority_host

    def _cleanup(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    # -- what clients and the TDS server use -------------------------------------------

    @property
    def authority(self) -> str:
        """``{authority_host}/{tenant_id}``, the authority URL MSAL talks to."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def token_endpoint(self) -> str:
        """The v2 token endpoint (the ``aud`` of certificate client assertions)."""
        return self._endpoints.token_endpoint()

    @property
    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set clients verify tokens with."""
        return {"keys": [self._signing_key.public_jwk()]}

    def env_for(self, identity: str = "managed-identity") -> dict[str, str]:
        """The variables one client needs to sign in as ``identity`` and trust the emulator.

        Only that identity's variables (managed identity: no secret at all), and trust
        scoped to what needs it: ``REQUESTS_CA_BUNDLE`` (requests, hence azure-identity and
        MSAL) names :attr:`ca_bundle_path`, the system's CAs plus the emulator's, so other
        HTTPS calls of the process still verify; the ODBC driver trusts exactly the
        emulator's server certificate through azsql-bulk's own ``AZSQL_BULK_ENCRYPT=strict``
        / ``AZSQL_BULK_SERVER_CERTIFICATE``. ``SSL_CERT_FILE`` (every OpenSSL client of the
        process) is never set.

        :param identity: one of :data:`ENV_IDENTITIES`.
        :raises ValueError: an unknown identity kind.
        """
        if identity not in ENV_IDENTITIES:
            raise ValueError(f"unknown identity kind {identity!r}; one of "
                             f"{', '.join(ENV_IDENTITIES)}")
        creds = self.credentials
        env = {"REQUESTS_CA_BUNDLE": str(self.ca_bundle()), "AZSQL_BULK_AUTH": identity,
               "AZSQL_BULK_ENCRYPT": "strict",
               "AZSQL_BULK_SERVER_CERTIFICATE": str(self.server_cert_path),
               "AZSQL_BULK_HOST_NAME_IN_CERTIFICATE": "localhost"}
        if identity == "managed-identity":
            return {"IDENTITY_ENDPOINT": f"{self.authority_host}/msi/token",
                    "IDENTITY_HEADER": self._identity_header, **env}
        # azure-identity reads AZURE_AUTHORITY_HOST; azsql-bulk its own AZSQL_BULK_AUTHORITY_HOST
        env.update(AZURE_TENANT_ID=self.tenant_id, AZURE_AUTHORITY_HOST=self.authority_host,
                   AZSQL_BULK_AUTHORITY_HOST=self.authority_host)
        if identity == "service-principal":
            app = creds.service_principal
            env.update(AZURE_CLIENT_ID=app.client_id, AZURE_CLIENT_SECRET=app.client_secret or "")
        elif identity == "certificate":
            app = creds.certificate_app
            env.update(AZURE_CLIENT_ID=app.client_id, AZSQL_BULK_AUTH="service-principal",
                       AZURE_CLIENT_CERTIFICATE_PATH=str(app.certificate_path),
                       AZSQL_BULK_CERTIFICATE=str(app.certificate_path))
        else:
            app = creds.workload_app
            env.update(AZURE_CLIENT_ID=app.client_id, AZURE_FEDERATED_TOKEN_FILE=str(
                self.issue_federated_assertion(client_id=app.client_id)))
        return env

    def ca_bundle(self) -> Path:
        """Write (once) and return :attr:`ca_bundle_path`: the system's CA certificates
        (certifi's when installed, else OpenSSL's default file) and the emulator's CA."""
        if not self.ca_bundle_path.exists():
            try:
                import certifi

                system = Path(certifi.where())
            except ImportError:
                system = Path(ssl.get_default_verify_paths().cafile or "/nonexistent")
            parts = [system.read_text(encoding="ascii")] if system.is_file() else []
            parts.append(self.ca_cert_path.read_text(encoding="ascii"))
            self.ca_bundle_path.write_text("\n".join(p.rstrip("\n") for p in parts) + "\n",
                                           encoding="ascii")
        return self.ca_bundle_path

    @property
    def ca_bundle_path(self) -> Path:
        return self.ca_cert_path.with_name("ca-bundle.pem")

    @property
    def env(self) -> dict[str, str]:
        """Every identity's variables at once, for tests (prefer :meth:`env_for`).

        ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` select App Service managed identity;
        ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``/``AZURE_AUTHORITY_HOST``
        select the default service principal for ``EnvironmentCredential`` (which also needs
        ``disable_instance_discovery=True``); ``REQUESTS_CA_BUNDLE`` makes requests (hence
        azure-core and MSAL) trust the emulator CA; ``SSL_CERT_FILE`` does the same for
        OpenSSL-default clients (it is not enough for requests on its own).
        """
        sp = self.credentials.service_principal
        return {
            "IDENTITY_ENDPOINT": f"{self.authority_host}/msi/token",
            "IDENTITY_HEADER": self._identity_header,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": sp.client_id,
            "AZURE_CLIENT_SECRET": sp.client_secret or "",
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "REQUESTS_CA_BUNDLE": str(self.ca_cert_path),
            "SSL_CERT_FILE": str(self.ca_cert_path),
        }

    def workload_env(self, token_file: Path, client_id: str | None = None) -> dict[str, str]:
        """Environment variables for ``WorkloadIdentityCredential()`` with no arguments.

        :param token_file: the file written by :meth:`issue_federated_assertion`.
        :param client_id: the federated app (default: the default workload app).
        """
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": client_id or self.credentials.workload_app.client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZURE_AUTHORITY_HOST": self.authority_host,
            "REQUESTS_CA_BUNDLE": str(self.ca_cert_path),
            "SSL_CERT_FILE": str(self.ca_cert_path),
        }

    def server_ssl_context(self) -> ssl.SSLContext:
        """A TLS 1.2/1.3 server context presenting the emulator's certificate (for TDS)."""
        return pki.server_ssl_context(self._pki_files)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A TLS client context trusting only the emulator CA."""
        return pki.client_ssl_context(self.ca_cert_path)

    def issue_token(
        self,
        *,
        oid: str | None = None,
        appid: str | None = None,
        audience: str = SQL_AUDIENCE,
        lifetime: int | None = None,
        **extra_claims: Any,
    ) -> str:
        """Issue an access token directly (no HTTP), e.g. for tests and benchmarks.

        With neither ``oid`` nor ``appid`` the token is for the default service principal.
        ``appid`` alone: an app token (``oid`` from the registered client when known).
        ``oid`` alone: a user token (``upn``/``name`` filled for the default user).

        :param oid: the principal's object id.
        :param appid: the client id.
        :param audience: ``aud``.
        :param lifetime: seconds until ``exp`` (negative for an already expired token);
            ``None`` uses ``token_lifetime``.
        :param extra_claims: claims to add or override (``iss``, ``nbf``, ``exp``...).
        """
        if oid is None and appid is None:
            appid = self.credentials.service_principal.client_id
        user = appid is None
        if appid is not None and oid is None:
            client = self.clients.get(appid)
            oid = (
                client.object_id if client else str(uuid.uuid5(uuid.NAMESPACE_URL, f"app:{appid}"))
            )
        upn = name = None
        if user and oid is not None and oid.lower() == self.credentials.user_object_id.lower():
            upn, name = self.credentials.user_upn, self.credentials.user_upn.split("@")[0]
        claims = self._issuer.access_token_claims(
            oid=str(oid),
            appid=appid,
            idtyp="user" if user else "app",
            audience=audience,
            lifetime=self.token_lifetime if lifetime is None else lifetime,
            name=name,
            upn=upn,
        )
        claims.update(extra_claims)
        token = self._issuer.issue(claims)
        self._metrics.token_issued(str(claims.get("uti")), grant="direct")
        return token

    def validate(self, token: str, now: float | None = None) -> TokenIdentity:
        """Validate an access token the way Azure SQL does.

        :param token: the access token.
        :param now: check lifetime against this epoch time instead of the clock.
        :raises LoginError: 18456 with reason ``malformed``, ``signature``, ``issuer``,
            ``audience``, ``expired`` or ``not_yet_valid``; the message never holds the token.
        """
        try:
            identity = self._validator.validate(token, now=now)
        except LoginError as exc:
            self._metrics.refused(exc.reason)
            raise
        self._metrics.validated()
        return identity

    def authenticate(
        self, token: str, database: str | None = None, *, now: float | None = None
    ) -> Principal:
        """Validate a token and resolve its database principal: a whole token login.

        :param token: the access token from LOGIN7's FEDAUTH extension.
        :param database: the database requested (default: the user database).
        :param now: check lifetime against this epoch time.
        :raises LoginError: any validation reason, ``unknown_principal`` or ``disabled``.
        """
        identity = self.validate(token, now)
        try:
            principal = self.principals.resolve(identity, database or self.database)
        except LoginError as exc:
            self._metrics.refused(exc.reason)
            raise
        self._metrics.logged_in()
        return principal

    def check_sql_login(self, user: str, password: str, database: str | None = None) -> Principal:
        """Authenticate a SQL-auth login (constant-time password check).

        :param user: login name.
        :param password: password.
        :param database: the database requested (default: the user database).
        :raises LoginError: ``password``, ``disabled`` or ``unknown_principal``.
        """
        try:
            principal = self.principals.check_sql_login(user, password, database or self.database)
        except LoginError as exc:
            self._metrics.refused(exc.reason)
            raise
        self._metrics.logged_in()
        return principal

    def issue_federated_assertion(
        self,
        *,
        subject: str | None = None,
        client_id: str | None = None,
        path: Path | None = None,
        lifetime: int = 3600,
        audience: str = TOKEN_EXCHANGE_AUDIENCE,
    ) -> Path:
        """Act as a workload's OIDC issuer: write a token file for ``AZURE_FEDERATED_TOKEN_FILE``.

        :param subject: the ``sub`` (default: the client's first federated credential subject).
        :param client_id: the federated app the token is meant for (default: the workload app);
            it picks the default subject and file name.
        :param path: where to write (default: ``state_dir/federated/<client_id>.jwt``).
        :param lifetime: seconds until the assertion expires.
        :param audience: the ``aud`` (Entra expects ``api://AzureADTokenExchange``).
        """
        client_id = client_id or self.credentials.workload_app.client_id
        if subject is None:
            client = self.clients.get(client_id)
            if client is None or not client.federated:
                raise ValueError(f"client {client_id} has no federated credential; pass subject=")
            subject = client.federated[0].subject
        now = int(time.time())
        claims = {
            "iss": EMULATOR_FEDERATION_ISSUER,
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "jti": str(uuid.uuid4()),
        }
        token = self._federation_issuer.issue(claims)
        target = path or self.state_dir / "federated" / f"{client_id}.jwt"
        pki.write_secret_file(Path(target), token.encode("ascii"))
        return Path(target)

    def metrics(self) -> dict[str, Any]:
        """Counters: tokens issued (total, distinct ``uti``, by grant), refusals, HTTP errors."""
        return self._metrics.snapshot()

    def _mint_for_client(
        self, client: ClientRegistration, audience: str, appidacr: str, grant: str
    ) -> tuple[str, int]:
        claims = self._issuer.access_token_claims(
            oid=client.object_id,
            appid=client.client_id,
            idtyp="app",
            audience=audience,
            lifetime=self.token_lifetime,
            appidacr=appidacr,
        )
        token = self._issuer.issue(claims)
        self._metrics.token_issued(claims["uti"], grant=grant)
        return token, int(claims["exp"])

    @property
    def signing_key(self) -> SigningKey:
        """The active token-signing key (its ``kid`` is in every token header)."""
        return self._signing_key
