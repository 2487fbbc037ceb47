"""The metadata batch SqlBulkCopy-style clients send before ``INSERT BULK``.

.NET SqlBulkCopy and mssql-python's ``bulkcopy`` ask for the destination's columns with
one batch of dynamic SQL (``sys.all_columns``, ``sp_executesql`` with an OUTPUT
parameter, ``SET FMTONLY ON; EXEC(N'SELECT ...')``, ``sp_tablecollations_100``) that the
emulator's T-SQL subset cannot run. It is recognised by its shape and answered with the
result sets SQL Server returns: @@TRANCOUNT, the table's column metadata (no rows), and
the per-column collations.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from azsql_emulator.sqltypes import ColumnInfo, SqlKind, SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION

if TYPE_CHECKING:
    from azsql_emulator.sql.engine import SqlSession, StatementResult

_TABLE = re.compile(r"sp_tablecollations_100\s+N?'((?:[^']|'')+)'", re.IGNORECASE)
_COLLATION_NAME = "SQL_Latin1_General_CP1_CI_AS"
_CHAR_KINDS = {SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR}
_COLLATION_COLUMNS = [
    ColumnInfo("colid", SqlType(SqlKind.INT), False),
    ColumnInfo("name", SqlType(SqlKind.NVARCHAR, 128), False),
    ColumnInfo("tds_collation_100", SqlType(SqlKind.BINARY, 5), True),
    ColumnInfo("collation_100", SqlType(SqlKind.NVARCHAR, 128), True),
]


def bulk_metadata_table(text: str) -> str | None:
    """The destination table of a bulk-copy metadata batch, or None for other batches."""
    if "fmtonly on" not in text.lower():
        return None
    m = _TABLE.search(text)
    return m.group(1).replace("''", "'") if m else None


def answer(sql: SqlSession, table: str) -> list[StatementResult]:
    """The result sets SQL Server returns for the metadata batch of ``table``."""
    from azsql_emulator.sql.engine import StatementResult

    trancount = sql.execute("SELECT @@TRANCOUNT")
    # The client named this table in its own batch; 208 when it does not exist.
    shape = sql.execute(f"SELECT * FROM {table} WHERE 1 = 0")  # noqa: S608
    if shape[-1].error is not None:
        return [*trancount, *shape]
    columns = shape[-1].columns or []
    rows = []
    for colid, col in enumerate(columns, start=1):
        textual = col.type.kind in _CHAR_KINDS
        rows.append((colid, col.name, DEFAULT_COLLATION if textual else None,
                     _COLLATION_NAME if textual else None))
    return [*trancount, StatementResult(columns=columns, rows=[], rowcount=None),
            StatementResult(columns=_COLLATION_COLUMNS, rows=rows, rowcount=len(rows))]
