"""The benchmark's scratch space: its own schema, one table per step, nothing else touched.

``azsql-bulk bench`` writes only to tables it creates, named
``[azsql_bulk_bench].[step_<run>_<n>]`` (``<run>`` is random per run, so concurrent runs
never share a table), and drops each one after its step unless ``--keep``. The schema is
created when missing and dropped at the end when this run created it and it is empty.

The journal rows the steps write (every load is journaled, see :mod:`engine.journal`) are
forgotten through :class:`~engine.journal_admin.JournalAdmin` after each step unless
``--keep``, so the journal holds no benchmark clutter (the journal table itself, which a
first benchmark on a database creates as a first load would, stays: loads share it).

>>> ScratchSpace("azsql_bulk_bench", run="1a2b3c").table(2).quoted
'[azsql_bulk_bench].[step_1a2b3c_02]'
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from engine.connection import ConnectionFactory
from engine.errors import AzsqlBulkError
from engine.journal_admin import JournalAdmin, UnknownLoad, in_transaction
from engine.names import TableName, quote_identifier

__all__ = ["SCRATCH_SCHEMA", "ScratchSpace"]

log = logging.getLogger(__name__)

SCRATCH_SCHEMA = "azsql_bulk_bench"


@dataclass
class ScratchSpace:
    """The scratch schema and the tables one run created in it.

    :param schema: the scratch schema's name.
    :param run: this run's random tag (in every table's name).
    """

    schema: str = SCRATCH_SCHEMA
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    created_schema: bool = False
    tables: list[TableName] = field(default_factory=list)
    load_ids: list[str] = field(default_factory=list)

    def table(self, step: int) -> TableName:
        """The scratch table of step ``step`` (1-based)."""
        return TableName(self.schema, f"step_{self.run}_{step:02d}")

    def _execute(self, factory: ConnectionFactory, what: str,
                 statements: list[tuple[str, list[Any]]]) -> list[Any]:
        """Run ``statements`` in one transaction; the last one's rows."""
        def run(conn: Any) -> list[Any]:
            rows: list[Any] = []
            cursor = conn.cursor()
            for sql, params in statements:
                cursor.execute(sql, params)
                rows = list(cursor.fetchall()) if cursor.description else []
            return rows
        return in_transaction(factory, run, phase=what, where=f"schema {self.schema}")

    def schema_exists(self, factory: ConnectionFactory) -> bool:
        """Whether the scratch schema exists."""
        return bool(self._execute(factory, "look up the scratch schema",
                                  [("SELECT 1 FROM sys.schemas WHERE name = ?", [self.schema])]))

    def ensure_schema(self, factory: ConnectionFactory) -> None:
        """Create the scratch schema when missing (remembering that this run did).

        :raises DatabaseError: the server refused (the caller names the grant).
        """
        if self.schema_exists(factory):
            return
        self._execute(factory, f"create the scratch schema {self.schema}",
                      [(f"CREATE SCHEMA {quote_identifier(self.schema)}", [])])
        self.created_schema = True

    def create_probe(self, factory: ConnectionFactory) -> TableName:
        """Create this run's probe table (step 0, one int column), which the permission
        check reads and writes; it is dropped like the steps' tables.

        :raises DatabaseError: the server refused (the caller names the grant).
        """
        probe = self.table(0)
        self._execute(factory, f"create the scratch table {probe}",
                      [(f"CREATE TABLE {probe.quoted} ([x] int NULL)", [])])
        self.tables.append(probe)
        return probe

    def existing(self, factory: ConnectionFactory) -> list[str]:
        """The tables in the scratch schema now, ``schema.table``, sorted."""
        rows = self._execute(factory, "list the scratch tables", [(
            "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ?",
            [self.schema])])
        return sorted(f"{self.schema}.{r[0]}" for r in rows)

    def drop(self, factory: ConnectionFactory, table: TableName) -> bool:
        """Drop one scratch table of this run if it exists; whether it did.

        :raises ValueError: ``table`` is not in the scratch schema (never a user table).
        """
        if table.schema != self.schema or not table.name.startswith(f"step_{self.run}_"):
            raise ValueError(f"{table} is not a scratch table of this run; not dropped")
        rows = self._execute(factory, f"drop the scratch table {table}", [
            ("SELECT OBJECT_ID(?)", [table.quoted])])
        if not rows or rows[0][0] is None:
            return False
        self._execute(factory, f"drop the scratch table {table}",
                      [(f"DROP TABLE {table.quoted}", [])])
        return True

    def forget(self, factory: ConnectionFactory, load_id: str) -> int:
        """Forget one step's journal rows; how many were deleted (0: none were written)."""
        try:
            return JournalAdmin(factory).forget(load_id).journal_rows
        except UnknownLoad:
            return 0

    def clean_up(self, factory: ConnectionFactory) -> list[str]:
        """Drop this run's scratch tables and forget its steps' journal rows, then drop the
        schema if this run created it and it is empty. Each failure is logged and
        reported; the rest still runs.

        :returns: what could not be cleaned up, one sentence each.
        """
        problems = []
        for table in self.tables:
            try:
                self.drop(factory, table)
            except AzsqlBulkError as exc:
                problems.append(f"could not drop {table}: {exc}")
        for load_id in self.load_ids:
            try:
                self.forget(factory, load_id)
            except AzsqlBulkError as exc:
                problems.append(f"could not forget load {load_id} in the journal: {exc}")
        if self.created_schema and not problems:
            try:
                if not self.existing(factory):
                    self._execute(factory, f"drop the scratch schema {self.schema}",
                                  [(f"DROP SCHEMA {quote_identifier(self.schema)}", [])])
                    self.created_schema = False
            except AzsqlBulkError as exc:
                problems.append(f"could not drop the scratch schema {self.schema}: {exc}")
        for problem in problems:
            log.warning("bench: %s", problem)
        return problems
