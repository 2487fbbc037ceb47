"""TDS bulk load: ``INSERT BULK`` (a SQL batch) then a BULK_LOAD (0x07) message of rows.

bcp, SqlBulkCopy, python-tds ``copy_to`` and mssql-python ``bulkcopy`` announce the
target and its columns with ``INSERT BULK t (c type, ...) [WITH (...)]``, then stream
COLMETADATA + ROW/NBCROW tokens + DONE in one packet-type-0x07 message. The rows go in
through the same checked INSERT path as parameter arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azsql_emulator.errors import SqlError
from azsql_emulator.tds.constants import TokenType
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.resultset import decode_colmetadata, decode_row

if TYPE_CHECKING:
    from azsql_emulator.sql.engine import SqlSession

_INSERT_BULK = re.compile(r"^\s*insert\s+bulk\s+(?P<table>(?:\[[^\]]+\]|[^\s(.]+)"
                          r"(?:\.(?:\[[^\]]+\]|[^\s(.]+)){0,2})\s*(?:\((?P<cols>.*)\))?"
                          r"\s*(?:with\s*\((?P<opts>[^)]*)\))?\s*;?\s*$",
                          re.IGNORECASE | re.DOTALL)
_ROW_TOKENS = frozenset({TokenType.ROW, TokenType.NBCROW})
_COLUMN_NAME = re.compile(r"^\s*(\[(?:[^\]]|\]\])+\]|\"[^\"]+\"|\S+)")


@dataclass(frozen=True)
class BulkTarget:
    """What an ``INSERT BULK`` announced: the table, its listed columns and options."""

    table: str
    columns: list[str]
    options: str


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


def parse_insert_bulk(text: str) -> BulkTarget | None:
    """Parse ``INSERT BULK``; None when ``text`` is not one.

    >>> parse_insert_bulk("insert bulk [dbo].[t] ([a] Int, [b] NVarChar(20) COLLATE X)").columns
    ['[a]', '[b]']
    """
    m = _INSERT_BULK.match(text)
    if not m:
        return None
    columns = []
    for part in _split_top_level(m.group("cols") or ""):
        name = _COLUMN_NAME.match(part)
        if name:
            columns.append(name.group(1))
    return BulkTarget(m.group("table"), columns, (m.group("opts") or "").strip())


def load_rows(sql: SqlSession, target: BulkTarget, payload: bytes) -> int:
    """Insert the rows of a BULK_LOAD payload; return how many were inserted.

    A bulk load is one statement: any bad row fails the whole load (nothing is applied),
    as SQL Server does for a batch without ``ROWS_PER_BATCH`` splitting.

    :raises SqlError: the first row's error, or a mismatch between the announced columns
        and the COLMETADATA sent.
    :raises ProtocolError: the token stream is malformed.
    """
    meta, pos = decode_colmetadata(payload, 0)
    if meta.columns is None:
        raise ProtocolError("BULK_LOAD message without column metadata")
    columns = meta.columns
    rows: list[list[object]] = []
    n = len(payload)
    while pos < n and payload[pos] in _ROW_TOKENS:
        row, pos = decode_row(payload, pos, columns)
        rows.append(row.values)
    # What follows is a DONE; clients differ on its size (mssql-python sends the 4-byte
    # row count of TDS 7.1), and nothing in it matters here.
    if pos < n and payload[pos] != TokenType.DONE:
        raise ProtocolError(f"unexpected token 0x{payload[pos]:02x} in a bulk load at byte {pos}")
    names = target.columns or [c.name for c in columns]
    if len(names) != len(columns):
        raise SqlError(4819, f"Cannot bulk load. The bulk data stream sent {len(columns)} "
                             f"columns, but INSERT BULK listed {len(names)}.")
    if not rows:
        return 0
    placeholders = ", ".join(f"@P{i + 1}" for i in range(len(names)))
    # The client wrote this table and these names in its own INSERT BULK; it runs with
    # its own permissions, as if it had sent the INSERT itself.
    stmt = f"INSERT INTO {target.table} ({', '.join(names)}) VALUES ({placeholders})"  # noqa: S608
    sql.execute_many_atomic(stmt, rows)
    return len(rows)
