"""Secrets stay off the command line and out of what the CLI prints.

A secret-looking option or value is refused (exit 2) before anything else runs, without
echoing it; :func:`scrub_text` hides the values of the secret-holding environment
variables in everything the CLI prints.

>>> refuse_secrets(["load", "x.parquet", "--password", "hunter2"]).splitlines()[-1]
'Put it in $AZSQL_BULK_SQL_PASSWORD (with --auth sql) instead.'
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence

from engine.credentials import (
    ENV_ACCESS_TOKEN,
    ENV_CERTIFICATE_PASSWORD,
    ENV_CLIENT_SECRET,
    ENV_SQL_PASSWORD,
)

__all__ = ["SECRET_OPTIONS", "ScrubFilter", "refuse_secrets", "scrub_text"]

_SQL = f"${ENV_SQL_PASSWORD} (with --auth sql)"
_TOKEN = f"${ENV_ACCESS_TOKEN}, or a file named by --access-token-file (with --auth access-token)"
_CLIENT = f"${ENV_CLIENT_SECRET} (with --auth service-principal)"
#: secret-looking option names -> where that secret belongs instead
SECRET_OPTIONS: Mapping[str, str] = {
    "password": _SQL, "pwd": _SQL, "sql-password": _SQL,
    "client-secret": _CLIENT, "secret": _CLIENT,
    "access-token": _TOKEN, "token": _TOKEN,
    "certificate-password": f"${ENV_CERTIFICATE_PASSWORD}",
}
#: variables whose values are secrets (the last two: the managed identity endpoint's)
SECRET_ENV = (ENV_SQL_PASSWORD, ENV_ACCESS_TOKEN, ENV_CLIENT_SECRET, ENV_CERTIFICATE_PASSWORD,
              "IDENTITY_HEADER", "MSI_SECRET")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")
_PASSWORD_KEYWORD = re.compile(r"(?i)(?:^|[;\s])(pwd|password|client_secret|accesstoken)\s*=")
_WHY = ("secrets are never taken from the command line (arguments show up in shell "
        "history, `ps` output and CI logs)")


def refuse_secrets(argv: Sequence[str]) -> str | None:
    """Why ``argv`` must be refused (a secret-looking option or value), else None.

    The message names the option or the argument's position and where the secret belongs,
    and never repeats the value.

    :param argv: the arguments after the program name.

    >>> refuse_secrets(["load", "--server", "eyJhbGciOiJSUzI1NiJ9.e30.sig"]).splitlines()[1]
    'argument 3 (after --server) looks like an access token (a JWT, eyJ...).'
    >>> refuse_secrets(["load", "a.parquet", "--table", "dbo.t"]) is None
    True
    """
    for position, arg in enumerate(argv, start=1):
        if arg == "--":
            continue
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].lower()
            if name in SECRET_OPTIONS:
                return (f"azsql-bulk: refusing --{name}: {_WHY}.\n"
                        f"Put it in {SECRET_OPTIONS[name]} instead.")
        after = argv[position - 2] if position > 1 and argv[position - 2].startswith("-") \
            else None
        where = f"argument {position}" + (f" (after {after.split('=', 1)[0]})" if after else "")
        if _JWT.search(arg):
            return (f"azsql-bulk: refusing the command line: {_WHY}.\n"
                    f"{where} looks like an access token (a JWT, eyJ...).\n"
                    f"Put the token in ${ENV_ACCESS_TOKEN} (or a file, --access-token-file) "
                    "and use --auth access-token.")
        match = _PASSWORD_KEYWORD.search(arg)
        if match:
            keyword = match.group(1)
            home = {"client_secret": f"${ENV_CLIENT_SECRET}",
                    "accesstoken": f"${ENV_ACCESS_TOKEN}"}.get(keyword.lower(),
                                                              f"${ENV_SQL_PASSWORD}")
            return (f"azsql-bulk: refusing the command line: {_WHY}.\n"
                    f"{where} holds a {keyword}= setting.\n"
                    f"Put the secret in {home} instead, and give the server and database "
                    "with --server and --database.")
    return None


def scrub_text(text: str) -> str:
    """``text`` with the values of secret-holding environment variables replaced by ***."""
    for name in SECRET_ENV:
        secret = os.environ.get(name, "")
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class ScrubFilter(logging.Filter):
    """Scrubs every log record's message with :func:`scrub_text`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub_text(record.getMessage())
        record.args = None
        return True
