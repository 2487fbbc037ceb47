"""Entra-style RS256 access tokens for Azure SQL: signing keys, issuing, validating.

Tokens look like Microsoft Entra v1 access tokens for the resource
``https://database.windows.net/``; :class:`TokenValidator` checks them the way
Azure SQL Database does at login (signature, issuer, audience, lifetime with
five minutes of clock skew) and refuses each failure with
:class:`~azsql_emulator.errors.LoginError` (18456) carrying a short ``reason``.

Example::

    key = load_or_create_signing_key(state_dir, ca_cert, ca_key)
    issuer = TokenIssuer(key, tenant_id)
    token = issuer.issue(issuer.access_token_claims(appid=client_id, oid=object_id, idtyp="app"))
    identity = TokenValidator([key], tenant_id).validate(token)
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from azsql_emulator.errors import LoginError
from azsql_emulator.identity import pki

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "SQL_AUDIENCE",
    "SQL_AUDIENCES",
    "TOKEN_PRINCIPAL",
    "SigningKey",
    "TokenIdentity",
    "TokenIssuer",
    "TokenValidator",
    "audience_for_resource",
    "load_or_create_signing_key",
    "new_uti",
    "v1_issuer",
    "v2_issuer",
]

SQL_AUDIENCE = "https://database.windows.net/"
# Azure SQL accepts the resource with and without the trailing slash, nothing else.
SQL_AUDIENCES = frozenset({"https://database.windows.net/", "https://database.windows.net"})
CLOCK_SKEW_SECONDS = 300
# What Azure SQL prints instead of a name when a token login fails.
TOKEN_PRINCIPAL = "<token-identified principal>"  # noqa: S105 - not a secret
_MAX_ECHO = 80  # claim values echoed in messages are cut to this, so no token ever fits


def v1_issuer(tenant_id: str) -> str:
    """Return the v1 issuer Entra puts in access tokens for Azure SQL.

    :param tenant_id: the directory (tenant) id.
    """
    return f"https://sts.windows.net/{tenant_id}/"


def v2_issuer(tenant_id: str) -> str:
    """Return the v2 issuer, which Azure SQL also accepts.

    :param tenant_id: the directory (tenant) id.
    """
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


def audience_for_resource(resource_or_scope: str) -> str:
    """Map a requested resource or ``/.default`` scope to the token's ``aud``.

    Every spelling of Azure SQL's resource yields ``https://database.windows.net/``
    (what Entra issues); any other resource is used as given, so wrong-audience
    tokens can be produced on purpose.

    :param resource_or_scope: e.g. ``https://database.windows.net/.default``.
    """
    resource = resource_or_scope.strip()
    if resource.endswith("/.default"):
        resource = resource[: -len("/.default")]
    if resource in SQL_AUDIENCES:
        return SQL_AUDIENCE
    return resource


def new_uti() -> str:
    """Return a fresh ``uti`` (unique token identifier), 22 base64url characters like Entra's."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


class SigningKey:
    """An RSA 2048 token-signing key with its certificate; ``kid`` is the cert's ``x5t``.

    :param private_key: the RSA private key.
    :param certificate: a certificate for the key (signed by the emulator CA).
    """

    def __init__(self, private_key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
        self.private_key = private_key
        self.certificate = certificate
        self.x5t = pki.thumbprint_sha1(certificate)
        self.kid = self.x5t  # Entra uses the thumbprint as the key id

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The public half, used to verify signatures."""
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """Return the JWKS entry Entra publishes for this key (kty, use, kid, x5t, n, e, x5c)."""
        numbers = self.public_key.public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _b64url_int(numbers.n),
            "e": _b64url_int(numbers.e),
            "x5c": [base64.b64encode(der).decode("ascii")],
        }

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


def load_or_create_signing_key(
    state_dir: Path,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    name: str = "signing",
) -> SigningKey:
    """Load ``{name}-key.pem``/``{name}-cert.pem`` from ``state_dir`` or create them.

    Persisting the key lets a restarted emulator validate tokens it issued before.

    :param state_dir: the emulator state directory.
    :param ca_cert: the emulator CA certificate (signs the key's certificate).
    :param ca_key: the CA private key.
    :param name: file name prefix (``signing`` for access tokens, ``federation`` for
        the emulator's workload-identity issuer).
    """
    key_path = state_dir / f"{name}-key.pem"
    cert_path = state_dir / f"{name}-cert.pem"
    if key_path.exists() and cert_path.exists():
        return SigningKey(pki.load_private_key(key_path), pki.load_certificate(cert_path))
    key = pki.new_rsa_key()
    cert = pki.issue_certificate(
        ca_cert,
        ca_key,
        key,
        f"azsql-bulk emulator {name} key",
        server=False,
        lifetime=dt.timedelta(days=3650),
    )
    pki.write_private_key(key_path, key)
    pki.write_certificates(cert_path, cert)
    return SigningKey(key, cert)


@dataclass(frozen=True)
class TokenIdentity:
    """Who a validated access token speaks for, and its lifetime.

    :param oid: object id of the principal (service principal or user).
    :param appid: application (client) id; ``None`` for tokens without one.
    :param tid: tenant id.
    :param idtyp: ``app`` or ``user``.
    :param name: display name claim, if any.
    :param upn: user principal name, for users.
    :param audience: the ``aud`` claim.
    :param issuer: the ``iss`` claim.
    :param issued_at: ``iat``, epoch seconds.
    :param not_before: ``nbf``, epoch seconds.
    :param expires_at: ``exp``, epoch seconds.
    :param uti: Entra's unique token id.
    :param claims: every claim of the token (none is secret; the signature is not kept).
    """

    oid: str | None
    appid: str | None
    tid: str
    idtyp: str
    name: str | None
    upn: str | None
    audience: str
    issuer: str
    issued_at: int
    not_before: int
    expires_at: int
    uti: str | None
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def keys(self) -> tuple[str, ...]:
        """Identity keys a principals directory may map: ``oid`` then ``appid``."""
        return tuple(k for k in (self.oid, self.appid) if k)


class TokenIssuer:
    """Signs Entra v1-style access tokens with the emulator's key.

    :param key: the signing key.
    :param tenant_id: the tenant every token belongs to.
    """

    def __init__(self, key: SigningKey, tenant_id: str) -> None:
        self._key = key
        self.tenant_id = tenant_id

    def access_token_claims(
        self,
        *,
        oid: str,
        appid: str | None,
        idtyp: str,
        audience: str = SQL_AUDIENCE,
        lifetime: int = 3600,
        now: float | None = None,
        name: str | None = None,
        upn: str | None = None,
        appidacr: str = "1",
    ) -> dict[str, Any]:
        """Build the claims of an access token as Entra would issue it.

        :param oid: the principal's object id (also ``sub``).
        :param appid: the client id that asked for the token (apps and managed identities).
        :param idtyp: ``app`` or ``user``.
        :param audience: ``aud``; Azure SQL's resource by default.
        :param lifetime: seconds from ``iat`` to ``exp`` (may be negative for tests).
        :param now: issue time, epoch seconds (defaults to the clock).
        :param name: display name (users).
        :param upn: user principal name (users).
        :param appidacr: how the client authenticated: ``0`` public, ``1`` secret,
            ``2`` certificate or assertion.
        """
        if idtyp not in ("app", "user"):
            raise ValueError(f"idtyp must be 'app' or 'user', not {idtyp!r}")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": v1_issuer(self.tenant_id),
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime),
            "idp": v1_issuer(self.tenant_id),
            "idtyp": idtyp,
            "oid": oid,
            "sub": oid,
            "tid": self.tenant_id,
            "uti": new_uti(),
            "jti": str(uuid.uuid4()),
            "ver": "1.0",
        }
        if appid:
            claims["appid"] = appid
            claims["appidacr"] = appidacr
        if idtyp == "user":
            claims.pop("idp")
            if name:
                claims["name"] = name
            if upn:
                claims["upn"] = upn
                claims["unique_name"] = upn
            claims["amr"] = ["pwd"]
        return claims

    def issue(self, claims: Mapping[str, Any]) -> str:
        """Sign ``claims`` as an RS256 JWT with ``kid`` and ``x5t`` headers.

        :param claims: the payload.
        """
        headers = {"typ": "JWT", "kid": self._key.kid, "x5t": self._key.x5t}
        return jwt.encode(dict(claims), self._key.private_key, algorithm="RS256", headers=headers)

    def __repr__(self) -> str:
        return f"TokenIssuer(tenant_id={self.tenant_id!r}, kid={self._key.kid!r})"


class TokenValidator:
    """Checks access tokens the way Azure SQL Database does at login.

    :param keys: signing keys whose signatures are trusted (looked up by ``kid``).
    :param tenant_id: the only tenant accepted, in ``iss`` and ``tid``.
    :param audiences: accepted ``aud`` values.
    :param skew: clock skew tolerated on ``exp`` and ``nbf``, seconds.
    """

    def __init__(
        self,
        keys: Iterable[SigningKey],
        tenant_id: str,
        *,
        audiences: frozenset[str] = SQL_AUDIENCES,
        skew: int = CLOCK_SKEW_SECONDS,
    ) -> None:
        self._keys = {key.kid: key.public_key for key in keys}
        self.tenant_id = tenant_id
        self.audiences = audiences
        self.skew = skew
        self.issuers = frozenset({v1_issuer(tenant_id), v2_issuer(tenant_id)})

    def validate(self, token: str, *, now: float | None = None) -> TokenIdentity:
        """Verify ``token`` and return the identity it carries.

        :param token: the compact JWS access token.
        :param now: the time to check ``exp``/``nbf`` against, epoch seconds.
        :raises LoginError: 18456 with ``reason`` ``malformed``, ``signature``, ``issuer``,
            ``audience``, ``expired`` or ``not_yet_valid``.
        """
        header = self._header(token)
        claims = self._verified_claims(token, header)
        moment = time.time() if now is None else now
        issuer = claims.get("iss")
        if issuer not in self.issuers or claims.get("tid", self.tenant_id) != self.tenant_id:
            _refuse(
                "issuer",
                f"The access token's issuer {_echo(issuer)} is not trusted by this server; "
                f"expected {v1_issuer(self.tenant_id)} (tenant {self.tenant_id}).",
            )
        audience = claims.get("aud")
        if not isinstance(audience, str) or audience not in self.audiences:
            _refuse(
                "audience",
                f"The access token's audience {_echo(audience)} is not valid for this server; "
                f"request a token for {SQL_AUDIENCE}.default.",
            )
        expires = _int_claim(claims, "exp")
        not_before = _int_claim(claims, "nbf", default=_int_claim(claims, "iat", default=0))
        if moment > expires + self.skew:
            _refuse(
                "expired",
                f"The access token has expired (at {_utc(expires)}, checked with "
                f"{self.skew} s clock skew); get a new token and reconnect.",
            )
        if moment + self.skew < not_before:
            _refuse(
                "not_yet_valid",
                f"The access token is not valid yet (not before {_utc(not_before)}, checked with "
                f"{self.skew} s clock skew); check the client's clock.",
            )
        oid, appid = claims.get("oid"), claims.get("appid")
        if not (isinstance(oid, str) and oid) and not (isinstance(appid, str) and appid):
            _refuse(
                "malformed",
                "The access token is malformed: it names no principal (no oid or appid claim).",
            )
        # Tokens without idtyp: a user token carries a upn or delegated scopes.
        is_user = any(claims.get(k) for k in ("upn", "unique_name", "scp"))
        idtyp = claims.get("idtyp") or ("user" if is_user else "app")
        return TokenIdentity(
            oid=oid if isinstance(oid, str) else None,
            appid=appid if isinstance(appid, str) else None,
            tid=str(claims.get("tid", self.tenant_id)),
            idtyp=str(idtyp),
            name=_opt_str(claims.get("name")),
            upn=_opt_str(claims.get("upn") or claims.get("unique_name")),
            audience=audience,
            issuer=str(issuer),
            issued_at=_int_claim(claims, "iat", default=not_before),
            not_before=not_before,
            expires_at=expires,
            uti=_opt_str(claims.get("uti")),
            claims=dict(claims),
        )

    def _header(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or token.count(".") != 2:
            _refuse(
                "malformed",
                "The access token is malformed: it is not a JWT of three dot-separated parts.",
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            _refuse("malformed", "The access token is malformed: its header is not base64url JSON.")
        alg = header.get("alg")
        if alg != "RS256":
            _refuse(
                "signature",
                f"The access token's signature is invalid: algorithm {_echo(alg)} "
                "is not accepted, only RS256.",
            )
        return header

    def _verified_claims(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        public_key = self._keys.get(header.get("kid"))  # type: ignore[arg-type]
        if public_key is None:
            _refuse(
                "signature",
                "The access token's signature is invalid: "
                "it was signed by a key this server does not know.",
            )
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=["RS256"],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            _refuse("signature", "The access token's signature is invalid.")
        except jwt.PyJWTError:
            _refuse(
                "malformed",
                "The access token is malformed: its payload or signature cannot be decoded.",
            )
        if not isinstance(claims, dict):
            _refuse("malformed", "The access token is malformed: its payload is not a JSON object.")
        return claims

    def __repr__(self) -> str:
        return f"TokenValidator(tenant_id={self.tenant_id!r}, kids={sorted(self._keys)!r})"


def _refuse(reason: str, detail: str) -> NoReturn:
    raise LoginError(f"Login failed for user '{TOKEN_PRINCIPAL}'. {detail}", reason=reason)


def _int_claim(claims: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = claims.get(name)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _refuse(
            "malformed",
            f"The access token is malformed: claim '{name}' is missing or not a number.",
        )
    return int(value)


def _echo(value: Any) -> str:
    # Claim values are not secret, but cut them short so a token can never be echoed.
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _utc(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _b64url_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
