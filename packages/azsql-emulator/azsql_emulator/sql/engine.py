"""The emulator's SQL engine: databases as DuckDB catalogs, sessions, batches, transactions.

>>> eng = SqlEngine()
>>> s = eng.open_session("appdb", SessionUser("dbo", "sa", frozenset({"db_owner"}), 51))
>>> s.execute("SELECT 1 AS one")[0].rows
[(1,)]
>>> s.close(); eng.close()
"""

# ruff: noqa: S608 - SQL is built from quote()d identifiers; values are bound parameters

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import catalog as cat
from azsql_emulator.sql.batch import BatchCache
from azsql_emulator.sql.catalog import CatalogSnapshot, TableMeta
from azsql_emulator.sql.dmv import DmvSource
from azsql_emulator.sql.results import SessionUser, StatementResult
from azsql_emulator.sql.session_state import SessionState

__all__ = ["SessionUser", "SqlEngine", "SqlSession", "StatementResult"]


class SqlEngine:
    """All databases of one emulator instance; thread-safe, one session per client connection.

    :param state_dir: where ``<db>.duckdb`` files live; None keeps everything in memory.
    :param databases: database names; ``master`` plus the user databases.
    """

    def __init__(self, state_dir: Path | None = None,
                 databases: Sequence[str] = ("master", "appdb")) -> None:
        self.databases: list[str] = list(databases)
        self._root = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        for db in self.databases:
            if state_dir is None:
                target = ":memory:"
            else:
                Path(state_dir).mkdir(parents=True, exist_ok=True)
                target = str(Path(state_dir) / f"{db}.duckdb")
            self._root.execute(f"ATTACH {cat.literal(target)} AS {cat.quote(db)}").fetchall()
            cat.init_database(self._root, db, self.databases)
        self.batches = BatchCache()
        self.epoch = 0  # bumped when committed DDL changes any catalog
        self._object_ids: dict[str, int] = {}
        self._identity: dict[tuple[str, int], int] = {}
        self._rows_inserted: Counter[str] = Counter()
        self._commits = 0
        self._rollbacks = 0
        self._sessions: set[SqlSession] = set()
        self.insert_plans: dict[tuple, object] = {}
        self.dmv_source: DmvSource | None = None  # the emulator's ResourceStats

    def open_session(self, database: str, user: SessionUser) -> SqlSession:
        """Start a session in ``database`` (4060 when it does not exist).

        :param database: the login's database.
        :param user: the authenticated user.
        """
        found = self.find_database(database)
        if found is None:
            raise SqlError(4060, f'Cannot open database "{database}" requested by the login. '
                                 "The login failed.", severity=11)
        session = SqlSession(self, found, user)
        with self._lock:
            self._sessions.add(session)
        return session

    def find_database(self, name: str) -> str | None:
        """The database's canonical name, matched case-insensitively.

        :param name: a database name.
        """
        return next((d for d in self.databases if d.lower() == name.lower()), None)

    def metrics(self) -> dict:
        """Counters: committed rows inserted per table, commits and rollbacks (explicit)."""
        with self._lock:
            return {"rows_inserted": dict(self._rows_inserted), "commits": self._commits,
                    "rollbacks": self._rollbacks}

    def close(self) -> None:
        """Close every session (rolling back open transactions) and the databases."""
        for session in list(self._sessions):
            session.close()
        for db in self.databases:
            try:
                self._root.execute(f"DETACH {cat.quote(db)}").fetchall()
            except duckdb.Error:
                pass  # an in-memory database that is already gone
        self._root.close()

    # -- shared state the sessions update ----------------------------------------------

    def forget(self, session: SqlSession) -> None:
        with self._lock:
            self._sessions.discard(session)

    def record_commit(self, inserted: Mapping[str, int], explicit: bool, ddl: bool) -> None:
        with self._lock:
            self._rows_inserted.update(inserted)
            if explicit:
                self._commits += 1
            if ddl:
                self.epoch += 1

    def record_rollback(self, explicit: bool) -> None:
        with self._lock:
            if explicit:
                self._rollbacks += 1

    def new_object_ids(self, con: duckdb.DuckDBPyConnection, database: str,
                       count: int) -> list[int]:
        with self._lock:
            last = self._object_ids.get(database)
            if last is None:
                last = cat.max_object_id(con, database)
            ids = [last + 16 * (i + 1) for i in range(count)]
            self._object_ids[database] = ids[-1]
            return ids

    def allocate_identity(self, con: duckdb.DuckDBPyConnection, table: TableMeta,
                          count: int) -> list[int]:
        col = table.identity_column
        assert col is not None and col.identity is not None
        seed, incr = col.identity
        key = (table.database, table.object_id)
        with self._lock:
            nxt = self._identity.get(key)
            if nxt is None:
                # identity values are not transactional in SQL Server either: the counter
                # lives here, started from the highest stored value after a restart
                agg = "max" if incr > 0 else "min"
                top = con.execute(f"SELECT {agg}({cat.quote(col.name)}) FROM "
                                  f"{table.duck_name}").fetchall()[0][0]
                nxt = seed if top is None else int(top) + incr
            values = [nxt + i * incr for i in range(count)]
            self._identity[key] = nxt + count * incr
            return values

    def observe_identity(self, table: TableMeta, values: Sequence[int]) -> None:
        col = table.identity_column
        if col is None or not values or col.identity is None:
            return
        incr = col.identity[1]
        key = (table.database, table.object_id)
        with self._lock:
            top = max(values) if incr > 0 else min(values)
            nxt = self._identity.get(key)
            if nxt is None or (incr > 0 and top + incr > nxt) or (incr < 0 and top + incr < nxt):
                self._identity[key] = top + incr

    def reset_identity(self, table: TableMeta) -> None:
        with self._lock:
            self._identity.pop((table.database, table.object_id), None)


class SqlSession(SessionState):
    """One client connection: its own DuckDB connection, database, options and transaction.

    :param engine: the owning engine.
    :param database: the current database.
    :param user: who is connected.
    """

    def __init__(self, engine: SqlEngine, database: str, user: SessionUser) -> None:
        con = engine._root.cursor()
        con.execute("SET TimeZone = 'UTC'").fetchall()
        super().__init__(engine, con, database, user)
        self._closed = False

    @property
    def in_transaction(self) -> bool:
        return self.trancount > 0

    def execute(self, sql: str, params: Mapping[str, object] | None = None
                ) -> list[StatementResult]:
        """Run a whole T-SQL batch; one result per statement (errors included).

        :param sql: the batch.
        :param params: ``{"@P1": value}`` parameters, visible as variables.
        """
        return self.run_batch(sql, params or {})

    def execute_many(self, sql: str, rows: Sequence[Sequence[object] | Mapping[str, object]]
                     ) -> list[SqlError | None]:
        """Run one parameterised INSERT for many parameter rows; good rows are applied.

        Parameters bind by position in order of first appearance in ``sql`` (or by name
        when a row is a mapping).

        :param sql: ``INSERT INTO t (a, b) VALUES (@P1, @P2)``.
        :param rows: parameter rows.
        :returns: per row, its error or None.
        """
        return self.insert_many(sql, rows)

    def execute_many_atomic(self, sql: str,
                            rows: Sequence[Sequence[object] | Mapping[str, object]]) -> None:
        """Like :meth:`execute_many`, but all or nothing: the first bad row raises.

        :raises SqlError: the first row's error; no row of the call is applied.
        """
        self.insert_many(sql, rows, per_row=False)

    def begin(self) -> None:
        """BEGIN TRANSACTION (nests: only @@TRANCOUNT grows)."""
        self.begin_transaction()

    def commit(self) -> None:
        """COMMIT (3902 without a transaction)."""
        self.commit_transaction()

    def rollback(self) -> None:
        """ROLLBACK everything (3903 without a transaction)."""
        self.rollback_transaction()

    def close(self) -> None:
        """Roll back an open transaction and release the DuckDB connection."""
        if self._closed:
            return
        self._closed = True
        if self.trancount:
            try:
                self.rollback_transaction()
            except (SqlError, duckdb.Error):
                pass  # the connection is going away anyway
        self.con.close()
        self.engine.forget(self)

    def snapshot(self, database: str) -> CatalogSnapshot:
        """The catalog as this session sees it (cached until DDL commits anywhere).

        :param database: the database.
        """
        epoch = self.engine.epoch
        hit = self._snapshots.get(database)
        if hit is not None and hit[0] == epoch:
            return hit[1]
        snap = cat.load_snapshot(self.con, database)
        self._snapshots[database] = (epoch, snap)
        return snap
