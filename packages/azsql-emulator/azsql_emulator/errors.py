"""Errors the emulator reports to clients with SQL Server's numbers."""

from __future__ import annotations


class SqlError(Exception):
    """A SQL Server error: becomes an ERROR token (number, class, state, message).

    :param number: SQL Server error number (e.g. 208, 2627, 18456).
    :param message: text as SQL Server words it.
    :param severity: the error class (11-16 user errors, 20+ fatal to the session).
    :param state: SQL Server's state byte.
    :param also: further errors the server sends right after this one, for the same
        statement (e.g. 297 after 300).
    """

    def __init__(self, number: int, message: str, severity: int = 16, state: int = 1,
                 also: tuple[SqlError, ...] = ()) -> None:
        super().__init__(message)
        self.number = number
        self.message = message
        self.severity = severity
        self.state = state
        self.also = also

    def __repr__(self) -> str:
        return f"SqlError({self.number}, {self.message!r}, severity={self.severity})"


class LoginError(SqlError):
    """Login refused: ERROR 18456 class 14 (or 4060 for an unknown database)."""

    def __init__(self, message: str, *, reason: str, number: int = 18456, state: int = 1) -> None:
        super().__init__(number, message, severity=14 if number == 18456 else 11, state=state)
        self.reason = reason  # short machine key for metrics: expired, audience, signature...


class SessionClosed(Exception):
    """The client went away, or the session must end without another reply."""
