"""Entra-style identity provider for the emulator: PKI, RS256 tokens, principals, HTTPS endpoints.

Example::

    from emulator.identity import IdentityService

    with IdentityService() as idp:
        principal = idp.authenticate(idp.issue_token(), "appdb")
"""

from emulator.identity.clients import (
    DEFAULT_TENANT_ID,
    EMULATOR_FEDERATION_ISSUER,
    TOKEN_EXCHANGE_AUDIENCE,
    AppCredentials,
    ClientRegistration,
    ClientRegistry,
    DefaultCredentials,
    FederatedCredential,
)
from emulator.identity.jwt_tokens import SQL_AUDIENCE, SQL_AUDIENCES, TokenIdentity
from emulator.identity.principals import Principal, PrincipalDirectory, PrincipalsFileError
from emulator.identity.service import IdentityService

__all__ = [
    "DEFAULT_TENANT_ID",
    "EMULATOR_FEDERATION_ISSUER",
    "SQL_AUDIENCE",
    "SQL_AUDIENCES",
    "TOKEN_EXCHANGE_AUDIENCE",
    "AppCredentials",
    "ClientRegistration",
    "ClientRegistry",
    "DefaultCredentials",
    "FederatedCredential",
    "IdentityService",
    "Principal",
    "PrincipalDirectory",
    "PrincipalsFileError",
    "TokenIdentity",
]
