"""Looking after the load journal: list its loads, show one, forget one, prune old ones.

``azsql-bulk journal list | show | forget | prune`` and the Airflow hook's
``journal()`` both call :class:`JournalAdmin`, which reads and deletes rows of
``[azsql_bulk].[load_journal]`` (see :mod:`engine.journal`) over one connection.

A load's **state**:

- ``complete``: a staged load (``replace``/``upsert``) whose apply committed (its finish
  row is journaled), or an ``append`` load whose journaled rows reach the source's row
  count;
- ``applying``: a staged load whose every batch is staged but whose apply has not
  committed (it is running, or failed and is applied by running the load again);
- ``partial``: batches are missing; running the same load again finishes it;
- ``unknown``: an ``append`` load whose source's row count was not known up front (CSV)
  or journaled before the journal recorded it.

Forgetting a load deletes its journal rows (and drops its staging table, which holds
rows no longer accounted for); running it again then loads every batch again.

>>> parse_age("30d"), parse_age("12h"), parse_age("90m")
(datetime.timedelta(days=30), datetime.timedelta(seconds=43200), \
datetime.timedelta(seconds=5400))
>>> source_of("data/part-0.parquet#3:20000"), source_of("mem:40")
('data/part-0.parquet', 'mem')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from engine.connection import ConnectionFactory, close_quietly, rollback_quietly
from engine.errors import AzsqlBulkError, ConfigurationError, database_error
from engine.journal import ADDED_COLUMNS, JOURNAL_SCHEMA, JOURNAL_TABLE, batch_key, journal_columns
from engine.names import TableName
from engine.rejects import REJECTS_TABLE
from engine.staging import FINISH_BATCH_ID

__all__ = ["BatchRecord", "Forgotten", "JournalAdmin", "LoadSummary", "UnknownLoad",
           "in_transaction", "parse_age", "source_of"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_QUALIFIED = f"[{JOURNAL_SCHEMA}].[{JOURNAL_TABLE}]"
_FINISH_KEY = batch_key(FINISH_BATCH_ID)
_STAGE_MARK = "__azsql_stage_"
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class UnknownLoad(ConfigurationError):
    """No journal rows for the load id asked about."""


def parse_age(text: str) -> dt.timedelta:
    """An age such as ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``.

    :raises ValueError: anything else.
    """
    found = _AGE.match(text)
    if not found:
        raise ValueError(f"expected an age such as 30d, 12h, 90m or 2w, not {text!r}")
    return dt.timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2).lower()])


def source_of(batch_id: str) -> str:
    """The source file of a batch id (``path#unit:offset`` or ``path:offset``)."""
    if "#" in batch_id:
        return batch_id.rsplit("#", 1)[0]
    return batch_id.rsplit(":", 1)[0] if ":" in batch_id else batch_id


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class LoadSummary:
    """One load in the journal.

    :param load_id: the load's id.
    :param table: the table it loads (None for rows journaled before the journal named it:
        then ``target``).
    :param target: where its batches went: the table, or its staging table.
    :param mode: append, replace or upsert (``staged`` when only the staging table tells).
    :param state: complete, applying, partial or unknown (see the module).
    :param batches: batches journaled (the finish row not counted).
    :param rows: rows in those batches.
    :param first_commit: the first batch's commit (UTC).
    :param last_commit: the last commit, the apply included (UTC).
    :param logins: the logins that wrote its rows (empty for old journal rows).
    :param source_rows: rows in the whole source, when known.
    :param rejects: rows set aside under ``max_errors`` (``[azsql_bulk].[rejected_rows]``).
    """

    load_id: str
    table: str
    target: str
    mode: str | None
    state: str
    batches: int
    rows: int
    first_commit: dt.datetime | None
    last_commit: dt.datetime | None
    logins: tuple[str, ...] = ()
    source_rows: int | None = None
    rejects: int = 0

    @property
    def staged(self) -> bool:
        """Its batches went to its own staging table (named after its load id)."""
        return self.target.endswith(_stage_suffix(self.load_id))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (times as ISO 8601 text)."""
        out = asdict(self)
        for key in ("first_commit", "last_commit"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        out["logins"] = list(self.logins)
        return out


@dataclass(frozen=True)
class BatchRecord:
    """One journaled batch.

    :param batch_id: the source's batch id.
    :param source: its source file (see :func:`source_of`).
    :param rows: its rows.
    :param committed_at: when it committed (UTC).
    :param login: who wrote it (None for old journal rows).
    """

    batch_id: str
    source: str
    rows: int
    committed_at: dt.datetime | None
    login: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        out = asdict(self)
        out["committed_at"] = self.committed_at.isoformat() if self.committed_at else None
        return out


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a load removed.

    :param load: the load as it was.
    :param journal_rows: journal rows deleted (the finish row included).
    :param dropped_stage: the staging table dropped with it, if any.
    """

    load: LoadSummary
    journal_rows: int
    dropped_stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"load": self.load.to_dict(), "journal_rows": self.journal_rows,
                "dropped_stage": self.dropped_stage}


@dataclass
class _Columns:
    have: set[str] = field(default_factory=set)

    def pick(self, name: str, fallback: str = "NULL") -> str:
        return f"[{name}]" if name in self.have else fallback


def in_transaction(factory: ConnectionFactory, work: Callable[[Any], T], *, phase: str,
                   where: str) -> T:
    """``work(conn)`` on a new connection in one transaction: committed when it returns,
    rolled back when it raises (the ODBC client's error as a DatabaseError naming ``phase``
    and ``where``); the connection is closed either way.

    :param factory: makes the connection.
    :param work: the statements, given the connection.
    :param phase: what was being done, for the error.
    :param where: the object it was done to, for the error.
    """
    conn = factory.connect()
    try:
        out = work(conn)
        conn.commit()
        return out
    except AzsqlBulkError:
        rollback_quietly(conn)
        raise
    except Exception as exc:  # the ODBC client's error
        rollback_quietly(conn)
        raise database_error(exc, phase=phase, where=where) from None
    finally:
        close_quietly(conn)


class JournalAdmin:
    """The load journal of one database, for people and maintenance jobs.

    :param factory: opens the connection (one per call, closed afterwards).

    >>> admin = JournalAdmin(ConnectionFactory(options))  # doctest: +SKIP
    >>> [(s.load_id, s.state) for s in admin.loads()]  # doctest: +SKIP
    [('79a00c7f0c902f15cd9e3623d40f4deb', 'complete')]
    """

    def __init__(self, factory: ConnectionFactory) -> None:
        self.factory = factory

    # -- reading ----------------------------------------------------------------------
    def loads(self) -> list[LoadSummary]:
        """Every load in the journal, the most recent last commit first (empty: no journal).

        :raises DatabaseError: a query failed.
        """
        return self._run("read the load journal", lambda conn: self._summaries(conn, None))

    def get(self, load_id: str) -> LoadSummary:
        """One load's summary.

        :raises UnknownLoad: the journal holds no rows for ``load_id``.
        """
        return self._run("read the load journal", lambda conn: self._one(conn, load_id))

    def show(self, load_id: str) -> tuple[LoadSummary, list[BatchRecord]]:
        """One load and its batches, by source file then batch id.

        :raises UnknownLoad: the journal holds no rows for ``load_id``.
        """
        def read(conn: Any) -> tuple[LoadSummary, list[BatchRecord]]:
            summary = self._one(conn, load_id)
            columns = _Columns(journal_columns(conn.cursor()))
            cursor = conn.cursor()
            cursor.execute(f"SELECT [batch_id], [rows], [committed_at], "  # noqa: S608
                           f"{columns.pick('login')} FROM {_QUALIFIED} "
                           "WHERE [load_id] = ? AND [batch_key] <> ?", [load_id, _FINISH_KEY])
            records = [BatchRecord(str(r[0]), source_of(str(r[0])), int(r[1]), _utc(r[2]),
                                   None if r[3] is None else str(r[3]))
                       for r in cursor.fetchall()]
            records.sort(key=lambda b: (b.source, _position(b.batch_id)))
            return summary, records
        return self._run("read the load journal", read)

    # -- removing ---------------------------------------------------------------------
    def forget(self, load_id: str) -> Forgotten:
        """Delete one load's journal rows and drop its staging table when there is one, in
        one transaction. Running the load again afterwards loads every batch again.

        :raises UnknownLoad: the journal holds no rows for ``load_id``.
        """
        return self._run("forget a load", lambda conn: self._forget(conn, load_id))

    def prune(self, older_than: dt.timedelta, *, dry_run: bool = False,
              only: set[str] | None = None) -> list[Forgotten]:
        """Forget every load whose last commit is older than ``older_than`` (server time).

        :param older_than: the age, e.g. ``parse_age("30d")``.
        :param dry_run: only say which loads would be forgotten.
        :param only: forget none but these load ids (those a person confirmed).
        """
        def prune(conn: Any) -> list[Forgotten]:
            cursor = conn.cursor()
            cursor.execute("SELECT SYSUTCDATETIME()")
            now = _utc(cursor.fetchall()[0][0])
            assert now is not None
            old = [s for s in self._summaries(conn, None)
                   if s.last_commit is not None and s.last_commit < now - older_than
                   and (only is None or s.load_id in only)]
            if dry_run:
                return [Forgotten(s, 0) for s in old]
            return [self._forget(conn, s.load_id) for s in old]
        return self._run("prune the load journal", prune)

    # -- internals --------------------------------------------------------------------
    def _run(self, phase: str, work: Any) -> Any:
        return in_transaction(self.factory, work, phase=phase, where=_QUALIFIED)

    def _one(self, conn: Any, load_id: str) -> LoadSummary:
        found = self._summaries(conn, load_id)
        if not found:
            raise UnknownLoad(f"no load {load_id!r} in the journal {_QUALIFIED} of "
                              f"{self.factory.where}; `azsql-bulk journal list` shows the "
                              "loads it holds")
        return found[0]

    def _summaries(self, conn: Any, load_id: str | None) -> list[LoadSummary]:
        columns = _Columns(journal_columns(conn.cursor()))
        if not columns.have:
            return []
        where = "WHERE [batch_key] <> ?" + (" AND [load_id] = ?" if load_id else "")
        params = [_FINISH_KEY, *([load_id] if load_id else [])]
        extra = [f"MAX({columns.pick(n)})" for n, _ in ADDED_COLUMNS if n != "login"]
        login = columns.pick("login")
        cursor = conn.cursor()
        cursor.execute(
            f"SELECT [load_id], MAX([target]), COUNT(*), SUM([rows]), MIN([committed_at]), "  # noqa: S608
            f"MAX([committed_at]), MIN({login}), MAX({login}), {', '.join(extra)} "
            f"FROM {_QUALIFIED} {where} GROUP BY [load_id]", params)
        batches = {str(r[0]): r for r in cursor.fetchall()}
        cursor.execute(f"SELECT [load_id], [committed_at], [target] FROM {_QUALIFIED} "  # noqa: S608
                       "WHERE [batch_key] = ?" + (" AND [load_id] = ?" if load_id else ""),
                       params)
        finished = {str(r[0]): r for r in cursor.fetchall()}
        rejects = _reject_counts(cursor, load_id)
        out = []
        for lid in set(batches) | set(finished):
            row = batches.get(lid)
            fin = finished.get(lid)
            target = str(row[1] if row is not None else fin[2])  # type: ignore[index]
            mode, table, source_rows = (row[8], row[9], row[10]) if row is not None else (
                None, None, None)
            logins = tuple(dict.fromkeys(str(x) for x in (row[6], row[7]) if x is not None)) \
                if row is not None else ()
            count, rows = (int(row[2]), int(row[3] or 0)) if row is not None else (0, 0)
            commits = [t for t in ((row[4], row[5]) if row is not None else ())
                       + ((fin[1],) if fin is not None else ()) if t is not None]
            staged = target.endswith(_stage_suffix(lid))
            if not table:  # an old journal row: the stage's name tells the table
                table = target[: -len(_stage_suffix(lid))] if staged else target
            summary = LoadSummary(
                lid, str(table), target, str(mode) if mode else ("staged" if staged else None),
                "", count, rows, _utc(min(commits)) if commits else None,
                _utc(max(commits)) if commits else None, logins,
                int(source_rows) if source_rows is not None else None, rejects.get(lid, 0))
            out.append(_with_state(summary, finished=fin is not None))
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        out.sort(key=lambda s: (s.last_commit or epoch, s.load_id), reverse=True)
        return out

    def _forget(self, conn: Any, load_id: str) -> Forgotten:
        summary = self._one(conn, load_id)
        cursor = conn.cursor()
        dropped = None
        if summary.staged:
            stage = TableName.parse(summary.target)
            cursor.execute("SELECT OBJECT_ID(?)", [stage.quoted])
            if cursor.fetchall()[0][0] is not None:
                cursor.execute(f"DROP TABLE {stage.quoted}")
                dropped = str(stage)
        cursor.execute(f"SELECT COUNT(*) FROM {_QUALIFIED} WHERE [load_id] = ?",  # noqa: S608
                       [load_id])
        count = int(cursor.fetchall()[0][0])
        cursor.execute(f"DELETE FROM {_QUALIFIED} WHERE [load_id] = ?", [load_id])  # noqa: S608
        rejects = f"[{JOURNAL_SCHEMA}].[{REJECTS_TABLE}]"
        cursor.execute("SELECT OBJECT_ID(?)", [rejects])
        if cursor.fetchall()[0][0] is not None:  # the load's rejected rows go with it
            cursor.execute(f"DELETE FROM {rejects} WHERE [load_id] = ?", [load_id])  # noqa: S608
        conn.commit()
        log.info("forgot load %s: %d journal row(s)%s", load_id, count,
                 f", dropped staging table {dropped}" if dropped else "")
        return Forgotten(summary, count, dropped)


def _reject_counts(cursor: Any, load_id: str | None) -> dict[str, int]:
    """Rejected rows per load id (none when no load ever set rows aside)."""
    rejects = f"[{JOURNAL_SCHEMA}].[{REJECTS_TABLE}]"
    cursor.execute("SELECT OBJECT_ID(?)", [rejects])
    if cursor.fetchall()[0][0] is None:
        return {}
    cursor.execute(f"SELECT [load_id], COUNT(*) FROM {rejects}"  # noqa: S608
                   + (" WHERE [load_id] = ?" if load_id else "") + " GROUP BY [load_id]",
                   [load_id] if load_id else [])
    return {str(r[0]): int(r[1]) for r in cursor.fetchall()}


def _with_state(s: LoadSummary, *, finished: bool) -> LoadSummary:
    known = s.source_rows is not None
    if finished:
        state = "complete"
    elif s.staged:
        state = "applying" if known and s.rows + s.rejects >= (s.source_rows or 0) else "partial"
    elif known:
        state = "complete" if s.rows + s.rejects >= (s.source_rows or 0) else "partial"
    else:
        state = "unknown"
    return replace(s, state=state)


def _stage_suffix(load_id: str) -> str:
    """The end of a load's staging table name (see :meth:`engine.names.TableName.staging`)."""
    return _STAGE_MARK + hashlib.sha256(load_id.encode()).hexdigest()[:16]


def _position(batch_id: str) -> tuple[int, ...]:
    """``path#3:20000`` -> (3, 20000): batches of a file in the order they were read."""
    tail = batch_id.rsplit("#", 1)[-1] if "#" in batch_id else batch_id.rsplit(":", 1)[-1]
    return tuple(int(p) if p.isdigit() else 0 for p in tail.split(":"))
