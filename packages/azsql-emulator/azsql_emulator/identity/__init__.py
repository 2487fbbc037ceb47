"""Entra-style identity provider for the emulator: PKI, RS256 tokens, principals, HTTPS endpoints.

Example::

    from azsql_emulator.identity import IdentityService

    with IdentityService() as idp:
        principal = idp.authenticate(idp.issue_token(), "appdb")
"""

from azsql_emulator.identity.clients import (
    DEFAULT_TENANT_ID,
    EMULATOR_FEDERATION_ISSUER,
    TOKEN_EXCHANGE_AUDIENCE,
    AppCredentials,
    ClientRegistration,
    ClientRegistry,
    DefaultCredentials,
    FederatedCredential,
)
from azsql_emulator.identity.jwt_tokens import SQL_AUDIENCE, SQL_AUDIENCES, TokenIdentity
from azsql_emulator.identity.principals import Principal, PrincipalDirectory, PrincipalsFileError
from azsql_emulator.identity.service import IdentityService

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
