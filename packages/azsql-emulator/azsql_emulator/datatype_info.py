"""``sp_datatype_info_100``: what Microsoft's driver answers ``SQLGetTypeInfo`` with.

pyodbc asks for ``SQL_TYPE_TIMESTAMP`` (93) when it connects and binds every datetime
parameter with the first row's ``PRECISION`` (the ODBC ``COLUMN_SIZE``): SQL Server's first
row is ``datetime`` (23), so a Python datetime travels with milliseconds. With no row pyodbc
assumes 19 and sends whole seconds. The emulator answers the date and time types SQL
Server lists for 93 in its order; for other types it answers with no rows, which the driver
accepts (it only caches what it gets).

>>> [row[0] for row in datatype_info(93).rows]
['datetime', 'smalldatetime', 'datetime2']
>>> datatype_info(12).rows
[]
"""

from __future__ import annotations

from azsql_emulator.sql.results import StatementResult
from azsql_emulator.sqltypes import ColumnInfo, SqlKind, SqlType

__all__ = ["COLUMNS", "datatype_info"]

_SMALLINT = SqlType(SqlKind.SMALLINT)
_INT = SqlType(SqlKind.INT)
_SYSNAME = SqlType(SqlKind.NVARCHAR, 128)
_TEXT32 = SqlType(SqlKind.VARCHAR, 32)

# The result set's columns, in SQL Server's order and types (ODBC 3 names in comments).
COLUMNS = [ColumnInfo(name, t, True) for name, t in (
    ("TYPE_NAME", _SYSNAME), ("DATA_TYPE", _SMALLINT),
    ("PRECISION", _INT),  # COLUMN_SIZE
    ("LITERAL_PREFIX", _TEXT32), ("LITERAL_SUFFIX", _TEXT32), ("CREATE_PARAMS", _TEXT32),
    ("NULLABLE", _SMALLINT), ("CASE_SENSITIVE", _SMALLINT), ("SEARCHABLE", _SMALLINT),
    ("UNSIGNED_ATTRIBUTE", _SMALLINT), ("MONEY", _SMALLINT),  # FIXED_PREC_SCALE
    ("AUTO_INCREMENT", _SMALLINT), ("LOCAL_TYPE_NAME", _SYSNAME),
    ("MINIMUM_SCALE", _SMALLINT), ("MAXIMUM_SCALE", _SMALLINT),
    ("SQL_DATA_TYPE", _SMALLINT), ("SQL_DATETIME_SUB", _SMALLINT),
    ("NUM_PREC_RADIX", _INT), ("INTERVAL_PRECISION", _SMALLINT), ("USERTYPE", _SMALLINT))]

SQL_TYPE_TIMESTAMP = 93
SQL_DATETIME = 9  # SQL_DATA_TYPE of every date/time type; SQL_DATETIME_SUB 3 = timestamp

# name, COLUMN_SIZE, MAXIMUM_SCALE, USERTYPE (as SQL Server lists them for 93)
_TIMESTAMPS = (("datetime", 23, 3, 12), ("smalldatetime", 16, 0, 22), ("datetime2", 27, 7, 0))


def datatype_info(data_type: int) -> StatementResult:
    """The ``sp_datatype_info_100 @data_type`` result set.

    :param data_type: the ODBC SQL type asked for (0 = all).
    """
    rows: list[tuple] = []
    if data_type in (SQL_TYPE_TIMESTAMP, 0):
        rows = [(name, SQL_TYPE_TIMESTAMP, size, "'", "'", None, 1, 0, 3, None, 0, None, name,
                 0 if scale else None, scale if scale else None, SQL_DATETIME, 3, None, None,
                 usertype) for name, size, scale, usertype in _TIMESTAMPS]
    return StatementResult(COLUMNS, rows, len(rows))
