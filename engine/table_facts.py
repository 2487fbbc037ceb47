"""What a table holds, read for :mod:`engine.verify`: counts, sums, time ranges, rows per
value and rows by key, each value brought back in the form the source's values are
compared in.

Values the ODBC client cannot return natively (decimals, instants, dates, times of day,
uuids) are selected as ``CAST(... AS nvarchar(64))`` text and parsed here: instants to
nanoseconds since 1970 (in UTC when the text has an offset), times of day to nanoseconds
since midnight, decimals to :class:`~decimal.Decimal`, uuids to lower-case text.

>>> instant_ns("1970-01-01 00:00:01.5 +00:00"), from_table("uuid", "AB-CD")
(1500000000, 'ab-cd')
>>> readable("instant", 1_500_000_000)
'1970-01-01 00:00:01.500000000'
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from engine.errors import database_error
from engine.names import TableName, quote_identifier

__all__ = ["KEY_KINDS", "LOOKUP_KINDS", "RANGED", "TableFacts", "from_table", "instant_ns",
           "readable", "select_expression"]

#: kinds of columns compared by their smallest and largest values
RANGED = ("instant", "date", "clock")
#: kinds a sample row is looked up by (each bound exactly), the most selective first
LOOKUP_KINDS = ("int", "text", "decimal", "date", "float", "bool")
#: kinds ``--key`` accepts
KEY_KINDS = ("int", "text", "decimal")
#: parameters per statement: Azure SQL refuses more than 2,100
MAX_PARAMETERS = 2000
_INT64 = range(-(2**63), 2**63)

_INSTANT = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s*"
                      r"(Z|[+-]\d\d:\d\d)?$")
_CLOCK = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?$")


def select_expression(name: str, kind: str) -> str:
    """The select-list expression that brings ``name`` back in its compared form."""
    column = quote_identifier(name)
    if kind in ("decimal", "instant", "clock", "uuid", "date"):
        return f"CAST({column} AS nvarchar(64))"
    return column


def from_table(kind: str, value: Any) -> Any:
    """A value the table returned, in the form it is compared in."""
    if kind == "int" and isinstance(value, str | Decimal):  # decimal(20, 0) of a uint64
        return int(Decimal(str(value).strip()))
    if value is None or kind in ("int", "float", "bool", "text"):
        return value
    text = str(value).strip()
    if kind == "decimal":
        return Decimal(text)
    if kind == "uuid":
        return text.lower()
    if kind == "date":
        return text[:10]
    if kind == "clock":
        found = _CLOCK.match(text)
        if not found:
            return text
        h, m, s, frac = found.groups()
        return ((int(h) * 60 + int(m)) * 60 + int(s)) * 10**9 + int((frac or "").ljust(9, "0"))
    return instant_ns(text)


def instant_ns(text: str) -> Any:
    """``YYYY-MM-DD hh:mm:ss[.fffffff][ +hh:mm]`` -> nanoseconds since 1970 (UTC when an
    offset is given)."""
    found = _INSTANT.match(text)
    if not found:
        return text
    y, mo, d, h, mi, s, frac, zone = found.groups()
    moment = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=dt.UTC)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        moment -= sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    seconds = int((moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds())
    return seconds * 10**9 + int((frac or "").ljust(9, "0"))


class TableFacts:
    """The queries :func:`engine.verify.verify_table` runs, over one connection.

    :param conn: an open connection (turbodbc through the engine, or any DB-API one).
    :param table: the table.
    :param kinds: column name -> how it is compared (see :func:`engine.verify.kind_of`).
    """

    def __init__(self, conn: Any, table: TableName, kinds: dict[str, str],
                 scales: dict[str, int] | None = None) -> None:
        self.conn, self.table, self.kinds = conn, table, kinds
        self.scales = scales or {}

    def marker(self, name: str, value: Any) -> tuple[str, list[Any]]:
        """The parameter marker that binds ``value`` (a non-null compared-form value) exactly
        as ``name``'s type, and its parameters: decimals as text cast to ``decimal(38,
        scale)`` (the driver's own decimal binding truncates to its default scale), dates
        as ``YYYY-MM-DD``, integers beyond bigint as text cast to ``decimal(20, 0)``."""
        kind = self.kinds[name]
        if kind == "decimal":
            return f"CAST(? AS decimal(38, {int(self.scales.get(name, 0))}))", [
                format(value, "f")]
        if kind == "date":
            return "CAST(? AS date)", [str(value)]
        if kind == "int" and value not in _INT64:
            return "CAST(? AS decimal(20, 0))", [str(value)]
        return "?", [value]

    def bind(self, name: str, value: Any) -> tuple[str, list[Any]]:
        """The condition ``name`` equals ``value`` (NULL: IS NULL; a float that no table
        holds, NaN or infinite: no condition) and its parameters."""
        column = quote_identifier(name)
        if value is None:
            return f"{column} IS NULL", []
        if self.kinds[name] == "float" and not math.isfinite(value):
            return "1 = 1", []
        mark, params = self.marker(name, value)
        return f"{column} = {mark}", params

    def _found(self, compared: Sequence[str], got: Iterable[Any]) -> list[dict[str, Any]]:
        return [{n: from_table(self.kinds[n], v) for n, v in zip(compared, r, strict=True)}
                for r in got]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one query; its rows.

        :raises DatabaseError: the query failed (the server's or the driver's message).
        """
        try:
            cursor = self.conn.cursor()
            if params:
                cursor.execute(sql, list(params))
            else:
                cursor.execute(sql)
            out: list[Any] = cursor.fetchall()
        except Exception as exc:  # the ODBC client's error
            raise database_error(exc, phase="verify the table", where=str(self.table)) \
                from None
        return out

    def columns(self) -> list[str] | None:
        """The table's columns, or None when it does not exist."""
        (found,) = self.rows("SELECT OBJECT_ID(?)", [self.table.quoted])[0]
        if found is None:
            return None
        return [str(r[0]) for r in self.rows(
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND "
            "TABLE_NAME = ? ORDER BY ORDINAL_POSITION", [self.table.schema, self.table.name])]

    def totals(self, names: Sequence[str], scales: dict[str, int]) -> list[Any]:
        """COUNT_BIG(*), then per column its COUNT, (numeric columns) its SUM, (text
        columns) the sum of their ``nvarchar`` byte lengths and (time columns) its MIN and
        MAX, in one scan.

        MIN and MAX are cast to text outside the aggregate (a derived table): the cast of
        an aggregate of ``datetimeoffset`` is what the emulator cannot translate, and the
        outer cast keeps every digit and the offset on both.
        """
        parts: list[tuple[str, bool]] = [("COUNT_BIG(*)", False)]
        for name in names:
            column, kind = quote_identifier(name), self.kinds[name]
            parts.append((f"COUNT({column})", False))
            if kind in ("int", "decimal"):
                parts.append((f"CAST(SUM(CAST({column} AS decimal(38, {scales.get(name, 0)})))"
                              " AS nvarchar(64))", False))
            elif kind == "float":
                parts.append((f"SUM({column})", False))
            elif kind == "text":
                parts.append((f"SUM(CAST(DATALENGTH(CAST({column} AS nvarchar(max))) "
                              "AS bigint))", False))
            if kind in RANGED:
                parts += [(f"{f}({column})", True) for f in ("MIN", "MAX")]
        inner = ", ".join(f"{expr} AS [v{i}]" for i, (expr, _) in enumerate(parts))
        outer = ", ".join(f"CAST([v{i}] AS nvarchar(64))" if cast else f"[v{i}]"
                          for i, (_, cast) in enumerate(parts))
        return list(self.rows(f"SELECT {outer} FROM (SELECT {inner} "  # noqa: S608
                              f"FROM {self.table.quoted}) AS [totals]")[0])

    def value_counts(self, name: str, values: Iterable[Any],
                     examples: int = 5) -> tuple[Counter[Any], int, int]:
        """Rows per value for the source's (non-null) ``values``, then what else the column
        holds: up to ``examples`` other values with their rows added to the counter, and
        (other values not shown, their rows). Bounded however many values the table has.
        """
        column, table = quote_identifier(name), self.table.quoted
        known = [v for v in values if v is not None]
        if len(known) > MAX_PARAMETERS:
            raise ValueError(f"{len(known)} values bound at once; at most {MAX_PARAMETERS}")
        kind = self.kinds[name]
        bound = [self.marker(name, v) for v in known]
        marks = ", ".join(m for m, _ in bound)
        known = [p for _, params in bound for p in params]
        found: Counter[Any] = Counter()
        if known:
            found.update({from_table(kind, r[0]): int(r[1]) for r in self.rows(
                f"SELECT {column}, COUNT_BIG(*) FROM {table} "  # noqa: S608
                f"WHERE {column} IN ({marks}) GROUP BY {column}", known)})
        other = f"{column} IS NOT NULL" + (f" AND {column} NOT IN ({marks})" if known else "")
        (rows, distinct), = self.rows(f"SELECT COUNT_BIG(*), COUNT(DISTINCT {column}) "  # noqa: S608
                                      f"FROM {table} WHERE {other}", known)
        if not rows:
            return found, 0, 0
        shown = self.rows(f"SELECT TOP {int(examples)} {column}, COUNT_BIG(*) "  # noqa: S608
                          f"FROM {table} WHERE {other} GROUP BY {column} "
                          "ORDER BY COUNT_BIG(*) DESC", known)
        found.update({from_table(kind, r[0]): int(r[1]) for r in shown})
        return found, int(distinct) - len(shown), int(rows) - sum(int(r[1]) for r in shown)

    def matching(self, rows: Sequence[dict[str, Any]], names: Sequence[str],
                 compared: Sequence[str], per_row: int = 100) -> list[dict[str, Any]]:
        """The table's rows equal to one of ``rows`` on ``names``, with their ``compared``
        values: one query per batch of rows (at most :data:`MAX_PARAMETERS` parameters
        each), up to ``per_row`` table rows per row looked up."""
        select = ", ".join(select_expression(n, self.kinds[n]) for n in compared)
        out: list[dict[str, Any]] = []
        conditions: list[str] = []
        params: list[Any] = []

        def flush() -> None:
            if conditions:
                out.extend(self._found(compared, self.rows(
                    f"SELECT TOP {len(conditions) * per_row} {select} "  # noqa: S608
                    f"FROM {self.table.quoted} WHERE {' OR '.join(conditions)}", params)))
            conditions.clear()
            params.clear()

        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            values = tuple((n, row[n]) for n in names)
            if values in seen:
                continue
            seen.add(values)
            where, bound = self._where(row, names)
            if len(params) + len(bound) > MAX_PARAMETERS:
                flush()
            conditions.append(f"({where})")
            params.extend(bound)
        flush()
        return out

    def _where(self, row: dict[str, Any], names: Sequence[str]) -> tuple[str, list[Any]]:
        parts = [self.bind(n, row[n]) for n in names]
        return " AND ".join(p[0] for p in parts) or "1 = 1", [v for p in parts for v in p[1]]


def readable(kind: str, value: Any) -> Any:
    """A compared value as a report shows it: instants as UTC text to the nanosecond,
    times of day as ``hh:mm:ss.fffffffff`` (pairs element by element)."""
    if isinstance(value, tuple):
        return tuple(readable(kind, v) for v in value)
    if not isinstance(value, int) or kind not in ("instant", "clock"):
        return value
    seconds, nanos = divmod(value, 10**9)
    if kind == "clock":
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{nanos:09d}"
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{nanos:09d}"
