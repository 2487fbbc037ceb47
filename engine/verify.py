"""Check a loaded table against its source: ``azsql-bulk verify`` and :func:`verify_table`.

The source is streamed once (its batches, as a load reads them: the same columns and
renames), so memory stays bounded by the sample and the per-value counts, whatever the
source's size. What is compared:

- **rows**: the source's rows against ``COUNT_BIG(*)``;
- **non-null values** of every column against ``COUNT(column)``;
- **sums** of numeric columns: integers and decimals exactly (summed as ``decimal(38, s)``
  on the server, as Python ints and Decimals here), floats within a relative 1e-9;
- **total length** of text columns, in UTF-16 code units with trailing spaces (as
  ``DATALENGTH`` of the ``nvarchar`` value counts them): a value changed to one of
  another length shows here whatever the column's cardinality;
- **smallest and largest values** of timestamp, date and time columns (to the
  nanosecond; instants with a time zone in UTC);
- **rows per value** of low-cardinality columns (text, booleans and integers with at most
  ``max_values`` distinct values in the source, NULL counted as a value);
- **sample rows**: a deterministic reservoir sample of ``sample_rows`` source rows, each
  compared whole with the table's rows. They are looked up in batches (at most 2,000
  parameters a query, Azure SQL takes 2,100) by ``keys`` when given (integer, text or
  decimal columns; other kinds are refused up front), else by all their integer and text
  values, or, in a table without such columns, by all their decimal, date, float and
  boolean values (decimals bound as ``decimal(38, scale)``, floats exactly, as
  ``float(53)`` stores them); either way the row is then compared whole. A row not
  found whole is compared with the table's rows that share its first lookup value, to
  say which columns differ.
  Binary columns are counted, not compared. When no column can find a row (or a key is
  not in the table), the sample rows are reported as drawn but not compared
  (``not_sampled``), never as compared.

What this is not: a row-by-row comparison of the whole table. Counts, sums, ranges and
per-value counts cover every row, but a change confined to high-cardinality text, float or
time values of rows outside the sample (a swap of two names, say) keeps them all
unchanged; the report says how many rows were compared whole, and only when that is every
row does the CLI say "matches the source".

Nanosecond sources: the tables a load creates hold 100 ns (``datetime2(7)``,
``datetimeoffset(7)``, ``time(7)``) and the load rounds half-up to them, so nanosecond
instants and times of day are compared after the same rounding (a note says so).
Unsigned 64-bit integers are stored as ``decimal(20, 0)``, come back as text and are
compared as integers.

Each difference names the column, what was compared, what the source says (expected)
and what the table holds (found). Text is compared as the server compares it: under a
case-insensitive collation (Azure SQL's default) ``'a'`` and ``'A'`` are one value in
``GROUP BY``, so such a column's per-value counts differ from the source's, and
trailing spaces do not count. Time columns are read back as ``CAST(... AS nvarchar)``
text, whose format is that of ``datetime2``, ``datetimeoffset``, ``date`` and ``time``
(the types a load creates), not of the legacy ``datetime``.

>>> report = verify_table("orders/*.parquet", target)  # doctest: +SKIP
>>> report.ok, [d.describe() for d in report.differences]  # doctest: +SKIP
(False, ['amount: sum: expected 1234.50, found 1200.25'])
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.connection import ConnectionFactory, close_quietly
from engine.errors import ConfigurationError
from engine.names import TableName
from engine.options import Target
from engine.sources import SourceOptions, open_source
from engine.table_facts import (
    KEY_KINDS,
    LOOKUP_KINDS,
    MAX_PARAMETERS,
    RANGED,
    TableFacts,
    from_table,
    readable,
)

__all__ = ["DEFAULT_MAX_VALUES", "DEFAULT_SAMPLE_ROWS", "MAX_VALUES", "Difference", "SourceFacts",
           "VerifyReport", "kind_of", "verify_table"]

DEFAULT_SAMPLE_ROWS = 200
DEFAULT_MAX_VALUES = 50
#: the largest ``max_values``: the values are bound as parameters of one statement
MAX_VALUES = MAX_PARAMETERS
_FLOAT_TOLERANCE = 1e-9
_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_ASTRAL = "[\\x{10000}-\\x{10FFFF}]"  # characters that take two UTF-16 code units


@dataclass(frozen=True)
class Difference:
    """One fact on which the table and the source disagree.

    :param column: the column (None for the table as a whole).
    :param what: what was compared (``rows``, ``sum``, ``rows with value 'x'``...).
    :param expected: what the source says.
    :param found: what the table holds.
    """

    column: str | None
    what: str
    expected: Any
    found: Any

    def describe(self) -> str:
        """``column: what: expected X, found Y``."""
        where = f"{self.column}: " if self.column is not None else "table: "
        return f"{where}{self.what}: expected {_text(self.expected)}, found {_text(self.found)}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (values as text where JSON has no type for them)."""
        return {"column": self.column, "what": self.what, "expected": _jsonable(self.expected),
                "found": _jsonable(self.found)}


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_table` compared and found.

    :param table: the table.
    :param rows: rows in the source.
    :param checks: facts compared.
    :param sampled: sample rows compared whole with a row of the table.
    :param differences: every disagreement (empty: no difference found).
    :param notes: what could not be compared, and why.
    :param not_sampled: sample rows drawn but not compared (no way to look them up).
    """

    table: str
    rows: int
    checks: int
    sampled: int
    differences: tuple[Difference, ...]
    notes: tuple[str, ...] = ()
    not_sampled: int = 0

    @property
    def ok(self) -> bool:
        """True when the table matches the source on every fact compared."""
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"table": self.table, "ok": self.ok, "rows": self.rows, "checks": self.checks,
                "sampled": self.sampled, "not_sampled": self.not_sampled,
                "differences": [d.to_dict() for d in self.differences],
                "notes": list(self.notes)}


# -- the source side ---------------------------------------------------------------------

def kind_of(t: pa.DataType) -> str:
    """How a column is compared: int, float, decimal, bool, text, instant, date, clock,
    uuid or other (counted only)."""
    if isinstance(t, pa.BaseExtensionType):
        return "uuid" if t.extension_name == "arrow.uuid" else "other"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "instant"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "clock"
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return "uuid"
    return "other"


@dataclass
class SourceFacts:
    """The facts of a source, accumulated batch by batch (:meth:`add`).

    :param schema: the source's (projected, renamed) schema.
    :param sample_rows: how many rows to keep as a sample.
    :param max_values: the most distinct values a column may have to be counted per value.
    :param seed: the sample's random seed (the same source gives the same sample).
    """

    schema: pa.Schema
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    max_values: int = DEFAULT_MAX_VALUES
    seed: int = 0
    rows: int = 0
    non_null: Counter[str] = field(default_factory=Counter)
    sums: dict[str, Any] = field(default_factory=dict)
    magnitude: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, tuple[Any, Any] | None] = field(default_factory=dict)
    values: dict[str, Counter[Any] | None] = field(default_factory=dict)
    lengths: Counter[str] = field(default_factory=Counter)
    sample: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kinds = {f.name: kind_of(f.type) for f in self.schema}
        for name, kind in self.kinds.items():
            if kind in ("int", "decimal"):
                self.sums[name] = Decimal(0) if kind == "decimal" else 0
            elif kind == "float":
                self.sums[name], self.magnitude[name] = 0.0, 0.0
            if kind in RANGED:
                self.ranges[name] = None
            if kind in ("int", "bool", "text"):
                self.values[name] = Counter()
        self._rng = random.Random(self.seed)  # noqa: S311 (a sample, not a secret)
        self._weight = 1.0
        self._next = self.sample_rows - 1  # then: the position of the next row to keep
        self._skip()

    def add(self, batch: pa.RecordBatch) -> None:
        """Count one batch in."""
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            self.non_null[name] += len(column) - column.null_count
            kind = self.kinds[name]
            if name in self.ranges:
                self._range(name, kind, column)
            if name in self.sums:
                self._sum(name, kind, column)
            if kind == "text":  # UTF-16 code units, as nvarchar holds them
                self.lengths[name] += (pc.sum(pc.utf8_length(column)).as_py() or 0) + (
                    pc.sum(pc.count_substring_regex(column, _ASTRAL)).as_py() or 0)
            counts = self.values.get(name)
            if counts is not None:
                for item in pc.value_counts(column).to_pylist():
                    if item["values"] is not None:
                        counts[item["values"]] += item["counts"]
                if column.null_count:
                    counts[None] += column.null_count
                if len(counts) > self.max_values:
                    self.values[name] = None  # not low-cardinality: no per-value counts
        self._take_sample(batch)
        self.rows += batch.num_rows

    def _range(self, name: str, kind: str, column: pa.Array) -> None:
        """Widen the (min, max) of an instant, date or time column, in the compared form."""
        if kind == "date":
            low, high = (v.isoformat() if v is not None else None
                         for v in pc.min_max(column).as_py().values())
        else:
            unit = _NS[column.type.unit]
            found = pc.min_max(column.cast(pa.int64())).as_py()
            low, high = (_stored(found[k] * unit) if found[k] is not None else None
                         for k in ("min", "max"))
        if low is None:
            return
        seen = self.ranges[name]
        self.ranges[name] = (low, high) if seen is None else (min(seen[0], low),
                                                              max(seen[1], high))

    def _sum(self, name: str, kind: str, column: pa.Array) -> None:
        if kind == "float":
            self.sums[name] += pc.sum(column).as_py() or 0.0
            self.magnitude[name] += pc.sum(pc.abs(column)).as_py() or 0.0
        elif kind == "int":  # as decimal(38, 0): an int64 sum of a batch may overflow
            total = pc.sum(column.cast(pa.decimal128(38, 0))).as_py()
            self.sums[name] += int(total) if total is not None else 0
        else:
            total = pc.sum(column).as_py()
            self.sums[name] += total if total is not None else Decimal(0)

    def _skip(self) -> None:
        """Reservoir sampling, Li's algorithm L: jump straight to the next row to keep."""
        if self.sample_rows <= 0:
            self._next = -1
            return
        self._weight *= math.exp(math.log(self._rng.random() or 1e-300) / self.sample_rows)
        if self._weight >= 1.0:
            self._next += 1
            return
        self._next += int(math.log(self._rng.random() or 1e-300)
                          / math.log(1 - self._weight)) + 1

    def _take_sample(self, batch: pa.RecordBatch) -> None:
        start, end = self.rows, self.rows + batch.num_rows
        position = start
        while len(self.sample) < self.sample_rows and position < end:  # filling up first
            self.sample.append((position, _row(batch, position - start)))
            position += 1
        while 0 <= self._next < end:  # then a row replaces a random one, now and then
            self.sample[self._rng.randrange(self.sample_rows)] = (
                self._next, _row(batch, self._next - start))
            self._skip()


def _row(batch: pa.RecordBatch, index: int) -> dict[str, Any]:
    """One row, each value in the form it is compared in."""
    one = batch.slice(index, 1)
    return {name: _canonical(one.schema.field(name).type, column, 0)
            for name, column in zip(one.schema.names, one.columns, strict=True)}


def _canonical(t: pa.DataType, column: pa.Array, index: int) -> Any:
    if not column[index].is_valid:
        return None
    kind = kind_of(t)
    if kind == "instant":
        raw = column.cast(pa.int64())[index].as_py()
        return _stored(raw * _NS[t.unit])
    if kind == "clock":
        return _stored(column.cast(pa.int64() if t.bit_width == 64 else pa.int32())[index]
                       .as_py() * _NS[t.unit])
    if kind == "uuid":
        storage = column.storage if isinstance(column, pa.ExtensionArray) else column
        return str(uuid.UUID(bytes=storage[index].as_py()))
    if kind == "date":
        return column[index].as_py().isoformat()
    if kind == "other":
        return None
    return column[index].as_py()


def _stored(ns: int) -> int:
    """Nanoseconds as the table stores them: rounded half-up to 100 ns (``datetime2(7)``,
    ``datetimeoffset(7)``, ``time(7)``), as a load rounds them."""
    return (ns + 50) // 100 * 100


def _same(expected: Any, found: Any) -> bool:
    if isinstance(expected, float) and isinstance(found, float):
        return expected == found or (math.isnan(expected) and math.isnan(found))
    return bool(expected == found)


# -- comparing ---------------------------------------------------------------------------

def verify_table(source: Any, target: Target, *, source_options: SourceOptions | None = None,
                 keys: Sequence[str] = (), sample_rows: int = DEFAULT_SAMPLE_ROWS,
                 max_values: int = DEFAULT_MAX_VALUES,
                 progress: Callable[[int], Any] | None = None) -> VerifyReport:
    """Compare ``target``'s table with ``source`` (see the module for what is compared).

    :param source: what was loaded: a path, glob, list, shard or Arrow data, as
        :func:`engine.transfer.transfer` takes it.
    :param target: the connection and the table.
    :param source_options: the columns, renames and format the load used.
    :param keys: integer, text or decimal columns that identify a row, to look sample rows
        up by (default: all the row's integer and text values, else its decimal, date,
        float and boolean values).
    :param sample_rows: source rows to compare whole (0: none).
    :param max_values: columns with at most this many distinct values are counted per value
        (at most :data:`MAX_VALUES`).
    :param progress: called with the source rows read so far after every batch.
    :raises ConfigurationError: the table does not exist, a key is not a column of the
        source or not of a key kind, ``max_values`` is too large, or the source cannot be
        opened.
    :raises DatabaseError: a query failed.
    """
    if max_values > MAX_VALUES:
        raise ConfigurationError(
            f"max_values {max_values:,} is too large: the values of a column are bound as "
            f"parameters of one query, and Azure SQL takes at most 2,100; give at most "
            f"{MAX_VALUES:,}")
    opened = open_source(source, source_options)
    kinds = {f.name: kind_of(f.type) for f in opened.schema}
    unknown = [k for k in keys if k not in kinds]
    if unknown:
        raise ConfigurationError(f"key column(s) {unknown} are not columns of the source "
                                 f"(its columns: {list(kinds)})")
    unkeyed = [f"{k} ({opened.schema.field(k).type})" for k in keys
               if kinds[k] not in KEY_KINDS]
    if unkeyed:
        raise ConfigurationError(
            f"key column(s) {', '.join(unkeyed)} cannot be keys: a key must be an integer, "
            "text or decimal column; name such a column, or leave the key out to look "
            "sample rows up by all their values")
    table = TableName.parse(target.table)
    factory = ConnectionFactory(target.connection)
    try:
        conn = factory.connect()
        try:
            scales = {f.name: f.type.scale for f in opened.schema
                      if kinds[f.name] == "decimal"}
            db = TableFacts(conn, table, kinds, scales)
            present = db.columns()
            if present is None:
                raise ConfigurationError(
                    f"table {table} does not exist in {factory.where}; check --table (and "
                    "--database), or load it first")
            facts = SourceFacts(opened.schema, sample_rows=sample_rows, max_values=max_values)
            for batch in opened.batches():
                facts.add(batch.data)
                if progress is not None:
                    progress(facts.rows)
            return _compare(db, facts, present, keys)
        finally:
            close_quietly(conn)
    finally:
        factory.close()


def _compare(db: TableFacts, facts: SourceFacts, present: Sequence[str],
             keys: Sequence[str]) -> VerifyReport:
    have = {c.casefold(): c for c in present}
    missing = [n for n in facts.kinds if n.casefold() not in have]
    names = [n for n in facts.kinds if n.casefold() in have]
    out = [Difference(n, "column", "present", "missing") for n in missing]
    notes = [f"{n}: {facts.schema.field(n).type} values are counted, not compared"
             for n in names if facts.kinds[n] == "other"]
    scales = {n: facts.schema.field(n).type.scale
              for n in names if facts.kinds[n] == "decimal"}
    totals = iter(db.totals(names, scales))
    checks = 1
    found_rows = int(next(totals))
    if found_rows != facts.rows:
        out.append(Difference(None, "rows", facts.rows, found_rows))
    nulls = {}
    for name in names:
        kind = facts.kinds[name]
        checks += 1
        count = int(next(totals))
        nulls[name] = found_rows - count
        if count != facts.non_null[name]:
            out.append(Difference(name, "non-null values", facts.non_null[name], count))
        if kind in ("int", "decimal", "float"):
            checks += 1
            out.extend(_sum_difference(name, kind, facts, next(totals)))
        if kind == "text":
            checks += 1
            units = int(next(totals) or 0) // 2
            if units != facts.lengths[name]:
                out.append(Difference(name, "total length (UTF-16 code units)",
                                      facts.lengths[name], units))
        if kind in RANGED:
            checks += 1
            low, high = (from_table(kind, next(totals)) for _ in range(2))
            expected = facts.ranges[name] or (None, None)
            if (low, high) != expected:
                out.append(Difference(name, "min/max", readable(kind, expected),
                                      readable(kind, (low, high))))
    for name in names:
        counts = facts.values.get(name)
        if counts is None:
            continue
        checks += 1
        found, more, more_rows = db.value_counts(name, counts)
        found[None] = nulls[name]
        for value in sorted(set(counts) | set(found), key=repr):
            if counts.get(value, 0) != found.get(value, 0):
                out.append(Difference(name, f"rows with value {value!r}", counts.get(value, 0),
                                      found.get(value, 0)))
        if more:
            out.append(Difference(name, f"rows with {more:,} more values not in the source",
                                  0, more_rows))
    notes += [f"{n}: the source holds nanoseconds and the table 100 ns: its values are "
              "compared after rounding them half-up to 100 ns, as the load does"
              for n in names if facts.kinds[n] in ("instant", "clock")
              and facts.schema.field(n).type.unit == "ns"]
    sample = [row for _, row in sorted(facts.sample, key=lambda s: s[0])]
    seen, sampled, note = _compare_sample(db, facts, sample, names, missing, keys)
    out += seen
    notes += [note] if note else []
    return VerifyReport(str(db.table), facts.rows, checks + sampled, sampled, tuple(out),
                        tuple(notes), len(sample) - sampled)


def _compare_sample(db: TableFacts, facts: SourceFacts, sample: list[dict[str, Any]],
                    names: Sequence[str], missing: Sequence[str],
                    keys: Sequence[str]) -> tuple[list[Difference], int, str | None]:
    """Compare the sample rows whole: (differences, rows compared, a note when some or all
    rows could not be)."""
    if not sample:
        return [], 0, None
    if any(k in missing for k in keys):
        return [], 0, (f"{len(sample):,} sample rows not compared: key column(s) "
                       f"{[k for k in keys if k in missing]} are not in the table")
    compared = [n for n in names if facts.kinds[n] != "other"]
    lookup = list(keys) or [n for n in compared if facts.kinds[n] in ("int", "text")] or \
        sorted((n for n in compared if facts.kinds[n] in LOOKUP_KINDS),
               key=lambda n: LOOKUP_KINDS.index(facts.kinds[n]))
    if not lookup:
        return [], 0, (f"{len(sample):,} sample rows not compared: no integer, text, decimal, "
                       "date, float or boolean column to look them up by; only counts, "
                       "sums and ranges were compared")
    table_rows = db.matching(sample, lookup, compared)
    out: list[Difference] = []
    note = None
    if keys:
        index = _index(table_rows, keys)
        for row in sample:
            rows = index.get(_values(row, keys), [])
            out += _row_differences(db, row, rows, compared, _label(row, keys))
        if any(len(rows) > 1 for rows in index.values()):
            note = (f"key {list(keys)} is not unique in the table: a sample row is compared "
                    "with the nearest of the rows with its key")
        return out, len(sample), note
    whole = {tuple(r[n] for n in compared) for r in table_rows}
    unmatched = [row for row in sample if tuple(row[n] for n in compared) not in whole]
    if unmatched:  # the table's rows with the same first value, to say what differs
        near = _index(db.matching(unmatched, lookup[:1], compared, per_row=50), lookup[:1])
        for row in unmatched:
            out += _row_differences(db, row, near.get(_values(row, lookup[:1]), []), compared,
                                    _label(row, lookup[:1]))
    return out, len(sample), note


def _values(row: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """``row``'s values on ``names`` as the server matches them (text without case or
    trailing spaces, as under Azure SQL's default collation)."""
    return tuple(v.casefold().rstrip() if isinstance(v, str) else v
                 for v in (row[n] for n in names))


def _index(rows: Iterable[dict[str, Any]], names: Sequence[str]) \
        -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(_values(r, names), []).append(r)
    return out


def _row_differences(db: TableFacts, row: dict[str, Any], rows: list[dict[str, Any]],
                     compared: Sequence[str], label: str) -> list[Difference]:
    if not rows:
        return [Difference(None, f"sample row {label}", "present", "missing")]
    if any(_differing(row, r, compared) == [] for r in rows):
        return []
    nearest = min(rows, key=lambda r: len(_differing(row, r, compared)))
    return [Difference(n, f"sample row {label}", readable(db.kinds[n], row[n]),
                       readable(db.kinds[n], nearest[n]))
            for n in _differing(row, nearest, compared)]


def _sum_difference(name: str, kind: str, facts: SourceFacts, raw: Any) -> list[Difference]:
    expected = facts.sums[name]
    found: Any
    if kind == "float":
        found = float(raw) if raw is not None else 0.0
        bound = _FLOAT_TOLERANCE * max(1.0, facts.magnitude[name])
        ok = abs(found - expected) <= bound or (math.isnan(found) and math.isnan(expected))
    else:
        found = Decimal(str(raw)) if raw is not None else Decimal(0)
        if kind == "int":
            found = int(found)
        ok = found == expected
    return [] if ok else [Difference(name, "sum", expected, found)]


def _differing(row: dict[str, Any], found: dict[str, Any], names: Iterable[str]) -> list[str]:
    return [n for n in names if not _same(row[n], found[n])]


def _label(row: dict[str, Any], names: Sequence[str]) -> str:
    return "(" + ", ".join(f"{n}={row[n]}" if isinstance(row[n], Decimal) else f"{n}={row[n]!r}"
                           for n in names) + ")"


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return str(value)
    return repr(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return str(value)
