"""Credentials: Entra access tokens for Azure SQL from azure-identity, cached and renewable.

A :class:`TokenProvider` hands out :class:`AccessToken` values for one scope, from a
thread-safe cache that is refreshed before the token's ``refresh_on`` time or before
it gets close to expiry. :func:`create_token_provider` builds one from
:class:`CredentialOptions`, which choose the credential by name (``managed-identity``,
``workload-identity``, ``service-principal``, ``azure-cli``, ``default``,
``access-token``). ``sql`` (user and password) exists for local SQL Server and the
emulator only; it has no token provider (see :func:`sql_login`).

Secrets and tokens are :class:`Secret` values: their ``repr`` and ``str`` are ``***``,
so they cannot reach logs, exception text or reprs by accident.

>>> provider = create_token_provider(CredentialOptions(kind="managed-identity"))  # doctest: +SKIP
>>> provider.get_token().seconds_left() > 0  # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.errors import ConfigurationError, CredentialError, scrub
from engine.secret import Secret

log = logging.getLogger(__name__)

ENV_CLIENT_SECRET = "AZURE_CLIENT_SECRET"  # noqa: S105 (a name, not a secret)
ENV_CERTIFICATE_PASSWORD = "AZURE_CLIENT_CERTIFICATE_PASSWORD"  # noqa: S105 (a name, not a secret)
ENV_ACCESS_TOKEN = "AZSQL_BULK_ACCESS_TOKEN"  # noqa: S105 (a name, not a secret)
ENV_SQL_PASSWORD = "AZSQL_BULK_SQL_PASSWORD"  # noqa: S105 (a name, not a secret)
# A pre-obtained token that is not a JWT has no readable expiry; re-read it this often.
UNKNOWN_LIFETIME = 300.0


class CredentialKind(StrEnum):
    """How the loader proves who it is. ``sql`` is for local SQL Server and the emulator only.

    The one vocabulary of the engine, the CLI and the Airflow provider. The value is the
    CLI's spelling (``managed-identity``); :attr:`extra_name` is the Airflow extras'
    (``managed_identity``). Either spelling, in any case, gives the kind:

    >>> CredentialKind("managed_identity") is CredentialKind("Managed-Identity")
    True
    >>> CredentialKind.SERVICE_PRINCIPAL.extra_name
    'service_principal'
    """

    MANAGED_IDENTITY = "managed-identity"
    WORKLOAD_IDENTITY = "workload-identity"
    SERVICE_PRINCIPAL = "service-principal"
    AZURE_CLI = "azure-cli"
    DEFAULT = "default"
    ACCESS_TOKEN = "access-token"  # noqa: S105 (a name, not a secret)
    SQL = "sql"

    @classmethod
    def _missing_(cls, value: object) -> CredentialKind | None:
        if isinstance(value, str):
            spelled = value.strip().lower().replace("_", "-")
            for kind in cls:
                if kind.value == spelled:
                    return kind
        return None

    @property
    def extra_name(self) -> str:
        """The spelling of Airflow connection extras: ``managed_identity``."""
        return self.value.replace("-", "_")


class AzureCloud(StrEnum):
    """The Azure cloud, which fixes the database scope and the default authority host."""

    PUBLIC = "public"
    US_GOVERNMENT = "usgov"
    CHINA = "china"

    @property
    def scope(self) -> str:
        """The Azure SQL token scope in this cloud."""
        return _CLOUD_SCOPES[self]

    @property
    def authority_host(self) -> str:
        """The Entra authority host of this cloud."""
        return _CLOUD_AUTHORITIES[self]


_CLOUD_SCOPES = {
    AzureCloud.PUBLIC: "https://database.windows.net/.default",
    AzureCloud.US_GOVERNMENT: "https://database.usgovcloudapi.net/.default",
    AzureCloud.CHINA: "https://database.chinacloudapi.cn/.default",
}
_CLOUD_AUTHORITIES = {
    AzureCloud.PUBLIC: "https://login.microsoftonline.com",
    AzureCloud.US_GOVERNMENT: "https://login.microsoftonline.us",
    AzureCloud.CHINA: "https://login.chinacloudapi.cn",
}
DEFAULT_SCOPE = _CLOUD_SCOPES[AzureCloud.PUBLIC]


@dataclass(frozen=True)
class CredentialOptions:
    """Which credential to use, and its settings. Secrets are never fields of this class.

    :param kind: a :class:`CredentialKind` or its name, e.g. ``"managed-identity"``.
    :param client_id: user-assigned managed identity, service principal or workload app id
        (service principal / workload identity fall back to ``$AZURE_CLIENT_ID``).
    :param tenant_id: tenant of the service principal / workload app (``$AZURE_TENANT_ID``).
    :param certificate_path: PEM/PKCS12 certificate of a service principal; its password,
        if any, comes from ``$AZURE_CLIENT_CERTIFICATE_PASSWORD``.
    :param secret_store: for a service principal without certificate: a function returning
        the client secret (Key Vault, an Airflow connection...); without it the secret is
        read from ``$AZURE_CLIENT_SECRET``. Never a literal secret.
    :param token_file: workload identity's federated token file
        (default ``$AZURE_FEDERATED_TOKEN_FILE``).
    :param access_token_env: ``access-token``: the variable holding the token.
    :param access_token_file: ``access-token``: a file holding the token (wins over the
        variable); re-read whenever the cached token goes stale.
    :param sql_user: ``sql``: the login name.
    :param sql_password_env: ``sql``: the variable holding the password.
    :param cloud: ``public``, ``usgov`` or ``china``: picks the scope and authority host.
    :param scope: a custom token scope (wins over ``cloud``).
    :param authority_host: a custom Entra authority (private clouds, the emulator).
    :param disable_instance_discovery: skip MSAL's authority validation (needed for
        authorities Microsoft does not know, such as the emulator).
    :param refresh_margin: seconds before expiry at which a cached token is renewed
        (at most half the token's lifetime).

    >>> CredentialOptions(kind="service-principal", client_id="app", tenant_id="t").kind
    <CredentialKind.SERVICE_PRINCIPAL: 'service-principal'>
    """

    kind: CredentialKind | str = CredentialKind.DEFAULT
    client_id: str | None = None
    tenant_id: str | None = None
    certificate_path: Path | None = None
    secret_store: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    token_file: Path | None = None
    access_token_env: str = ENV_ACCESS_TOKEN
    access_token_file: Path | None = None
    sql_user: str | None = None
    sql_password_env: str = ENV_SQL_PASSWORD
    cloud: AzureCloud | str = AzureCloud.PUBLIC
    scope: str | None = None
    authority_host: str | None = None
    disable_instance_discovery: bool = False
    refresh_margin: float = 300.0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", CredentialKind(self.kind))
        except ValueError:
            raise ConfigurationError(
                f"unknown credential kind {self.kind!r}; choose one of "
                f"{', '.join(k.value for k in CredentialKind)}") from None
        try:
            object.__setattr__(self, "cloud", AzureCloud(self.cloud))
        except ValueError:
            raise ConfigurationError(
                f"unknown Azure cloud {self.cloud!r}; choose one of "
                f"{', '.join(c.value for c in AzureCloud)}, or set scope and "
                "authority_host") from None
        for name in ("certificate_path", "token_file", "access_token_file"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.refresh_margin < 0:
            raise ConfigurationError("refresh_margin must be >= 0 seconds")

    @property
    def effective_scope(self) -> str:
        """The scope tokens are requested for: ``scope`` if set, else the cloud's."""
        return self.scope or AzureCloud(self.cloud).scope


@dataclass(frozen=True)
class AccessToken:
    """An access token and its lifetime (epoch seconds). Its ``repr`` hides the token.

    :param token: the token.
    :param expires_on: when it expires.
    :param refresh_on: when the issuer suggests renewing it, if it said.
    :param obtained_at: when this process got it.
    """

    token: Secret
    expires_on: float
    refresh_on: float | None = None
    obtained_at: float = field(default_factory=time.time)

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired); ``now`` defaults to now."""
        return self.expires_on - (time.time() if now is None else now)

    def stale_at(self, margin: float) -> float:
        """When a cache should stop handing this token out: ``refresh_on``, or ``margin``
        seconds before expiry (at most half the lifetime)."""
        lifetime = max(0.0, self.expires_on - self.obtained_at)
        stale = self.expires_on - min(margin, lifetime / 2)
        return min(stale, self.refresh_on) if self.refresh_on else stale

    def claims(self) -> dict[str, Any]:
        """The token's identity claims, unverified, for diagnostics (see `unverified_claims`)."""
        return unverified_claims(self.token.reveal())


_DIAGNOSTIC_CLAIMS = ("aud", "iss", "tid", "oid", "appid", "azp", "upn", "name", "idtyp", "exp")


def unverified_claims(token: str) -> dict[str, Any]:
    """Read a JWT's identity claims without verifying it (for diagnostics and expiry only).

    :param token: a compact JWS.

    >>> unverified_claims("not a jwt")
    {}
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(payload, dict):
        return {}
    return {k: payload[k] for k in _DIAGNOSTIC_CLAIMS if k in payload}


class TokenProvider:
    """A thread-safe cache of access tokens for one scope; subclasses say where tokens come from.

    One provider is shared by all connections of a load, so workers reuse a token while
    it is fresh and only one of them fetches a new one.

    :param scope: the scope tokens are for.
    :param refresh_margin: renew this many seconds before expiry (at most half the lifetime).
    :param clock: the time source (tests pass a fake).
    """

    description = "token provider"

    def __init__(self, scope: str = DEFAULT_SCOPE, *, refresh_margin: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: AccessToken | None = None
        self.fetches = 0

    def get_token(self) -> AccessToken:
        """The cached token while it is fresh, otherwise a new one.

        :raises CredentialError: no token could be obtained.
        """
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < cached.stale_at(self.refresh_margin):
                return cached
            return self._renew(force=False, rejected=None)

    def force_refresh(self, rejected: AccessToken | None = None) -> AccessToken:
        """Get a token other than ``rejected`` (after the server said it had expired).

        If another thread already replaced ``rejected`` with a fresh token, that one is
        returned without asking the credential again.

        :param rejected: the token the server refused.
        :raises CredentialError: no new token could be obtained.
        """
        with self._lock:
            cached = self._cached
            if (cached is not None and rejected is not None and cached.token != rejected.token
                    and self._clock() < cached.stale_at(self.refresh_margin)):
                return cached
            return self._renew(force=True, rejected=rejected)

    def _renew(self, *, force: bool, rejected: AccessToken | None) -> AccessToken:
        token = self._fetch(force=force, rejected=rejected)
        self.fetches += 1
        self._cached = token
        log.debug("%s: new token for %s, expires in %.0f s", self.description, self.scope,
                  token.seconds_left(self._clock()))
        return token

    def _fetch(self, *, force: bool, rejected: AccessToken | None) -> AccessToken:
        raise NotImplementedError

    def close(self) -> None:
        """Forget the cached token and release the credential's resources."""
        with self._lock:
            self._cached = None

    def __enter__(self) -> TokenProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r}, scope={self.scope!r})"


class CredentialTokenProvider(TokenProvider):
    """Tokens from an azure-identity credential (``get_token_info``, honouring ``refresh_on``).

    :param credential: an azure-identity credential; or None with ``factory``.
    :param factory: builds the credential; lets :meth:`force_refresh` bypass the
        credential's own cache by building a new one.
    :param scope: the scope.
    :param description: what the credential is, for messages (e.g. ``managed-identity``).
    :param remedy: what to do when it fails, for messages.

    >>> from azure.identity import ManagedIdentityCredential
    >>> p = CredentialTokenProvider(factory=ManagedIdentityCredential)
    >>> p.get_token().seconds_left() > 0  # doctest: +SKIP
    True
    """

    def __init__(self, credential: Any = None, *, factory: Callable[[], Any] | None = None,
                 scope: str = DEFAULT_SCOPE, description: str = "credential", remedy: str = "",
                 refresh_margin: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(scope, refresh_margin=refresh_margin, clock=clock)
        if credential is None and factory is None:
            raise ValueError("pass a credential or a factory")
        self._factory = factory
        self._credential = credential
        self.description = description
        self._remedy = remedy

    def _credential_now(self) -> Any:
        if self._credential is None:
            self._credential = self._call(self._factory)  # type: ignore[arg-type]
        return self._credential

    def _fetch(self, *, force: bool, rejected: AccessToken | None) -> AccessToken:
        token = self._ask(self._credential_now())
        if force and self._factory is not None and rejected is not None \
                and token.token == rejected.token:
            # The credential's own cache still believes in the refused token: start afresh.
            self._close_credential()
            token = self._ask(self._credential_now())
        return token

    def _ask(self, credential: Any) -> AccessToken:
        now = self._clock()
        if hasattr(credential, "get_token_info"):
            info = self._call(lambda: credential.get_token_info(self.scope))
            return AccessToken(Secret(info.token), float(info.expires_on),
                               float(info.refresh_on) if info.refresh_on else None, now)
        legacy = self._call(lambda: credential.get_token(self.scope))
        return AccessToken(Secret(legacy.token), float(legacy.expires_on), None, now)

    def _call(self, fn: Callable[[], Any]) -> Any:
        failure = None
        try:
            return fn()
        except ConfigurationError:
            raise
        except Exception as exc:  # azure-identity raises several unrelated types
            failure = f"{type(exc).__name__}: {scrub(str(exc)).strip()}"
        first_line = failure.splitlines()[0] if failure else ""
        raise CredentialError(
            f"could not get an access token for {self.scope} with the {self.description} "
            f"credential: {first_line[:500]}" + (f"; {self._remedy}" if self._remedy else ""))

    def _close_credential(self) -> None:
        credential, self._credential = self._credential, None
        close = getattr(credential, "close", None)
        if callable(close):
            close()

    def close(self) -> None:
        """Forget the cached token and close the credential (only one this provider built)."""
        super().close()
        with self._lock:
            if self._factory is not None:
                self._close_credential()


class StaticTokenProvider(TokenProvider):
    """Pre-obtained tokens from an environment variable or a file (``access-token`` kind).

    The source is read again whenever the cached token goes stale, so another process
    may keep the file current. Expiry comes from the token's ``exp`` claim.

    :param env_var: the variable holding the token.
    :param path: a file holding the token (wins over ``env_var``).
    :param scope: the scope the token is meant for (used in messages).

    >>> StaticTokenProvider(path=Path("/run/secrets/sql-token")).get_token()  # doctest: +SKIP
    AccessToken(token=Secret('***'), expires_on=1767225600.0, ...)
    """

    def __init__(self, *, env_var: str = ENV_ACCESS_TOKEN, path: Path | None = None,
                 scope: str = DEFAULT_SCOPE, refresh_margin: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(scope, refresh_margin=refresh_margin, clock=clock)
        self.env_var = env_var
        self.path = path
        self.description = f"access-token from {path}" if path else f"access-token from ${env_var}"

    def _read(self) -> str:
        if self.path is not None:
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise CredentialError(
                    f"cannot read the access token file {self.path} ({exc.strerror}); write a "
                    "token for Azure SQL there, e.g. `az account get-access-token --resource "
                    "https://database.windows.net/ --query accessToken -o tsv`") from None
        else:
            text = os.environ.get(self.env_var, "")
        text = text.strip()
        if not text:
            where = self.path if self.path is not None else f"${self.env_var}"
            raise CredentialError(
                f"no access token in {where}; put a token for {self.scope} there, e.g. from "
                "`az account get-access-token --resource https://database.windows.net/ "
                "--query accessToken -o tsv`")
        return text

    def _fetch(self, *, force: bool, rejected: AccessToken | None) -> AccessToken:
        now = self._clock()
        text = self._read()
        exp = unverified_claims(text).get("exp")
        expires_on = float(exp) if isinstance(exp, int | float) else now + UNKNOWN_LIFETIME
        token = AccessToken(Secret(text), expires_on, None, now)
        if force and rejected is not None and token.token == rejected.token:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_on))
            raise CredentialError(
                f"the pre-obtained access token from {self.description.split(' from ')[1]} "
                f"has expired (its exp is {when}) and no newer token is there; obtain a new "
                "token and store it there, or use a credential kind that renews tokens "
                "(managed-identity, service-principal, workload-identity)")
        return token


def _authority(options: CredentialOptions) -> str | None:
    if options.authority_host:
        return options.authority_host
    cloud = AzureCloud(options.cloud)
    return None if cloud is AzureCloud.PUBLIC else cloud.authority_host


def _required(value: str | None, env: str, what: str, kind: str) -> str:
    found = value or os.environ.get(env)
    if not found:
        raise ConfigurationError(f"credential kind {kind} needs {what}: pass it or set ${env}")
    return found


_REMEDIES = {
    CredentialKind.MANAGED_IDENTITY: "run on an Azure resource that has a managed identity "
        "assigned (pass client_id for a user-assigned identity)",
    CredentialKind.WORKLOAD_IDENTITY: "set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
        "AZURE_FEDERATED_TOKEN_FILE (the AKS workload identity webhook does) and federate the "
        "app with the pod's service account",
    CredentialKind.SERVICE_PRINCIPAL: "check the tenant id, the client id and the secret in "
        f"${ENV_CLIENT_SECRET} (or the certificate)",
    CredentialKind.AZURE_CLI: "run `az login` (and `az account set` for the right tenant)",
    CredentialKind.DEFAULT: "configure one of the sources DefaultAzureCredential tries "
        "(environment variables, workload identity, managed identity, Azure CLI)",
}


def build_credential(options: CredentialOptions) -> Any:
    """Build the azure-identity credential that ``options`` describe.

    :param options: the credential settings; ``access-token`` and ``sql`` have no
        azure-identity credential.
    :raises ConfigurationError: a required setting is missing.

    >>> build_credential(CredentialOptions(kind="azure-cli"))  # doctest: +ELLIPSIS
    <azure.identity...AzureCliCredential object at ...>
    """
    import azure.identity as identity

    kind = CredentialKind(options.kind)
    common: dict[str, Any] = {}
    authority = _authority(options)
    if authority:
        common["authority"] = authority
    if options.disable_instance_discovery:
        common["disable_instance_discovery"] = True

    if kind is CredentialKind.MANAGED_IDENTITY:
        return identity.ManagedIdentityCredential(client_id=options.client_id)
    if kind is CredentialKind.WORKLOAD_IDENTITY:
        token_file = options.token_file or os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
        return identity.WorkloadIdentityCredential(
            tenant_id=_required(options.tenant_id, "AZURE_TENANT_ID", "a tenant id", kind),
            client_id=_required(options.client_id, "AZURE_CLIENT_ID", "a client id", kind),
            token_file_path=str(_required(
                str(token_file) if token_file else None, "AZURE_FEDERATED_TOKEN_FILE",
                "a federated token file", kind)),
            **common)
    if kind is CredentialKind.SERVICE_PRINCIPAL:
        tenant = _required(options.tenant_id, "AZURE_TENANT_ID", "a tenant id", kind)
        client = _required(options.client_id, "AZURE_CLIENT_ID", "a client id", kind)
        if options.certificate_path is not None:
            password = os.environ.get(ENV_CERTIFICATE_PASSWORD)
            if password:
                common["password"] = password.encode()
            return identity.CertificateCredential(
                tenant, client, certificate_path=str(options.certificate_path), **common)
        secret = _client_secret(options)
        return identity.ClientSecretCredential(tenant, client, secret.reveal(), **common)
    if kind is CredentialKind.AZURE_CLI:
        return identity.AzureCliCredential(tenant_id=options.tenant_id or "")
    if kind is CredentialKind.DEFAULT:
        if options.client_id:
            common["managed_identity_client_id"] = options.client_id
        return identity.DefaultAzureCredential(**common)
    raise ConfigurationError(f"credential kind {kind} has no azure-identity credential")


def _client_secret(options: CredentialOptions) -> Secret:
    if options.secret_store is not None:
        value = options.secret_store()
        source = "the secret store"
    else:
        value = os.environ.get(ENV_CLIENT_SECRET, "")
        source = f"${ENV_CLIENT_SECRET}"
    secret = Secret(value or "")
    if not secret:
        raise ConfigurationError(
            f"credential kind service-principal found no client secret in {source}; set "
            f"{ENV_CLIENT_SECRET} (never pass a secret on the command line), use a secret "
            "store, or give certificate_path")
    return secret


def create_token_provider(options: CredentialOptions,
                          clock: Callable[[], float] = time.time) -> TokenProvider:
    """Build the token provider for ``options``.

    :param options: which credential, for which scope.
    :param clock: the time source.
    :raises ConfigurationError: ``sql`` kind (it has no tokens), or a missing setting.

    >>> create_token_provider(CredentialOptions(kind="access-token"))
    StaticTokenProvider('access-token from $AZSQL_BULK_ACCESS_TOKEN', \
scope='https://database.windows.net/.default')
    """
    kind = CredentialKind(options.kind)
    scope = options.effective_scope
    if kind is CredentialKind.SQL:
        raise ConfigurationError("credential kind sql uses a user and password, not tokens")
    if kind is CredentialKind.ACCESS_TOKEN:
        return StaticTokenProvider(env_var=options.access_token_env,
                                   path=options.access_token_file, scope=scope,
                                   refresh_margin=options.refresh_margin, clock=clock)
    build_credential(options).close()  # fail now on a missing setting, not at first connect
    return CredentialTokenProvider(
        factory=lambda: build_credential(options), scope=scope, description=kind.value,
        remedy=_REMEDIES.get(kind, ""), refresh_margin=options.refresh_margin, clock=clock)


def sql_login(options: CredentialOptions) -> tuple[str, Secret]:
    """User and password for the ``sql`` kind: for local SQL Server and the emulator ONLY.

    Azure SQL loads should log in with Entra tokens; this exists for local development.

    :param options: ``sql_user`` and ``sql_password_env``.
    :raises ConfigurationError: the user or the password is missing.
    """
    if not options.sql_user:
        raise ConfigurationError("credential kind sql needs sql_user")
    password = Secret(os.environ.get(options.sql_password_env, ""))
    if not password:
        raise ConfigurationError(
            f"credential kind sql reads the password from ${options.sql_password_env}, which "
            "is empty; set it (never pass a password on the command line)")
    return options.sql_user, password
