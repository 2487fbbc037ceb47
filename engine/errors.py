"""The engine's error hierarchy: one root, and one place that decides transient vs terminal.

Driver errors are read as ODBC diagnostics (SQLSTATE + native error number) and
classified by :func:`classify`, the only function that decides whether a failure is
worth retrying. It looks at numbers only, with one documented exception: SQL Server
reports every failed login as 18456, and the only way to tell "the token expired"
(retry with a new token) from "this identity is unknown" (do not retry) is the text
of the server's message. :data:`TOKEN_EXPIRED_PATTERN` is that single text check.

>>> classify(parse_diagnostics("ODBC error\\nstate: 42000\\nnative error code: 40613\\nmessage: x"))
<Disposition.TRANSIENT: 'transient'>
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class AzsqlBulkError(Exception):
    """Root of every error azsql-bulk raises on purpose.

    Messages say what failed, where, and what to do about it.
    """


class ConfigurationError(AzsqlBulkError):
    """The user's configuration or environment is wrong; retrying will not help."""


class SourceError(AzsqlBulkError):
    """A source file cannot be opened or read (corrupt, truncated, unparsable)."""


class DriverNotFoundError(ConfigurationError):
    """Microsoft ODBC Driver 18 (or a library it needs) could not be found or loaded."""


class CredentialError(AzsqlBulkError):
    """No access token could be obtained (azure-identity failed, or a token source is stale)."""


class Disposition(StrEnum):
    """What a caller should do about a database error."""

    TRANSIENT = "transient"          # roll back, wait, reconnect, retry
    TOKEN_EXPIRED = "token-expired"  # noqa: S105 (get a NEW token, then retry)
    TERMINAL = "terminal"            # stop: retrying cannot help


@dataclass(frozen=True)
class Diagnostic:
    """One ODBC diagnostic record.

    :param sqlstate: the five-character SQLSTATE, e.g. ``08S01``.
    :param native_error: SQL Server's error number (positive), or the driver's own
        (0 or -1) for client-side failures; ``None`` when the text carried none.
    :param message: the record's text, already scrubbed of secrets by the caller.
    :param component: the last ODBC component that handled the record, from the message's
        ``[...]`` prefix: ``SQL Server`` for errors the server raised, the driver's name
        for its own (network, timeout); empty when the text had no prefix.
    """

    sqlstate: str
    native_error: int | None
    message: str
    component: str = field(default="", compare=False)

    @property
    def is_server_error(self) -> bool:
        """True for an error SQL Server raised (a positive error number, not a warning).

        ODBC prefixes each message with the components that handled it; a record the
        server raised ends with ``[SQL Server]``. The driver's own records (a reset link:
        ``TCP Provider: Error code 0x2746``, SQLSTATE 08S01, native error 10054) carry an
        operating-system code as their "native error", which must not be read as a SQL
        Server error number. Records without the ODBC prefix are judged by number alone.
        """
        if (self.native_error or 0) <= 0 or self.sqlstate.startswith("01"):
            return False
        return not self.component or self.component == SERVER_COMPONENT


SERVER_COMPONENT = "SQL Server"
_LAST_COMPONENT = re.compile(r"^\s*(?:\[[^\]]*\])*\[([^\]]*)\]")

# Azure SQL error numbers that clear up by themselves (Microsoft's transient-fault list):
# 40613 database unavailable, 40501 service busy, 40197 service error (failover),
# 49918-49920 not enough resources / too many operations, 10928/10929 resource limits,
# 4060 cannot open database (also during failover), 37396 elastic pool/serverless resuming;
# and 1205, chosen as a deadlock victim ("Rerun the transaction": SqlClient's configurable
# retry counts it transient too): the server rolled the whole transaction back, so a batch
# replays as after a dropped link (seen when mapped shards created the journal at once).
TRANSIENT_ERROR_NUMBERS = frozenset({40613, 40501, 40197, 49918, 49919, 49920,
                                     10928, 10929, 4060, 37396, 1205})
# 08S01 communication link failure, 08001 cannot connect. HYT00 "login timeout expired"
# is added deliberately: turbodbc and pyodbc report only the first diagnostic record, and
# for an unreachable server that is HYT00, with the 08001 record hidden behind it.
TRANSIENT_SQLSTATES = frozenset({"08S01", "08001", "HYT00"})
LOGIN_FAILED = 18456
# The one decision made on message text (see the module docstring). Azure SQL says
# "Token is expired."; the emulator says "The access token has expired".
TOKEN_EXPIRED_PATTERN = re.compile(r"\btoken (?:is|has) expired\b", re.IGNORECASE)

_TURBODBC_RE = re.compile(
    r"state:\s*(?P<state>[0-9A-Z]{5})\s*\n\s*native error code:\s*(?P<native>-?\d+)\s*\n"
    r"\s*message:\s*(?P<msg>.*)", re.DOTALL)
_PYODBC_RECORD_RE = re.compile(
    r"\[(?P<state>[0-9A-Z]{5})\]\s*(?P<msg>.*?)\s*\((?P<native>-?\d+)\)"
    r"(?=\s*(?:\(SQL\w+\))?\s*(?:;\s*\[[0-9A-Z]{5}\]|['\")\s]*$))", re.DOTALL)
_BARE_STATE_RE = re.compile(r"^\s*\[?(?P<state>[0-9A-Z]{5})\]?\s")
_DRIVER_PREFIX_RE = re.compile(r"^(?:\[[^\]]*\])+\s*")


def _strip_prefix(message: str) -> str:
    return _DRIVER_PREFIX_RE.sub("", message.strip())


def _record(state: str, native: str, message: str) -> Diagnostic:
    last = _LAST_COMPONENT.match(message)
    return Diagnostic(state, int(native), _strip_prefix(message),
                      last.group(1) if last else "")


def parse_diagnostics(error: BaseException | str) -> list[Diagnostic]:
    """Read ODBC diagnostics from a turbodbc or pyodbc error (or its text).

    turbodbc words one record as ``ODBC error\\nstate: S\\nnative error code: N\\nmessage: M``;
    pyodbc's ``args`` are ``(sqlstate, "[S] [Microsoft]... M (N) (SQLDriverConnect); [S2]...")``.
    Text in neither shape gives one record with SQLSTATE ``HY000`` and no number.

    :param error: the exception from the ODBC client, or its text.

    >>> parse_diagnostics("('28000', '[28000] [Microsoft][SQL Server]Login failed. (18456)')")
    [Diagnostic(sqlstate='28000', native_error=18456, message='Login failed.')]
    """
    text = error if isinstance(error, str) else error_text(error)
    match = _TURBODBC_RE.search(text)
    if match:
        return [_record(match["state"], match["native"], match["msg"])]
    records = [_record(m["state"], m["native"], m["msg"]) for m in _PYODBC_RECORD_RE.finditer(text)]
    if records:
        return records
    bare = _BARE_STATE_RE.match(text)
    return [Diagnostic(bare["state"] if bare else "HY000", None, text.strip())]


def error_text(error: BaseException) -> str:
    """The text of an ODBC client's error (pyodbc's ``(sqlstate, text)`` args included).

    :param error: the exception.
    """
    args: tuple[Any, ...] = tuple(getattr(error, "args", ()))
    if len(args) == 2 and all(isinstance(a, str) for a in args):  # pyodbc: (state, text)
        state, text = args
        return text if "[" in text else f"[{state}] {text}"
    return str(error)


def classify(diagnostics: Sequence[Diagnostic]) -> Disposition:
    """Decide whether a failure is transient, a token expiry, or terminal.

    Server errors (positive numbers) decide first: any terminal number makes the whole
    failure terminal; 18456 whose message says the token expired is ``TOKEN_EXPIRED``
    (the one text check, see the module docstring); the numbers in
    :data:`TRANSIENT_ERROR_NUMBERS` are transient. Without a server error the SQLSTATE
    decides (:data:`TRANSIENT_SQLSTATES`). Everything else is terminal.

    :param diagnostics: the records of one failure, from :func:`parse_diagnostics`.

    >>> classify([Diagnostic("28000", 18456, "Login failed for user 'x'. Token is expired.")])
    <Disposition.TOKEN_EXPIRED: 'token-expired'>
    >>> classify([Diagnostic("42000", 229, "The INSERT permission was denied")])
    <Disposition.TERMINAL: 'terminal'>
    """
    server = [d for d in diagnostics if d.is_server_error]
    if server:
        verdicts = set()
        for d in server:
            if d.native_error == LOGIN_FAILED and TOKEN_EXPIRED_PATTERN.search(d.message):
                verdicts.add(Disposition.TOKEN_EXPIRED)
            elif d.native_error in TRANSIENT_ERROR_NUMBERS:
                verdicts.add(Disposition.TRANSIENT)
            else:
                verdicts.add(Disposition.TERMINAL)
        for verdict in (Disposition.TERMINAL, Disposition.TOKEN_EXPIRED):
            if verdict in verdicts:
                return verdict
        return Disposition.TRANSIENT
    if any(d.sqlstate in TRANSIENT_SQLSTATES for d in diagnostics):
        return Disposition.TRANSIENT
    return Disposition.TERMINAL


# What to do, by error number / SQLSTATE. 18456 gets a diagnosis from the token instead
# (see engine.connection), since its cause is not in the number.
_REMEDIES: dict[int | str, str] = {
    4060: "check that the database name is right and that this identity has a user in it; "
          "during a failover or while a serverless database resumes this clears by itself",
    40613: "the database is not currently available (failover, scaling or resuming); "
           "retry later or raise the retry limits",
    40501: "the service is busy; retry later, lower the number of workers, or scale up",
    40197: "the service hit an error (often a failover); retry later",
    49918: "not enough resources to process the request; retry later or scale up",
    49919: "too many create/update operations in progress; retry later",
    49920: "too many operations in progress; retry later",
    10928: "a resource limit was reached (workers/sessions); lower the number of workers "
           "or scale up",
    10929: "the database is at its minimum resource guarantee; lower the number of workers "
           "or retry later",
    37396: "the elastic pool or serverless database is resuming; retry later",
    1205: "chosen as a deadlock victim (rolled back); it is retried, and if it keeps "
          "happening, load fewer shards or workers into one table at a time",
    229: "the identity lacks a permission; grant it, e.g. "
         "ALTER ROLE db_datawriter ADD MEMBER [name] (and db_datareader to read the journal)",
    262: "the identity may not create objects; grant it, e.g. "
         "ALTER ROLE db_ddladmin ADD MEMBER [name], or create the table beforehand",
    208: "the table or view does not exist; check the schema and table name, "
         "or let azsql-bulk create it",
    "08001": "the client could not connect: check server, port, firewall rules, the "
             "encryption mode and that the server's certificate is trusted "
             "(server_certificate for strict, the CA for yes)",
    "08S01": "the connection broke; check the network path to the server",
    "HYT00": "the login timed out: check server, port and firewall rules, or raise "
             "login_timeout",
}


def remedy(diagnostics: Sequence[Diagnostic]) -> str:
    """A sentence saying what to do about this failure (empty when nothing specific is known).

    :param diagnostics: the failure's records.

    >>> remedy([Diagnostic("42000", 262, "CREATE TABLE permission denied")]).split(";")[0]
    'the identity may not create objects'
    """
    for d in diagnostics:
        if d.is_server_error and d.native_error in _REMEDIES:
            return _REMEDIES[d.native_error]
    for d in diagnostics:
        if d.sqlstate in _REMEDIES:
            return _REMEDIES[d.sqlstate]
    return ""


def describe(diagnostics: Sequence[Diagnostic]) -> str:
    """One line per record: ``[SQLSTATE] (number) message``.

    :param diagnostics: the records.
    """
    return "; ".join(f"[{d.sqlstate}] ({d.native_error}) {d.message}" if d.native_error
                     is not None else f"[{d.sqlstate}] {d.message}" for d in diagnostics)


class DatabaseError(AzsqlBulkError):
    """The database or the driver refused an operation.

    :param message: what failed, where, and what to do (already free of secrets).
    :param diagnostics: the ODBC records behind it.
    :param disposition: what :func:`classify` made of them.
    :param phase: what was being done, e.g. ``connect``, ``insert``.
    """

    def __init__(self, message: str, *, diagnostics: Sequence[Diagnostic] = (),
                 disposition: Disposition = Disposition.TERMINAL, phase: str = "") -> None:
        super().__init__(message)
        self.diagnostics = tuple(diagnostics)
        self.disposition = disposition
        self.phase = phase

    @property
    def transient(self) -> bool:
        """True when retrying (after a reconnect) may succeed."""
        return self.disposition is not Disposition.TERMINAL

    @property
    def sqlstate(self) -> str | None:
        """SQLSTATE of the first record."""
        return self.diagnostics[0].sqlstate if self.diagnostics else None

    @property
    def native_error(self) -> int | None:
        """The first server error number, else the first record's number."""
        for d in self.diagnostics:
            if d.is_server_error:
                return d.native_error
        return self.diagnostics[0].native_error if self.diagnostics else None


class ConnectError(DatabaseError):
    """A connection could not be opened: refused at login, or still failing after retries.

    :param attempts: how many connection attempts were made.
    """

    def __init__(self, message: str, *, attempts: int = 1, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.attempts = attempts


_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SECRET_KEYWORD_RE = re.compile(
    r"(?i)\b(accesstoken|pwd|password|clientsecret)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets from text meant for people: known values, JWTs, secret keywords.

    :param text: an error message or log line.
    :param secrets: exact values to remove (tokens, passwords); empty ones are ignored.

    >>> scrub("AccessToken={abc};x=1 and abc", ["abc"])
    'AccessToken=***;x=1 and ***'
    """
    for value in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _SECRET_KEYWORD_RE.sub(lambda m: f"{m[1]}=***", text)
    return _JWT_RE.sub("***", text)


def scrubbed_diagnostics(text: str, secrets: Iterable[str] = ()) -> list[Diagnostic]:
    """Parse a driver's error text into diagnostics with every secret scrubbed.

    :param text: the ODBC client's error text.
    :param secrets: values (tokens, passwords) to remove besides JWT-shaped text.
    """
    secrets = list(secrets)
    return [Diagnostic(d.sqlstate, d.native_error, scrub(d.message, secrets), d.component)
            for d in parse_diagnostics(scrub(text, secrets))]


def database_error(error: BaseException, *, phase: str, where: str,
                   secrets: Iterable[str] = ()) -> DatabaseError:
    """Translate a turbodbc/pyodbc error into a :class:`DatabaseError` free of secrets.

    Raise the result *outside* the ``except`` block that caught ``error`` (or set its
    ``__context__`` to ``None``) so the original, unscrubbed error is not chained to it.

    :param error: the ODBC client's exception.
    :param phase: what was being done (``insert``, ``commit``...).
    :param where: the table / batch / source the operation was about.
    :param secrets: values to scrub from the driver's text.

    >>> e = database_error(RuntimeError("ODBC error\\nstate: 42000\\nnative error code: 208\\n"
    ...                    "message: Invalid object name 't'."), phase="insert", where="dbo.t")
    >>> e.transient, e.native_error
    (False, 208)
    """
    diagnostics = scrubbed_diagnostics(error_text(error), secrets)
    disposition = classify(diagnostics)
    advice = remedy(diagnostics)
    message = f"{phase} failed ({where}): {describe(diagnostics)}"
    if advice:
        message += f"; {advice}"
    return DatabaseError(message, diagnostics=diagnostics, disposition=disposition, phase=phase)


# -- SQL Server error numbers the engine acts on (besides the transient ones above) -------
class SqlServerError(IntEnum):
    """Server error numbers the engine decides on; every such number lives here."""

    NOT_NULL = 515             # "Cannot insert the value NULL into column '...'"
    TRUNCATED = 2628           # "String or binary data would be truncated in ... column '...'"
    ALREADY_EXISTS = 2714      # "There is already an object named ... in the database."
    SCHEMA_FAILED = 2759       # "CREATE SCHEMA failed due to previous errors."
    OBJECT_DENIED = 229        # "The ... permission was denied on the object ..."
    COLUMN_DENIED = 230        # column permission denied
    DATABASE_DENIED = 262      # "... permission denied in database ..."
    SCHEMA_DENIED = 2760       # "The specified schema name ... does not exist or ..."
    INVALID_OBJECT = 208       # "Invalid object name '...'" (e.g. an Azure-only DMV elsewhere)
    NO_PERMISSION = 297        # "The user does not have permission to perform this action."
    STATE_DENIED = 300         # "VIEW DATABASE STATE permission denied on object ..."


#: the driver's own "String data, right truncation": bulk copy checks lengths against the
#: table's columns before sending and names no column
STRING_TRUNCATED_SQLSTATE = "22001"

#: a server message's ``column '...'`` (2628, 515), quotes doubled inside
COLUMN_IN_MESSAGE = re.compile(r"column '((?:[^']|'')+)'")


# -- errors of a load's steps: table checks, values, keys, the transfer ------------------
class ObjectChangedError(SourceError):
    """A remote object was replaced or deleted after the load captured its ETag."""


class UnsupportedTypeError(ConfigurationError):
    """An Arrow type (or a SQL type override) that azsql-bulk cannot load as asked."""


class NonFiniteValueError(AzsqlBulkError):
    """A float column holds NaN or ±Infinity, which SQL Server cannot store."""


class ValueCastError(AzsqlBulkError):
    """A value cannot be converted to the column's SQL type (overflow, lost digits...)."""


@dataclass(frozen=True)
class Mismatch:
    """One incompatible column: what, why, and what to do.

    :param column: the column name.
    :param source: the source side (Arrow type and planned SQL type), or ``-``.
    :param target: the existing column's type, or ``-`` when it is missing.
    :param why: the reason.
    :param fix: what to do about it.
    """

    column: str
    source: str
    target: str
    why: str
    fix: str


class SchemaMismatchError(ConfigurationError):
    """The existing table cannot take the source's columns; lists every mismatch.

    :param table: the target table.
    :param mismatches: every incompatible column.
    """

    def __init__(self, table: str, mismatches: list[Mismatch]) -> None:
        self.table = table
        self.mismatches = tuple(mismatches)
        lines = [f"table {table}: {len(mismatches)} column(s) are incompatible with the source; "
                 "nothing was sent"]
        lines += [f"  - column {m.column!r}: source {m.source}, target {m.target}: {m.why}; "
                  f"{m.fix}" for m in mismatches]
        super().__init__("\n".join(lines))


class DuplicateKeyError(ConfigurationError):
    """An upsert source holds a key more than once, or a NULL key.

    :param message: the full message.
    :param keys: the first offending key values (at most five).
    """

    def __init__(self, message: str, keys: list[tuple[object, ...]]) -> None:
        super().__init__(message)
        self.keys = keys


class TransferError(AzsqlBulkError):
    """A load stopped: which table, batch and source rows, why, and what was kept.

    :param message: the full message.
    :param table: the target table.
    :param batch_id: the failed batch's id (None when no batch was at fault).
    :param location: where the batch's rows are in the source.
    :param error: the underlying error (a :class:`DatabaseError` for database refusals).
    :param load_id: the load's journal id (run again with it to resume).
    :param rows_committed: rows this run committed before it stopped.
    :param batches_committed: batches this run committed before it stopped.
    :param resumable: whether committed batches are journaled, so running the load again
        with the same ``load_id`` continues where it stopped (False when nothing was kept).
    """

    def __init__(self, message: str, *, table: str, batch_id: str | None,
                 location: str | None, error: BaseException | None, load_id: str = "",
                 rows_committed: int = 0, batches_committed: int = 0,
                 resumable: bool = False) -> None:
        super().__init__(message)
        self.table = table
        self.batch_id = batch_id
        self.location = location
        self.error = error
        self.load_id = load_id
        self.rows_committed = rows_committed
        self.batches_committed = batches_committed
        self.resumable = resumable

    @property
    def native_error(self) -> int | None:
        """The server's error number, when a database error stopped the load."""
        return self.error.native_error if isinstance(self.error, DatabaseError) else None


class LoadAlreadyJournaled(ConfigurationError):
    """The load id already has journal rows and ``resume`` is False; nothing was sent.

    :param message: the full message.
    :param load_id: the load's id.
    :param batches: how many batches it has journaled.
    """

    def __init__(self, message: str, *, load_id: str, batches: int) -> None:
        super().__init__(message)
        self.load_id = load_id
        self.batches = batches


class TransferCancelled(TransferError):
    """The ``cancel`` event stopped the load at a batch boundary; it can be resumed."""
