"""The identity provider's HTTP endpoints as plain functions of a request (no sockets here).

Routes (``{tenant}`` is the emulator's tenant id):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and
  ``/{tenant}/.well-known/openid-configuration``
- ``GET /{tenant}/discovery/v2.0/keys``, ``/{tenant}/discovery/keys``, ``/common/discovery/keys``,
  ``/common/discovery/v2.0/keys``: the JWKS
- ``POST /{tenant}/oauth2/v2.0/token`` (``scope``) and ``/{tenant}/oauth2/token`` (``resource``):
  ``client_credentials`` with a client secret, a certificate assertion, or a federated assertion
- ``GET /msi/token``: App Service managed identity (``X-IDENTITY-HEADER`` required)
- ``GET /federation/keys``: the JWKS of the emulator's workload-identity issuer

Errors use Entra's JSON shape (``error``, ``error_description`` starting with
``AADSTSnnnn:``, ``error_codes``); nothing a client sent as a credential is echoed.

Example::

    response = endpoints.handle(HttpRequest("GET", "/common/discovery/keys", {}, {}, b""))
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

import jwt

from azsql_emulator.identity.clients import ClientRegistration, ClientRegistry
from azsql_emulator.identity.jwt_tokens import CLOCK_SKEW_SECONDS, SigningKey, audience_for_resource
from azsql_emulator.identity.metrics import IdentityMetrics

__all__ = ["JWT_BEARER", "HttpRequest", "HttpResponse", "IdentityEndpoints", "OAuthError"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
_ASSERTION_ALGORITHMS = ("RS256", "PS256")  # MSAL signs with PS256 (x5t#S256) or RS256 (x5t)
_MSI_API_VERSION = "2019-08-01"

# mint(client, audience, appidacr, grant) -> (access token, expires_on epoch seconds)
Minter = Callable[[ClientRegistration, str, str, str], tuple[str, int]]


@dataclass(frozen=True)
class HttpRequest:
    """One decoded HTTP request.

    :param method: ``GET`` or ``POST``.
    :param path: the URL path, without the query.
    :param query: query parameters (first value of each).
    :param headers: request headers, keys lower-cased.
    :param body: the raw body.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class HttpResponse:
    """What to send back.

    :param status: HTTP status code.
    :param payload: JSON body.
    """

    status: int
    payload: Mapping[str, Any] = field(repr=False)

    def body(self) -> bytes:
        """Return the payload as compact UTF-8 JSON."""
        return json.dumps(self.payload, separators=(",", ":")).encode("utf-8")


class OAuthError(Exception):
    """An Entra token-endpoint error (``AADSTS`` code) turned into a 400/401 response.

    :param status: HTTP status (400 or 401).
    :param error: OAuth2 error, e.g. ``invalid_client``.
    :param code: the AADSTS number, e.g. 7000215.
    :param description: text after ``AADSTSnnnn:``; never holds a credential.
    """

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self) -> HttpResponse:
        """Build the JSON error body Entra sends."""
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        timestamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return HttpResponse(
            self.status,
            {
                "error": self.error,
                "error_description": (
                    f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
                    f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
                ),
                "error_codes": [self.code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
            },
        )


class IdentityEndpoints:
    """Routes requests to discovery, JWKS, token and managed-identity handlers.

    :param tenant_id: the emulator's tenant.
    :param registry: the registered clients.
    :param mint: issues an access token for a client (see ``Minter``).
    :param jwks: returns the current JWKS document.
    :param federated_issuers: external issuers the emulator can verify, issuer URL to key.
    :param identity_header: the secret App Service puts in ``IDENTITY_HEADER``.
    :param metrics: counters to update.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        registry: ClientRegistry,
        mint: Minter,
        jwks: Callable[[], dict[str, Any]],
        federated_issuers: Mapping[str, SigningKey],
        identity_header: str,
        metrics: IdentityMetrics,
    ) -> None:
        self.tenant_id = tenant_id
        self.authority_host = ""  # set once the server is listening
        self._registry = registry
        self._mint = mint
        self._jwks = jwks
        self._federated = dict(federated_issuers)
        self._identity_header = identity_header
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"IdentityEndpoints(tenant_id={self.tenant_id!r}, at={self.authority_host!r})"

    def token_endpoint(self, *, v1: bool = False) -> str:
        """Return this server's token endpoint URL (the ``aud`` certificate assertions must name).

        :param v1: the v1 (``resource=``) endpoint instead of v2.
        """
        return f"{self.authority_host}/{self.tenant_id}/oauth2/{'' if v1 else 'v2.0/'}token"

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request.

        :param request: the decoded request.
        """
        parts = [unquote(p) for p in request.path.split("/") if p]
        try:
            return self._route(request, parts)
        except OAuthError as exc:
            self._metrics.endpoint_failed(f"AADSTS{exc.code}")
            return exc.response()

    def _route(self, request: HttpRequest, parts: list[str]) -> HttpResponse:
        if parts == ["msi", "token"]:
            self._metrics.request("msi")
            return self._managed_identity(request)
        if parts == ["federation", "keys"]:
            self._metrics.request("jwks")
            return HttpResponse(
                200, {"keys": [key.public_jwk() for key in self._federated.values()]}
            )
        if len(parts) >= 3 and parts[1:] in (["discovery", "keys"], ["discovery", "v2.0", "keys"]):
            self._metrics.request("jwks")
            if parts[0].lower() != "common":
                self._check_tenant(parts[0])
            return HttpResponse(200, self._jwks())
        if len(parts) >= 3 and parts[-2:] == [".well-known", "openid-configuration"]:
            self._metrics.request("discovery")
            self._check_tenant(parts[0])
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                return HttpResponse(200, self._discovery(v2=True))
            if len(parts) == 3:
                return HttpResponse(200, self._discovery(v2=False))
        if len(parts) >= 3 and parts[1] == "oauth2" and parts[-1] == "token":
            self._metrics.request("token")
            self._check_tenant(parts[0])
            if request.method != "POST":
                raise OAuthError(
                    400, "invalid_request", 900561, "The endpoint only accepts POST requests."
                )
            if parts[2:] == ["v2.0", "token"]:
                return self._client_credentials(request, v1=False)
            if parts[2:] == ["token"]:
                return self._client_credentials(request, v1=True)
        self._metrics.request("other")
        self._metrics.endpoint_failed("http_404")
        return HttpResponse(
            404, {"error": "not_found", "error_description": f"No such endpoint: {request.path}"}
        )

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() != self.tenant_id.lower():
            raise OAuthError(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant[:64]}' not found. This emulator serves tenant {self.tenant_id}.",
            )

    def _discovery(self, *, v2: bool) -> dict[str, Any]:
        base = f"{self.authority_host}/{self.tenant_id}"
        version = "/v2.0" if v2 else ""
        return {
            "issuer": f"{base}{version}" if v2 else f"{base}/",
            "authorization_endpoint": f"{base}/oauth2{version}/authorize",
            "token_endpoint": f"{base}/oauth2{version}/token",
            "device_authorization_endpoint": f"{base}/oauth2{version}/devicecode",
            "jwks_uri": f"{self.authority_host}/{self.tenant_id}/discovery{version}/keys",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_types_supported": [
                "code",
                "id_token",
                "code id_token",
                "token id_token",
                "token",
            ],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "grant_types_supported": ["client_credentials"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "azsql-emulator",
        }

    # -- token endpoint -------------------------------------------------------------

    def _client_credentials(self, request: HttpRequest, *, v1: bool) -> HttpResponse:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        basic_id, basic_secret = _basic_auth(request.headers.get("authorization", ""))
        grant = form.get("grant_type", "")
        if grant != "client_credentials":
            raise OAuthError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant[:40]}'; "
                "this emulator supports client_credentials.",
            )
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise OAuthError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        audience = self._requested_audience(form, v1=v1)
        client = self._registry.get(client_id)
        if client is None or client.kind != "app":
            raise OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id[:64]}' was not found "
                f"in the directory '{self.tenant_id}'.",
            )
        secret = form.get("client_secret") or basic_secret
        assertion = form.get("client_assertion")
        if secret:
            if not client.check_secret(secret):
                raise OAuthError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added "
                    f"to app '{client.client_id}'.",
                )
            appidacr, grant_kind = "1", "client_secret"
        elif assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise OAuthError(
                    400, "invalid_request", 700010, f"client_assertion_type must be '{JWT_BEARER}'."
                )
            grant_kind = self._check_assertion(client, assertion)
            appidacr = "2"
        else:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        token, expires_on = self._mint(client, audience, appidacr, grant_kind)
        expires_in = max(0, expires_on - int(time.time()))
        payload: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        }
        if v1:
            payload.update(
                expires_on=str(expires_on),
                not_before=str(int(time.time())),
                resource=form["resource"],
            )
        return HttpResponse(200, payload)

    def _requested_audience(self, form: Mapping[str, str], *, v1: bool) -> str:
        if v1:
            resource = form.get("resource", "").strip()
            if not resource:
                raise OAuthError(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'resource'.",
                )
            return audience_for_resource(resource)
        scopes = [s for s in form.get("scope", "").split() if s.lower() not in _RESERVED_SCOPES]
        if not scopes:
            raise OAuthError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise OAuthError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)[:120]} is not valid. "
                "Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        return audience_for_resource(scopes[0])

    def _check_assertion(self, client: ClientRegistration, assertion: str) -> str:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError(
                401, "invalid_client", 50027, "JWT token is invalid or malformed."
            ) from None
        issuer = str(claims.get("iss", ""))
        if issuer.lower() == client.client_id.lower():
            self._check_certificate_assertion(client, header, assertion)
            return "certificate"
        self._check_federated_assertion(client, header, claims, assertion)
        return "federated"

    def _check_certificate_assertion(
        self, client: ClientRegistration, header: Mapping[str, Any], assertion: str
    ) -> None:
        cert = client.certificate_for(x5t=header.get("x5t"), x5t_s256=header.get("x5t#S256"))
        if cert is None or header.get("alg") not in _ASSERTION_ALGORITHMS:
            thumb = str(header.get("x5t#S256") or header.get("x5t") or "none")[:64]
            raise OAuthError(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{thumb}'] "
                f"Register the certificate on app '{client.client_id}'.",
            )
        claims = self._verify(assertion, cert.public_key(), str(header["alg"]), "Client assertion")
        if str(claims.get("sub", "")).lower() != client.client_id.lower():
            raise OAuthError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter "
                "(iss and sub must both be the client id).",
            )
        audience = claims.get("aud")
        expected = {self.token_endpoint().lower(), self.token_endpoint(v1=True).lower()}
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a.lower() in expected for a in audiences):
            raise OAuthError(
                401,
                "invalid_client",
                50013,
                "Assertion audience claim does not match the required value; "
                f"expected '{self.token_endpoint()}'.",
            )

    def _check_federated_assertion(
        self,
        client: ClientRegistration,
        header: Mapping[str, Any],
        claims: Mapping[str, Any],
        assertion: str,
    ) -> None:
        issuer = str(claims.get("iss", ""))
        records = [f for f in client.federated if f.issuer == issuer]
        key = self._federated.get(issuer)
        if not records or key is None:
            raise OAuthError(
                400,
                "invalid_request",
                700211,
                "No matching federated identity record found for presented assertion "
                f"issuer '{issuer[:120]}'.",
            )
        if header.get("alg") != "RS256" or header.get("kid") != key.kid:
            raise OAuthError(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The key was not found.]",
            )
        verified = self._verify(assertion, key.public_key, "RS256", "Federated assertion")
        subject = str(verified.get("sub", ""))
        audience = verified.get("aud")
        audiences = set(audience) if isinstance(audience, list) else {audience}
        if not any(f.subject == subject for f in records):
            raise OAuthError(
                400,
                "invalid_request",
                70021,
                "No matching federated identity record found for presented assertion. "
                "Assertion Issuer: "
                f"'{issuer[:120]}'. Assertion Subject: '{subject[:120]}'.",
            )
        if not any(f.subject == subject and audiences & set(f.audiences) for f in records):
            raise OAuthError(
                400,
                "invalid_request",
                700212,
                "No matching federated identity record found for presented assertion audience.",
            )

    def _verify(self, assertion: str, public_key: Any, alg: str, what: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=[alg],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise OAuthError(
                401, "invalid_client", 700027, f"{what} failed signature validation."
            ) from None
        except jwt.PyJWTError:
            raise OAuthError(
                401, "invalid_client", 50027, "JWT token is invalid or malformed."
            ) from None
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
            raise OAuthError(
                401, "invalid_client", 50027, f"{what} lacks a numeric exp or nbf claim."
            )
        if now > exp + CLOCK_SKEW_SECONDS or now + CLOCK_SKEW_SECONDS < nbf:
            raise OAuthError(
                401, "invalid_client", 700024, f"{what} is not within its valid time range."
            )
        return claims

    # -- managed identity -----------------------------------------------------------

    def _managed_identity(self, request: HttpRequest) -> HttpResponse:
        presented = request.headers.get("x-identity-header", "")
        if not hmac.compare_digest(presented.encode(), self._identity_header.encode()):
            return self._msi_error(
                401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER."
            )
        if request.method != "GET":
            return self._msi_error(405, "Use GET for the managed identity endpoint.")
        query = request.query
        if query.get("api-version") != _MSI_API_VERSION:
            return self._msi_error(400, f"api-version must be {_MSI_API_VERSION}.")
        resource = query.get("resource", "").strip()
        if not resource:
            return self._msi_error(400, "The resource parameter is required.")
        if query.get("mi_res_id"):
            return self._msi_error(
                400, "mi_res_id is not supported by the emulator; use client_id or object_id."
            )
        client = self._registry.find_managed_identity(
            client_id=query.get("client_id") or None,
            object_id=query.get("object_id") or query.get("principal_id") or None,
        )
        if client is None:
            return self._msi_error(
                400, "No managed identity matches the requested client_id/object_id."
            )
        token, expires_on = self._mint(
            client, audience_for_resource(resource), "2", "managed_identity"
        )
        return HttpResponse(
            200,
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client.client_id,
            },
        )

    def _msi_error(self, status: int, message: str) -> HttpResponse:
        self._metrics.endpoint_failed(f"msi_{status}")
        return HttpResponse(
            status, {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
        )


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    # client_secret_basic: both parts are form-urlencoded before base64 (RFC 6749 2.3.1).
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    user, _, password = decoded.partition(":")
    return unquote_plus(user) or None, unquote_plus(password) or None
