"""Fault injection: errors and broken links on request, to test clients' retry logic."""

from __future__ import annotations

import threading
from typing import Any

from emulator.errors import SqlError

# Messages SQL Server / Azure SQL send with these transient numbers (class, text).
TRANSIENT_LOGIN_ERRORS: dict[int, tuple[int, str]] = {
    40613: (17, "Database '{db}' on server 'azsql-emulator' is not currently available. "
                "Please retry the connection later."),
    40501: (20, "The service is currently busy. Retry the request after 10 seconds."),
    40197: (20, "The service has encountered an error processing your request. "
                "Please try again. Error code 4815."),
    49918: (16, "Cannot process request. Not enough resources to process request."),
    49919: (16, "Cannot process create or update request. Too many create or update "
                "operations in progress."),
    49920: (16, "Cannot process request. Too many operations in progress."),
    10928: (20, "Resource ID : 1. The request limit for the database is 200 and has been "
                "reached."),
    10929: (20, "Resource ID : 1. The request limit for the database is 200 and has been "
                "reached. However, the server is currently too busy."),
    37396: (16, "The database '{db}' is not currently available. Please retry later."),
}


class FaultPlan:
    """Pending faults, consumed by sessions; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._login_errors: list[int] = []

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply ``POST /faults``: ``{"login_error": 40613, "count": 2}``.

        :raises ValueError: an unknown field or error number.
        """
        unknown = set(body) - {"login_error", "count", "clear"}
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; allowed: login_error, "
                             "count, clear")
        with self._lock:
            if body.get("clear"):
                self._login_errors.clear()
            if "login_error" in body:
                number = int(body["login_error"])
                if number not in TRANSIENT_LOGIN_ERRORS:
                    raise ValueError(f"login_error {number} is not one of "
                                     f"{sorted(TRANSIENT_LOGIN_ERRORS)}")
                self._login_errors.extend([number] * int(body.get("count", 1)))
            return self.pending_locked()

    def pending_locked(self) -> dict[str, Any]:
        return {"login_errors": list(self._login_errors)}

    def pending(self) -> dict[str, Any]:
        with self._lock:
            return self.pending_locked()

    def take_login_error(self, database: str) -> SqlError | None:
        """The next injected login error, if any (consumed)."""
        with self._lock:
            if not self._login_errors:
                return None
            number = self._login_errors.pop(0)
        severity, text = TRANSIENT_LOGIN_ERRORS[number]
        return SqlError(number, text.format(db=database), severity)
