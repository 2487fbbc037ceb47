"""TDS bulk load: ``INSERT BULK`` (a SQL batch) then a BULK_LOAD (0x07) message of rows.

bcp, SqlBulkCopy, python-tds ``copy_to`` and mssql-python ``bulkcopy`` announce the
target and its columns with ``INSERT BULK t (c type, ...) [WITH (...)]``, then stream
COLMETADATA + ROW/NBCROW tokens + DONE in one packet-type-0x07 message. The rows go in
through the same checked INSERT path as parameter arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.tds.bulk_rows import decode_rows_columnar
from azsql_emulator.tds.constants import TokenType
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.resultset import decode_colmetadata, decode_row

if TYPE_CHECKING:
    from azsql_emulator.sql.catalog import TableMeta
    from azsql_emulator.sql.engine import SqlSession
    from azsql_emulator.tds.columns import WireColumn
    from azsql_emulator.tds.resultset import Column

_INSERT_BULK = re.compile(r"^\s*insert\s+bulk\s+(?P<table>(?:\[(?:[^\]]|\]\])+\]|[^\s(.\[]+)"
                          r"(?:\s*\.\s*(?:\[(?:[^\]]|\]\])+\]|[^\s(.\[]+)){0,2})\s*",
                          re.IGNORECASE)
_WITH = re.compile(r"^with\s*\(", re.IGNORECASE)
_ROW_TOKENS = frozenset({TokenType.ROW, TokenType.NBCROW})
_COLUMN_NAME = re.compile(r"^\s*(\[(?:[^\]]|\]\])+\]|\"[^\"]+\"|[^\s\[\"]+)")
# The hints of INSERT BULK ... WITH (...), as bcp -h and SqlBulkCopyOptions send them.
_FLAG_HINTS = frozenset({"TABLOCK", "CHECK_CONSTRAINTS", "FIRE_TRIGGERS", "KEEP_NULLS",
                         "KEEP_IDENTITY"})
_VALUE_HINTS = frozenset({"ROWS_PER_BATCH", "KILOBYTES_PER_BATCH"})


@dataclass(frozen=True)
class BulkTarget:
    """What an ``INSERT BULK`` announced: the table, its listed columns and options.

    :param table: the table as written.
    :param columns: the listed column names as written (brackets kept), in the order the
        BULK_LOAD's COLMETADATA sends them.
    :param options: the text inside ``WITH (...)``.
    :param hints: the recognised hints: flag hints map to True, ``ROWS_PER_BATCH`` and
        ``KILOBYTES_PER_BATCH`` to their number, ``ORDER`` to its column list text.
    """

    table: str
    columns: list[str]
    options: str
    hints: dict[str, object] = field(default_factory=dict)


def _split_top_level(text: str) -> list[str]:
    parts, depth, start, in_bracket = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == "[":
            in_bracket = True
        elif ch == "]":
            in_bracket = False
        elif not in_bracket and ch == "(":
            depth += 1
        elif not in_bracket and ch == ")":
            depth -= 1
        elif not in_bracket and depth == 0 and ch == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (x.strip() for x in parts) if p]


def _parenthesised(text: str, pos: int) -> int:
    """The index just past the ``)`` that closes the ``(`` at ``text[pos]``; -1 if none.

    Brackets (``[a)b]``) and quoted strings (``N'x)'``) do not count.
    """
    depth, i, n = 0, pos, len(text)
    while i < n:
        ch = text[i]
        if ch == "[":
            close = text.find("]", i + 1)
            while close != -1 and text[close + 1:close + 2] == "]":  # ]] inside a name
                close = text.find("]", close + 2)
            if close == -1:
                return -1
            i = close
        elif ch == "'":
            close = text.find("'", i + 1)
            while close != -1 and text[close + 1:close + 2] == "'":
                close = text.find("'", close + 2)
            if close == -1:
                return -1
            i = close
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _hints(options: str) -> dict[str, object]:
    hints: dict[str, object] = {}
    for part in _split_top_level(options):
        word = re.match(r"^\s*(\w+)", part)
        if not word:
            raise SqlError(102, f"Incorrect syntax near '{part[:40]}' in INSERT BULK ... WITH.", 15)
        name = word.group(1).upper()
        rest = part[word.end():].strip()
        if name in _FLAG_HINTS and not rest:
            hints[name] = True
        elif name in _VALUE_HINTS and re.fullmatch(r"=\s*\d+", rest):
            hints[name] = int(rest.lstrip("= \t"))
        elif name == "ORDER" and rest.startswith("(") and rest.endswith(")"):
            hints[name] = rest[1:-1].strip()
        else:
            raise SqlError(102, f"Incorrect syntax near '{part[:40]}': not a bulk-load hint "
                                "(TABLOCK, CHECK_CONSTRAINTS, FIRE_TRIGGERS, KEEP_NULLS, "
                                "KEEP_IDENTITY, ORDER(...), ROWS_PER_BATCH = n, "
                                "KILOBYTES_PER_BATCH = n).", 15)
    return hints


def parse_insert_bulk(text: str) -> BulkTarget | None:
    """Parse ``INSERT BULK``; None when ``text`` is not one.

    :raises SqlError: 102 when it is one but the column list or hints do not parse.

    >>> t = parse_insert_bulk("insert bulk [dbo].[t] ([a] Int, [b] NVarChar(20) COLLATE X) "
    ...                       "with (TABLOCK, ORDER([a] ASC))")
    >>> t.columns, t.hints
    (['[a]', '[b]'], {'TABLOCK': True, 'ORDER': '[a] ASC'})
    """
    m = _INSERT_BULK.match(text)
    if not m:
        return None
    table = re.sub(r"\s*\.\s*", ".", m.group("table"))
    rest = text[m.end():].strip().rstrip(";").strip()
    columns: list[str] = []
    if rest.startswith("("):
        end = _parenthesised(rest, 0)
        if end < 0:
            raise SqlError(102, "Incorrect syntax near 'INSERT BULK': unbalanced column list.", 15)
        for part in _split_top_level(rest[1:end - 1]):
            name = _COLUMN_NAME.match(part)
            if name:
                columns.append(name.group(1))
        rest = rest[end:].strip()
    options = ""
    if rest:
        with_clause = _WITH.match(rest)
        end = _parenthesised(rest, with_clause.end() - 1) if with_clause else -1
        if end < 0 or rest[end:].strip():
            raise SqlError(102, f"Incorrect syntax near '{rest[:40]}' after INSERT BULK.", 15)
        options = rest[with_clause.end():end - 1].strip()  # type: ignore[union-attr]
    return BulkTarget(table, columns, options, _hints(options))


def _unquote(name: str) -> str:
    if name.startswith("[") and name.endswith("]"):
        return name[1:-1].replace("]]", "]")
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1]
    return name


def resolve_target(sql: SqlSession, target: BulkTarget) -> TableMeta:
    """The table an ``INSERT BULK`` names, checked as SQL Server checks it before any row.

    :raises SqlError: 208 unknown table, 207 unknown column, 229 no INSERT permission.
    """
    from azsql_emulator.sql.translate import resolve_table

    table = resolve_table(sql.env(), exp.to_table(target.table, dialect="tsql"))
    sql.check_write(table, "INSERT")
    for name in target.columns:
        if table.column(_unquote(name)) is None:
            raise SqlError(207, f"Invalid column name '{_unquote(name)}'.")
    return table


@dataclass
class BulkRows:
    """The rows of one BULK_LOAD message, decoded row-wise or (natively) column-wise.

    :param columns: the message's COLMETADATA.
    :param count: how many rows.
    :param payload: the message, and ``start``: where its first row token is.
    :param wire: per column its values (column-wise), or None.
    """

    columns: list[Column]
    count: int
    payload: bytes
    start: int
    wire: list[WireColumn] | None = None
    _rows: list[list[object]] | None = None
    applied_columnar: bool = False  # set by apply_rows when the column-wise INSERT ran

    @property
    def rows(self) -> list[list[object]]:
        """Per row its values, decoded row-wise (once)."""
        if self._rows is None:
            self._rows, _ = _decode_rows(self.payload, self.start, self.columns)
        return self._rows


def _decode_rows(payload: bytes, pos: int, columns: list[Column]
                 ) -> tuple[list[list[object]], int]:
    rows: list[list[object]] = []
    n = len(payload)
    while pos < n and payload[pos] in _ROW_TOKENS:
        row, pos = decode_row(payload, pos, columns)
        rows.append(row.values)
    return rows, pos


def decode_bulk_load(payload: bytes, *, columnar: bool = True) -> BulkRows:
    """Decode a BULK_LOAD message: COLMETADATA, ROW/NBCROW tokens, DONE.

    Column-wise (native ``decode_rows``) when every column has a type it takes and every
    row is a plain ROW; row-wise otherwise.

    :param payload: the message.
    :param columnar: allow the column-wise decoder.
    :raises ProtocolError: the token stream is malformed.
    """
    meta, pos = decode_colmetadata(payload, 0)
    if meta.columns is None:
        raise ProtocolError("BULK_LOAD message without column metadata")
    columns = meta.columns
    if columnar:
        decoded = decode_rows_columnar(payload, pos, [c.type_info for c in columns])
        if decoded is not None:
            count, end, wire = decoded
            _check_end(payload, end)
            return BulkRows(columns, count, payload, pos, wire=wire)
    rows, end = _decode_rows(payload, pos, columns)
    _check_end(payload, end)
    return BulkRows(columns, len(rows), payload, pos, _rows=rows)


def _check_end(payload: bytes, pos: int) -> None:
    # What follows is a DONE; clients differ on its size (mssql-python sends the 4-byte
    # row count of TDS 7.1), and nothing in it matters here.
    if pos < len(payload) and payload[pos] != TokenType.DONE:
        raise ProtocolError(f"unexpected token 0x{payload[pos]:02x} in a bulk load at byte {pos}")


def _default_value(sql: SqlSession, default_sql: str) -> object:
    result = sql.execute(f"SELECT {default_sql}")[-1]  # the table's own DEFAULT text
    if result.error is not None:
        raise result.error
    return result.rows[0][0]


def _apply_defaults(sql: SqlSession, table: TableMeta, names: list[str],
                    rows: list[list[object]]) -> None:
    """Without KEEP_NULLS, SQL Server gives a NULL sent for a column with a DEFAULT the
    default instead (evaluated per row, so NEWID() and the like differ row by row)."""
    for i, name in enumerate(names):
        col = table.column(_unquote(name))
        if col is None or col.default_sql is None:
            continue
        constant = _CONSTANT_DEFAULT.match(col.default_sql) is not None
        cached: list[object] = []
        for row in rows:
            if row[i] is None:
                if not constant:
                    row[i] = _default_value(sql, col.default_sql)
                    continue
                if not cached:
                    cached.append(_default_value(sql, col.default_sql))
                row[i] = cached[0]


_CONSTANT_DEFAULT = re.compile(r"^\(*\s*(?:[-+]?\d+(?:\.\d*)?|N?'(?:[^']|'')*'|NULL)\s*\)*$",
                               re.IGNORECASE)


def apply_rows(sql: SqlSession, target: BulkTarget, load: BulkRows) -> int:
    """Insert a decoded BULK_LOAD's rows into ``target``; return how many were inserted.

    A bulk load is one statement: any bad row fails the whole load (nothing is applied),
    as SQL Server does for a batch without ``ROWS_PER_BATCH`` splitting. Inside the
    session's transaction it commits or rolls back with it.

    :raises SqlError: the first row's error (2627, 515, 2628 ... naming the column), or a
        mismatch between the announced columns and the COLMETADATA sent (4819).
    """
    table = resolve_target(sql, target)
    names = target.columns or [f"[{c.name}]" for c in load.columns]
    if len(names) != len(load.columns):
        raise SqlError(4819, f"Cannot bulk load. The bulk data stream sent {len(load.columns)} "
                             f"columns, but INSERT BULK listed {len(names)}.")
    if not load.count:
        return 0
    placeholders = ", ".join(f"@P{i + 1}" for i in range(len(names)))
    # The client wrote this table and these names in its own INSERT BULK; it runs with
    # its own permissions, as if it had sent the INSERT itself.
    stmt = f"INSERT INTO {target.table} ({', '.join(names)}) VALUES ({placeholders})"  # noqa: S608
    keep_nulls = bool(target.hints.get("KEEP_NULLS"))
    defaulted = not keep_nulls and any(
        (c := table.column(_unquote(n))) is not None and c.default_sql is not None
        for n in names)
    if load.wire is not None and not defaulted and sql.insert_columns(stmt, load.wire,
                                                                      load.count):
        load.applied_columnar = True
        return load.count
    rows = load.rows
    if defaulted:
        _apply_defaults(sql, table, names, rows)
    sql.execute_many_atomic(stmt, rows)
    return load.count


def load_rows(sql: SqlSession, target: BulkTarget, payload: bytes) -> int:
    """Decode and insert the rows of a BULK_LOAD payload; return how many were inserted.

    :raises SqlError: see :func:`apply_rows`.
    :raises ProtocolError: the token stream is malformed.
    """
    return apply_rows(sql, target, decode_bulk_load(payload))
