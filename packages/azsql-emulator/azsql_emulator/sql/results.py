"""The values the SQL engine hands to the TDS layer: who runs a session, what a statement gave."""

from __future__ import annotations

from dataclasses import dataclass, field

from azsql_emulator.errors import SqlError
from azsql_emulator.sqltypes import ColumnInfo

# A permission a principal may hold besides its fixed roles (listed among them): the DMVs
# need it; db_owner has it implicitly.
VIEW_DATABASE_STATE = "VIEW DATABASE STATE"


@dataclass(frozen=True)
class SessionUser:
    """Who a session runs as.

    :param name: USER_NAME().
    :param login_name: SUSER_SNAME(), e.g. ``<appid>@<tenant>``, a UPN or a SQL login.
    :param roles: subset of db_owner, db_datareader, db_datawriter, db_ddladmin and
        :data:`VIEW_DATABASE_STATE`.
    :param spid: @@SPID.
    :param app_name: APP_NAME(): the application name the client sent at login.
    """

    name: str
    login_name: str
    roles: frozenset[str]
    spid: int
    app_name: str = ""


@dataclass
class StatementResult:
    """One statement's outcome: a result set, a row count, or an error.

    :param columns: result-set metadata; None for statements that return no rows.
    :param rows: Python values per row.
    :param rowcount: rows affected or returned; None when SQL Server sends no count.
    :param error: the statement's error, if it failed.
    :param messages: informational messages (PRINT).
    """

    columns: list[ColumnInfo] | None
    rows: list[tuple]
    rowcount: int | None
    error: SqlError | None = None
    messages: list[str] = field(default_factory=list)
