"""``AzureSqlBulkHook``: an ``azure_sql_bulk`` Airflow connection -> engine target and connections.

The hook only reads the connection and hands it to the engine; every connection the
engine opens logs in with a fresh Entra token from the configured identity, and nothing
(no token, no secret) is stored in Airflow's database.

>>> hook = AzureSqlBulkHook("azure_sql_bulk_default")  # doctest: +SKIP
>>> hook.test_connection()  # doctest: +SKIP
(True, 'Connected to srv.database.windows.net,1433/sales as loader (managed-identity)')
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_integration.connection_fields import CONN_TYPE, connection_options, extra_value
from engine.connection import Connection, ConnectionFactory, ConnectionOptions
from engine.errors import AzsqlBulkError, scrub
from engine.journal_admin import JournalAdmin
from engine.names import TableName
from engine.options import Target

__all__ = ["AzureSqlBulkHook"]


class AzureSqlBulkHook(BaseHook):
    """Adapts an ``azure_sql_bulk`` connection to the engine.

    :param azure_sql_bulk_conn_id: the Airflow connection id.
    """

    conn_name_attr = "azure_sql_bulk_conn_id"
    default_conn_name = "azure_sql_bulk_default"
    conn_type = CONN_TYPE
    hook_name = "Azure SQL Database (azsql-bulk)"

    def __init__(self, azure_sql_bulk_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.azure_sql_bulk_conn_id = azure_sql_bulk_conn_id
        self._options: ConnectionOptions | None = None
        self._factory: ConnectionFactory | None = None

    def connection_options(self) -> ConnectionOptions:
        """The engine's connection options for this connection (read once, then kept).

        :raises ConfigurationError: the connection is incomplete or its auth is unusable.
        """
        if self._options is None:
            conn = self.get_connection(self.azure_sql_bulk_conn_id)
            azure_conn_id = extra_value(conn.extra_dejson or {}, "azure_conn_id")
            azure_conn = self.get_connection(str(azure_conn_id)) if azure_conn_id else None
            self._options = connection_options(conn, azure_conn)
            o = self._options
            # Never log the Connection object: its repr includes the password.
            self.log.info("connection %s: %s,%s/%s, %s credential, encrypt=%s",
                          self.azure_sql_bulk_conn_id, o.server, o.port, o.database,
                          o.credential.kind, o.encrypt)
        return self._options

    def target(self, table: str) -> Target:
        """The engine target ``table`` (``schema.table``) in this connection's database.

        :param table: ``schema.table`` or ``table`` (``dbo``).
        """
        return Target(self.connection_options(), TableName.parse(table))

    def get_conn(self) -> Connection:
        """A token-authenticated connection for ad-hoc SQL (close it; then :meth:`close`).

        >>> with AzureSqlBulkHook().get_conn() as conn:  # doctest: +SKIP
        ...     conn.cursor().execute("SELECT COUNT(*) FROM dbo.sales").fetchall()
        """
        if self._factory is None:
            self._factory = ConnectionFactory(self.connection_options())
        return self._factory.connect()

    def journal(self) -> JournalAdmin:
        """The load journal of this connection's database: list, show, forget and prune
        loads, as ``azsql-bulk journal`` does (call :meth:`close` when done).

        A maintenance DAG prunes loads finished long ago:

        >>> from engine.journal_admin import parse_age
        >>> hook = AzureSqlBulkHook("azure_sql")  # doctest: +SKIP
        >>> pruned = hook.journal().prune(parse_age("30d"))  # doctest: +SKIP
        >>> [f.load.load_id for f in pruned]  # doctest: +SKIP
        ['79a00c7f0c902f15cd9e3623d40f4deb']
        """
        if self._factory is None:
            self._factory = ConnectionFactory(self.connection_options())
        return JournalAdmin(self._factory)

    def close(self) -> None:
        """Release the token provider the hook's connections share."""
        if self._factory is not None:
            self._factory.close()
            self._factory = None

    def _password(self) -> str | None:
        try:
            return self.get_connection(self.azure_sql_bulk_conn_id).password
        except Exception:  # no such connection: nothing to scrub
            return None

    def test_connection(self) -> tuple[bool, str]:
        """Log in and report who the server says we are (Airflow's "Test" button).

        The message names the server, the database and the principal the server saw
        (never a secret). The UI's "Test" button shows it. ``airflow connections test``
        prints only "Connection success!" on success and silences logging unless run with
        ``--verbose``; the message is also logged at INFO, so ``--verbose`` shows it.

        :return: (True, the principal and database) or (False, why not); never a secret.
        """
        try:
            options = self.connection_options()
            with self.get_conn() as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT SUSER_SNAME(), DB_NAME()")
                principal, database = cursor.fetchall()[0]
            message = (f"Connected to {options.server},{options.port}/{database} as "
                       f"{principal} ({options.credential.kind})")
            self.log.info("%s", message)
            return True, message
        except AzsqlBulkError as exc:  # engine errors are scrubbed of tokens and secrets
            return False, str(exc)
        except Exception as exc:  # the ODBC client's own error, or a missing connection
            secrets = [self._password()]
            return False, scrub(f"{type(exc).__name__}: {exc}", [s for s in secrets if s])
        finally:
            self.close()
