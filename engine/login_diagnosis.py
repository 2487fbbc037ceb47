"""Why a login failed and what to do: read from the server's errors and the token we sent.

Error 18456 carries no cause in its number; with a token, the cause is read from the
token itself (its audience and expiry), not from the server's words.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.credentials import AccessToken, AzureCloud
from engine.errors import LOGIN_FAILED, Diagnostic, remedy

if TYPE_CHECKING:
    from engine.connection import ConnectionOptions

__all__ = ["AZURE_SQL_APP_ID", "SQL_AUDIENCES", "login_diagnosis"]

# Azure SQL Database's first-party application id: also a valid token audience.
AZURE_SQL_APP_ID = "022907d3-0f1b-48f7-badc-1ba6abab6d66"
# Token audiences Azure SQL accepts (trailing slashes dropped): each cloud's SQL resource.
SQL_AUDIENCES = frozenset({c.scope.removesuffix(".default").rstrip("/") for c in AzureCloud}
                          | {AZURE_SQL_APP_ID})


def login_diagnosis(diagnostics: Sequence[Diagnostic], token: AccessToken | None,
                    options: ConnectionOptions) -> tuple[str, str]:
    """Name the cause of a terminal connect failure and the fix.

    18456 carries no cause in its number; with a token we read the cause from the token
    we sent (its audience and expiry, not the server's words).
    """
    if not any(d.native_error == LOGIN_FAILED for d in diagnostics):
        advice = remedy(diagnostics)
        return "the connection was refused", advice
    if token is None:
        return ("SQL authentication failed", "check the user name and the password in "
                f"${options.credential.sql_password_env}, and that the login has a user in "
                f"database {options.database!r} (SQL authentication is for local SQL Server "
                "and the emulator only)")
    claims = token.claims()
    scope = options.credential.effective_scope
    audience = str(claims.get("aud", ""))
    if audience and audience.rstrip("/") not in SQL_AUDIENCES:
        sql_scope = AzureCloud(options.credential.cloud).scope
        configured = "" if scope == sql_scope else f" (the configured scope is {scope})"
        return (f"wrong token audience: the token is for {audience!r}, which is not an Azure "
                f"SQL audience{configured}",
                f"request the token for scope {sql_scope} (check the credential's cloud and "
                "scope settings, or how the pre-obtained token was requested: "
                "--resource https://database.windows.net/)")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp <= time.time():
        return ("the access token has expired",
                "obtain a new token (the access-token kind re-reads its source) or use a "
                "credential kind that renews tokens")
    who = ", ".join(f"{k} {claims[k]}" for k in ("appid", "oid", "upn", "tid") if k in claims)
    name = claims.get("upn") or claims.get("name") or "<identity display name>"
    oid = claims.get("oid")
    with_oid = f" WITH OBJECT_ID = '{oid}'" if oid and not claims.get("upn") else ""
    return (f"the server does not accept this identity ({who or 'identity unknown'}): it has "
            f"no database user in {options.database!r}, or the user is disabled",
            f"create a database user for this identity: connect to {options.database!r} as "
            f"the server's Microsoft Entra admin and run CREATE USER [{name}] FROM EXTERNAL "
            f"PROVIDER{with_oid}; ALTER ROLE db_datawriter ADD MEMBER [{name}]; "
            f"ALTER ROLE db_datareader ADD MEMBER [{name}]; (and db_ddladmin to create "
            "tables or use replace/upsert)")
