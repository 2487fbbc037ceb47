"""An open ODBC connection and the token it logged in with; how turbodbc opens one.

:class:`Connection` is what :class:`~engine.connection.ConnectionFactory` hands out: it
knows when its login token expires, so a worker recycles it at a batch boundary first.

>>> class Raw:
...     def close(self): pass
>>> conn = Connection(Raw(), token_expires_at=1000.0, where="srv,1433/db", logged_in_at=0.0)
>>> conn.should_recycle(margin=300, now=800.0)
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ConnectFunction", "Connection", "turbodbc_connect"]

ConnectFunction = Callable[[str, Mapping[str, Any]], Any]


def turbodbc_connect(connection_string: str, turbodbc_options: Mapping[str, Any]) -> Any:
    """Open a turbodbc connection (the default connect function).

    :param connection_string: the full ODBC connection string (holds the token).
    :param turbodbc_options: keyword arguments for ``turbodbc.make_options``.
    """
    import turbodbc

    # Bind text as wide (SQL_WVARCHAR) unless the caller says otherwise: the engine creates
    # nvarchar columns, and wide parameters keep the server from converting through a
    # code page. (Narrow UTF-8 also round-tripped against the emulator; not checked on Azure.)
    # Read results through a 1 MB buffer instead of turbodbc's 20 MB: turbodbc allocates
    # and clears the buffer for every result set, which cost ~17 ms of CPU per catalog or
    # journal query (measured: 0.4 ms with 1 MB); the engine reads only small results.
    made = turbodbc.make_options(**{"prefer_unicode": True,
                                    "read_buffer_size": turbodbc.Megabytes(1),
                                    **turbodbc_options})
    return turbodbc.connect(connection_string=connection_string, turbodbc_options=made)


class Connection:
    """An open turbodbc connection and the expiry of the token it logged in with.

    Azure SQL checks a token only at login, so the session outlives it; the engine
    recycles the connection at a batch boundary before ``token_expires_at``.

    :param raw: the turbodbc connection.
    :param token_expires_at: epoch seconds, or None (SQL authentication).
    :param logged_in_at: epoch seconds of the login (default: now).
    :param where: ``server,port/database`` for messages.
    :param attempts: connection attempts it took.
    """

    def __init__(self, raw: Any, *, token_expires_at: float | None, where: str,
                 attempts: int = 1, logged_in_at: float | None = None) -> None:
        self.turbodbc = raw
        self.token_expires_at = token_expires_at
        login = time.time() if logged_in_at is None else logged_in_at
        #: seconds the token had left when the connection logged in
        self.lifetime_at_login = (None if token_expires_at is None
                                  else max(0.0, token_expires_at - login))
        self.where = where
        self.attempts = attempts
        self.closed = False

    def seconds_left(self, now: float | None = None) -> float | None:
        """Seconds until the login token expires (None without a token).

        :param now: epoch seconds (default: now).
        """
        if self.token_expires_at is None:
            return None
        return self.token_expires_at - (time.time() if now is None else now)

    def should_recycle(self, margin: float = 300.0, now: float | None = None) -> bool:
        """True when the login token expires within ``margin`` seconds.

        The margin is capped at half the token's lifetime as seen at login, so a token
        shorter than the margin (e.g. a 60-second test token against the default 300 s)
        still serves half its life instead of forcing a reconnect before every batch.

        :param margin: seconds of lifetime a batch needs.
        :param now: epoch seconds (default: now).
        """
        left = self.seconds_left(now)
        if left is None:
            return False
        if self.lifetime_at_login is not None:
            margin = min(margin, self.lifetime_at_login / 2)
        return left <= margin

    @property
    def odbc_handle(self) -> int | None:
        """The driver manager's ODBC connection handle (SQLHDBC) of this session, as an integer.

        For native code that calls the driver on turbodbc's session (the ``bcp_*`` API
        needs the driver manager's handle, which is what turbodbc holds). Read-only: the
        handle belongs to turbodbc and is freed by :meth:`close`. None once closed, or
        when turbodbc was built without ``scripts/turbodbc-handle.patch``.

        >>> Connection(object(), token_expires_at=None, where="x").odbc_handle is None
        True
        """
        if self.closed:
            return None
        handle = getattr(getattr(self.turbodbc, "impl", None), "odbc_handle", None)
        return handle if isinstance(handle, int) and handle != 0 else None

    def cursor(self) -> Any:
        """A new turbodbc cursor."""
        return self.turbodbc.cursor()

    def commit(self) -> None:
        self.turbodbc.commit()

    def rollback(self) -> None:
        self.turbodbc.rollback()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self.turbodbc.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        expiry = ("no token" if self.token_expires_at is None else
                  time.strftime("token expires %H:%M:%S UTC", time.gmtime(self.token_expires_at)))
        return f"<Connection {self.where} {state}, {expiry}>"
