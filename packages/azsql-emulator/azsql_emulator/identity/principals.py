"""Who may log in to which database, with which roles: token identities and SQL logins.

Azure SQL maps an Entra token to a database user created ``FROM EXTERNAL
PROVIDER``; the emulator does the same from a JSON principals file (or built-in
defaults). The identity key is the token's ``oid`` or ``appid`` claim (``oid``
is tried first). Roles are the fixed database roles the emulator enforces.

Principals file format::

    {
      "include_defaults": false,
      "principals": [
        {"id": "3c0ffee0-0002-4000-8000-00000000a002",   // oid or appid
         "name": "azsql-loader-sp",                       // database user name
         "kind": "app",                                   // "app" or "user"
         "databases": {"appdb": ["db_owner"], "master": ["db_owner"]}},
        {"id": "3c0ffee0-0008-4000-8000-00000000b008",
         "name": "sqladmin@azsqlemulator.onmicrosoft.com",
         "kind": "user", "upn": "sqladmin@azsqlemulator.onmicrosoft.com",
         "databases": {"appdb": ["db_datareader"]}, "disabled": false}
      ],
      "sql_logins": [
        {"name": "azsql_admin", "password": "...", "databases": {"appdb": ["db_owner"]}}
      ]
    }

(JSON has no comments; they are here to explain.) ``include_defaults: true``
adds the built-in principals of :meth:`PrincipalDirectory.defaults` before the
file's entries. Database names compare case-insensitively.

Example::

    directory = PrincipalDirectory.from_file(Path("principals.json"), tenant_id=tenant)
    principal = directory.resolve(service.validate(token), "appdb")
    assert "db_datareader" in principal.roles
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azsql_emulator.errors import LoginError
from azsql_emulator.identity.clients import DefaultCredentials
from azsql_emulator.identity.jwt_tokens import TOKEN_PRINCIPAL, TokenIdentity
from azsql_emulator.sql.results import VIEW_DATABASE_STATE

__all__ = [
    "ROLES",
    "Principal",
    "PrincipalDirectory",
    "PrincipalEntry",
    "PrincipalsFileError",
    "SqlLoginEntry",
]

# the fixed database roles the emulator enforces, and one grantable permission
ROLES = frozenset({"db_owner", "db_datareader", "db_datawriter", "db_ddladmin",
                   VIEW_DATABASE_STATE})
_KINDS = ("app", "user")
# Compared against when a login name is unknown, so both paths cost the same.
_DUMMY_DIGEST = hashlib.sha256(b"azsql-emulator: no such login").digest()


class PrincipalsFileError(ValueError):
    """The principals file cannot be used; the message names the file and the entry at fault."""


@dataclass(frozen=True)
class Principal:
    """A logged-in database principal.

    :param name: the database user name (``USER_NAME()``).
    :param login_name: what ``SUSER_SNAME()`` shows: ``<appid>@<tenant>`` for apps,
        the UPN for users, the login name for SQL logins.
    :param kind: ``app``, ``user`` or ``sql``.
    :param roles: fixed database roles held in this database.
    """

    name: str
    login_name: str
    kind: str
    roles: frozenset[str]

    @property
    def can_read(self) -> bool:
        """Whether the principal may SELECT user tables."""
        return bool(self.roles & {"db_owner", "db_datareader"})

    @property
    def can_write(self) -> bool:
        """Whether the principal may INSERT, UPDATE, DELETE, MERGE."""
        return bool(self.roles & {"db_owner", "db_datawriter"})

    @property
    def can_ddl(self) -> bool:
        """Whether the principal may CREATE, ALTER, DROP and TRUNCATE tables."""
        return bool(self.roles & {"db_owner", "db_ddladmin"})


@dataclass(frozen=True)
class PrincipalEntry:
    """A token identity's database users.

    :param identity: the ``oid`` or ``appid`` the entry matches (lower case).
    :param name: the database user name.
    :param kind: ``app`` or ``user``.
    :param databases: database name (lower case) to roles.
    :param upn: the user's UPN (users only).
    :param disabled: refuse logins (reason ``disabled``).
    """

    identity: str
    name: str
    kind: str
    databases: Mapping[str, frozenset[str]]
    upn: str | None = None
    disabled: bool = False


@dataclass(frozen=True)
class SqlLoginEntry:
    """A SQL-authentication login (the password is kept only as a digest).

    :param name: the login name.
    :param password_digest: SHA-256 of the password.
    :param databases: database name (lower case) to roles.
    :param disabled: refuse logins (reason ``disabled``).
    """

    name: str
    password_digest: bytes = field(repr=False)
    databases: Mapping[str, frozenset[str]]
    disabled: bool = False


class PrincipalDirectory:
    """Maps token identities and SQL logins to database principals.

    :param tenant_id: the tenant, used in app login names (``<appid>@<tenant>``).
    :param principals: token identity entries.
    :param sql_logins: SQL-auth logins.
    """

    def __init__(
        self,
        tenant_id: str,
        principals: Iterable[PrincipalEntry] = (),
        sql_logins: Iterable[SqlLoginEntry] = (),
    ) -> None:
        self.tenant_id = tenant_id
        self._lock = threading.Lock()
        self._principals: dict[str, PrincipalEntry] = {}
        self._logins: dict[str, SqlLoginEntry] = {}
        for entry in principals:
            self.add(entry)
        for login in sql_logins:
            self.add_sql_login(login)

    def add(self, entry: PrincipalEntry) -> None:
        """Add or replace a token identity entry.

        :param entry: the entry; its ``identity`` is the key.
        """
        with self._lock:
            self._principals = {**self._principals, entry.identity.lower(): entry}

    def add_sql_login(self, login: SqlLoginEntry) -> None:
        """Add or replace a SQL login.

        :param login: the login.
        """
        with self._lock:
            self._logins = {**self._logins, login.name.lower(): login}

    @property
    def entries(self) -> tuple[PrincipalEntry, ...]:
        """The token identity entries."""
        return tuple(self._principals.values())

    @property
    def sql_logins(self) -> tuple[SqlLoginEntry, ...]:
        """The SQL logins."""
        return tuple(self._logins.values())

    def resolve(self, identity: TokenIdentity, database: str) -> Principal:
        """Find the database user a validated token maps to in ``database``.

        :param identity: from :meth:`TokenValidator.validate`.
        :param database: the database the client asked for.
        :raises LoginError: ``unknown_principal`` (no user there) or ``disabled``.
        """
        principals = self._principals
        entry = next(
            (principals[k.lower()] for k in identity.keys if k.lower() in principals), None
        )
        roles = entry.databases.get(database.lower()) if entry is not None else None
        if entry is None or roles is None:
            who = ", ".join(
                f"{n} {v}" for n, v in (("oid", identity.oid), ("appid", identity.appid)) if v
            )
            raise LoginError(
                f"Login failed for user '{TOKEN_PRINCIPAL}'. The identity ({who}) has no user in "
                f"database '{database}'; create one FROM EXTERNAL PROVIDER "
                "or add it to the principals file.",
                reason="unknown_principal",
            )
        if entry.disabled:
            raise LoginError(
                f"Login failed for user '{TOKEN_PRINCIPAL}'. The user '{entry.name}' is disabled.",
                reason="disabled",
            )
        if entry.kind == "app":
            login_name = f"{identity.appid or identity.oid}@{identity.tid}"
        else:
            login_name = identity.upn or entry.upn or entry.name
        return Principal(name=entry.name, login_name=login_name, kind=entry.kind, roles=roles)

    def check_sql_login(self, user: str, password: str, database: str) -> Principal:
        """Authenticate a SQL-auth login and return its principal in ``database``.

        :param user: login name.
        :param password: the password presented.
        :param database: the database the client asked for.
        :raises LoginError: ``password`` (unknown login or wrong password, one message for both
            as SQL Server does), ``disabled``, or ``unknown_principal`` (no user in the database).
        """
        login = self._logins.get(user.lower())
        digest = hashlib.sha256(password.encode("utf-8")).digest()
        matched = hmac.compare_digest(digest, login.password_digest if login else _DUMMY_DIGEST)
        safe_user = user.replace("'", "''")[:128]
        if login is None or not matched:
            raise LoginError(f"Login failed for user '{safe_user}'.", reason="password")
        if login.disabled:
            raise LoginError(
                f"Login failed for user '{safe_user}'. The login is disabled.", reason="disabled"
            )
        roles = login.databases.get(database.lower())
        if roles is None:
            raise LoginError(
                f"Login failed for user '{safe_user}'. "
                f"The login has no user in database '{database}'.",
                reason="unknown_principal",
            )
        return Principal(name=login.name, login_name=login.name, kind="sql", roles=roles)

    @classmethod
    def defaults(cls, creds: DefaultCredentials, database: str = "appdb") -> PrincipalDirectory:
        """Build the built-in directory for the default test identities.

        :param creds: the default credentials (ids and the SQL password).
        :param database: the user database name.
        """
        owner = {database.lower(): frozenset({"db_owner"}), "master": frozenset({"db_owner"})}
        entries = [
            PrincipalEntry(app.client_id.lower(), app.display_name, "app", owner)
            for app in (
                creds.managed_identity,
                creds.service_principal,
                creds.certificate_app,
                creds.workload_app,
            )
        ]
        entries.append(
            PrincipalEntry(
                creds.reader_app.client_id.lower(),
                creds.reader_app.display_name,
                "app",
                {database.lower(): frozenset({"db_datareader"})},
            )
        )
        entries.append(
            PrincipalEntry(
                creds.writer_app.client_id.lower(),
                creds.writer_app.display_name,
                "app",
                {database.lower(): frozenset({"db_datareader", "db_datawriter"})},
            )
        )
        entries.append(
            PrincipalEntry(
                creds.loader_app.client_id.lower(),
                creds.loader_app.display_name,
                "app",
                {database.lower(): frozenset({"db_datareader", "db_datawriter", "db_ddladmin"})},
            )
        )
        entries.append(
            PrincipalEntry(
                creds.user_object_id.lower(), creds.user_upn, "user", owner, upn=creds.user_upn
            )
        )
        login = SqlLoginEntry(
            creds.sql_login, hashlib.sha256(creds.sql_password.encode("utf-8")).digest(), owner
        )
        return cls(creds.tenant_id, entries, [login])

    @classmethod
    def from_file(
        cls, path: Path, *, tenant_id: str, defaults: PrincipalDirectory | None = None
    ) -> PrincipalDirectory:
        """Load a principals file.

        :param path: the JSON file.
        :param tenant_id: the tenant (for app login names).
        :param defaults: entries added first when the file says ``"include_defaults": true``.
        :raises PrincipalsFileError: unreadable JSON or an invalid entry; the message names
            the file, the entry path (e.g. ``principals[1].databases.appdb``) and the fix.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PrincipalsFileError(
                f"{path}: cannot read the principals file ({exc.strerror})"
            ) from None
        except json.JSONDecodeError as exc:
            raise PrincipalsFileError(
                f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"
            ) from None
        return cls.parse(data, source=str(path), tenant_id=tenant_id, defaults=defaults)

    @classmethod
    def parse(
        cls, data: Any, *, source: str, tenant_id: str, defaults: PrincipalDirectory | None = None
    ) -> PrincipalDirectory:
        """Build a directory from the decoded JSON of a principals file.

        :param data: the decoded document.
        :param source: where it came from, for error messages.
        :param tenant_id: the tenant (for app login names).
        :param defaults: entries added first when ``include_defaults`` is true.
        :raises PrincipalsFileError: the document is not in the documented format.
        """
        _expect(
            isinstance(data, dict),
            source,
            "<top level>",
            "expected a JSON object with 'principals' and/or 'sql_logins'",
        )
        unknown = set(data) - {"principals", "sql_logins", "include_defaults"}
        _expect(
            not unknown,
            source,
            "<top level>",
            f"unknown keys {sorted(unknown)}; allowed: include_defaults, principals, sql_logins",
        )
        directory = cls(tenant_id)
        if data.get("include_defaults"):
            _expect(
                defaults is not None,
                source,
                "include_defaults",
                "no built-in defaults are available here",
            )
            for entry in defaults.entries:  # type: ignore[union-attr]
                directory.add(entry)
            for login in defaults.sql_logins:  # type: ignore[union-attr]
                directory.add_sql_login(login)
        principals = data.get("principals", [])
        _expect(isinstance(principals, list), source, "principals", "expected a list of objects")
        for index, raw in enumerate(principals):
            directory.add(_parse_principal(raw, source, f"principals[{index}]"))
        logins = data.get("sql_logins", [])
        _expect(isinstance(logins, list), source, "sql_logins", "expected a list of objects")
        for index, raw in enumerate(logins):
            directory.add_sql_login(_parse_login(raw, source, f"sql_logins[{index}]"))
        return directory

    def __repr__(self) -> str:
        counts = f"{len(self._principals)} identities, {len(self._logins)} SQL logins"
        return f"PrincipalDirectory({counts})"


def _parse_principal(raw: Any, source: str, where: str) -> PrincipalEntry:
    _expect(
        isinstance(raw, dict), source, where, "expected an object with id, name, kind, databases"
    )
    _no_extra(raw, {"id", "name", "kind", "databases", "upn", "disabled"}, source, where)
    identity = _required_str(raw, "id", source, where)
    name = _required_str(raw, "name", source, where)
    kind = raw.get("kind", "app")
    _expect(kind in _KINDS, source, f"{where}.kind", f"expected 'app' or 'user', got {kind!r}")
    upn = raw.get("upn")
    _expect(upn is None or isinstance(upn, str), source, f"{where}.upn", "expected a string")
    disabled = raw.get("disabled", False)
    _expect(isinstance(disabled, bool), source, f"{where}.disabled", "expected true or false")
    databases = _parse_databases(raw.get("databases"), source, f"{where}.databases")
    return PrincipalEntry(identity.lower(), name, kind, databases, upn=upn, disabled=disabled)


def _parse_login(raw: Any, source: str, where: str) -> SqlLoginEntry:
    _expect(
        isinstance(raw, dict), source, where, "expected an object with name, password, databases"
    )
    _no_extra(raw, {"name", "password", "databases", "disabled"}, source, where)
    name = _required_str(raw, "name", source, where)
    password = _required_str(raw, "password", source, where)
    disabled = raw.get("disabled", False)
    _expect(isinstance(disabled, bool), source, f"{where}.disabled", "expected true or false")
    databases = _parse_databases(raw.get("databases"), source, f"{where}.databases")
    digest = hashlib.sha256(password.encode("utf-8")).digest()
    return SqlLoginEntry(name, digest, databases, disabled=disabled)


def _parse_databases(raw: Any, source: str, where: str) -> dict[str, frozenset[str]]:
    _expect(
        isinstance(raw, dict) and bool(raw),
        source,
        where,
        "expected an object mapping database names to role lists, "
        'e.g. {"appdb": ["db_datareader"]}',
    )
    databases: dict[str, frozenset[str]] = {}
    for database, roles in raw.items():
        _expect(
            isinstance(roles, list) and all(isinstance(r, str) for r in roles),
            source,
            f"{where}.{database}",
            "expected a list of role names",
        )
        bad = [r for r in roles if r not in ROLES]
        _expect(
            not bad,
            source,
            f"{where}.{database}",
            f"unknown role {bad[0] if bad else ''!r}; expected one of {', '.join(sorted(ROLES))}",
        )
        databases[database.lower()] = frozenset(roles)
    return databases


def _required_str(raw: Mapping[str, Any], key: str, source: str, where: str) -> str:
    value = raw.get(key)
    _expect(
        isinstance(value, str) and bool(value.strip()),
        source,
        f"{where}.{key}",
        "required, a non-empty string",
    )
    return str(value)


def _no_extra(raw: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    extra = set(raw) - allowed
    _expect(
        not extra,
        source,
        where,
        f"unknown keys {sorted(extra)}; allowed: {', '.join(sorted(allowed))}",
    )


def _expect(condition: bool, source: str, where: str, problem: str) -> None:
    if not condition:
        raise PrincipalsFileError(f"{source}: {where}: {problem}")
