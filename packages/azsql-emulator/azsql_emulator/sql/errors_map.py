"""SQL Server errors the SQL engine raises, worded as SQL Server words them, and DuckDB mapping.

Whether an error ends only its statement or the whole batch is decided here, in
:func:`aborts_batch`, on the error number alone.
"""

from __future__ import annotations

import re

import duckdb

from azsql_emulator.errors import SqlError

UNSUPPORTED = 50100  # a construct the emulator cannot translate
INTERNAL = 50101  # a DuckDB error with no SQL Server equivalent

# Compile-time errors: SQL Server stops the whole batch, not only the statement.
_BATCH_ABORTING = frozenset({102, 105, 109, 110, 137, 156, 207, 208, 213, 911, 2812, 4060,
                             UNSUPPORTED, 1205, 3998})


def aborts_batch(err: SqlError) -> bool:
    """True when ``err`` ends the batch (compile errors); False when the batch goes on.

    :param err: the error a statement raised.
    """
    return err.number in _BATCH_ABORTING


def quote_value(value: object) -> str:
    """A value as SQL Server prints it inside error messages (no quotes for numbers).

    :param value: a Python value.
    """
    if value is None:
        return "<NULL>"
    if isinstance(value, bytes):
        return "0x" + value.hex().upper()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def syntax_error(near: str) -> SqlError:
    """102 Incorrect syntax near 'x'.

    :param near: the token SQL Server would name.
    """
    return SqlError(102, f"Incorrect syntax near '{near}'.")


def unsupported(construct: str, line: int | None = None) -> SqlError:
    """A construct the emulator cannot run, named with its line.

    :param construct: e.g. ``CREATE PROCEDURE``.
    :param line: 1-based line in the batch.
    """
    where = f" (at line {line})" if line else ""
    return SqlError(UNSUPPORTED, f"The emulator does not support {construct}{where}.")


def invalid_object(name: str) -> SqlError:
    """208 Invalid object name.

    :param name: the name as the statement wrote it.
    """
    return SqlError(208, f"Invalid object name '{name}'.")


def invalid_column(name: str) -> SqlError:
    """207 Invalid column name.

    :param name: the column name as written.
    """
    return SqlError(207, f"Invalid column name '{name}'.")


def must_declare(var: str) -> SqlError:
    """137 for an undeclared @variable.

    :param var: the variable including ``@``.
    """
    return SqlError(137, f'Must declare the scalar variable "{var}".', severity=15)


def duplicate_key(kind: str, constraint: str, obj: str, key: tuple) -> SqlError:
    """2627 (PRIMARY KEY / UNIQUE constraint) or 2601 (unique index), class 14.

    :param kind: ``PK``, ``UQ`` or ``UX`` (unique index).
    :param constraint: the constraint or index name.
    :param obj: ``schema.table``.
    :param key: the duplicate key values.
    """
    shown = ", ".join(quote_value(v) for v in key)
    if kind == "UX":
        return SqlError(2601, f"Cannot insert duplicate key row in object '{obj}' with unique "
                              f"index '{constraint}'. The duplicate key value is ({shown}).",
                        severity=14)
    word = "PRIMARY KEY" if kind == "PK" else "UNIQUE KEY"
    return SqlError(2627, f"Violation of {word} constraint '{constraint}'. Cannot insert "
                          f"duplicate key in object '{obj}'. The duplicate key value is ({shown}).",
                    severity=14)


def null_not_allowed(column: str, table: str, operation: str) -> SqlError:
    """515 NULL into a NOT NULL column.

    :param column: the column name.
    :param table: ``db.schema.table``.
    :param operation: ``INSERT`` or ``UPDATE``.
    """
    return SqlError(515, f"Cannot insert the value NULL into column '{column}', table '{table}'; "
                         f"column does not allow nulls. {operation} fails.")


def truncation(table: str, column: str, truncated: str) -> SqlError:
    """2628 String or binary data would be truncated.

    :param table: ``db.schema.table``.
    :param column: the column name.
    :param truncated: the prefix of the value that fits, as SQL Server shows it.
    """
    return SqlError(2628, f"String or binary data would be truncated in table '{table}', column "
                          f"'{column}'. Truncated value: '{truncated}'.")


def overflow(target: str, source: str = "expression") -> SqlError:
    """8115 Arithmetic overflow error converting <source> to data type <target>.

    :param target: the SQL Server type name (``int``, ``numeric``...).
    :param source: ``expression`` or the source type name.
    """
    return SqlError(8115, f"Arithmetic overflow error converting {source} to data type {target}.")


def overflow_small(target: str, value: object) -> SqlError:
    """220 Arithmetic overflow for tinyint/smallint, which SQL Server words differently.

    :param target: ``tinyint`` or ``smallint``.
    :param value: the value that does not fit.
    """
    return SqlError(220, f"Arithmetic overflow error for data type {target}, value = {value}.")


def conversion_failed(source: str, value: str, target: str) -> SqlError:
    """245 Conversion failed when converting the varchar value 'x' to data type int.

    :param source: ``varchar`` or ``nvarchar``.
    :param value: the text that did not convert.
    :param target: the target type name.
    """
    return SqlError(245, f"Conversion failed when converting the {source} value '{value}' to "
                         f"data type {target}.")


def convert_error(source: str, target: str) -> SqlError:
    """8114 Error converting data type <source> to <target>.

    :param source: source type name.
    :param target: target type name.
    """
    return SqlError(8114, f"Error converting data type {source} to {target}.")


def datetime_conversion() -> SqlError:
    """241 for text that is no date or time."""
    return SqlError(241, "Conversion failed when converting date and/or time from character "
                         "string.")


def uuid_conversion() -> SqlError:
    """8169 for text that is no uniqueidentifier."""
    return SqlError(8169, "Conversion failed when converting from a character string to "
                          "uniqueidentifier.")


def implicit_conversion(source: str, target: str) -> SqlError:
    """257 an implicit conversion SQL Server refuses (e.g. varchar to varbinary).

    :param source: source type name.
    :param target: target type name.
    """
    return SqlError(257, f"Implicit conversion from data type {source} to {target} is not "
                         f"allowed. Use the CONVERT function to run this query.")


def already_exists(name: str) -> SqlError:
    """2714 There is already an object named 'x' in the database.

    :param name: the object name.
    """
    return SqlError(2714, f"There is already an object named '{name}' in the database.")


def cannot_drop(name: str, what: str = "table") -> SqlError:
    """3701 Cannot drop the table 'x'.

    :param name: the name as written.
    :param what: ``table``, ``schema`` or ``index``.
    """
    return SqlError(3701, f"Cannot drop the {what} '{name}', because it does not exist or you "
                          f"do not have permission.", severity=11)


def permission_denied(action: str, table: str, database: str, schema: str) -> SqlError:
    """229 The <action> permission was denied on the object, class 14.

    :param action: SELECT, INSERT, UPDATE, DELETE.
    :param table: the table name.
    :param database: its database.
    :param schema: its schema.
    """
    return SqlError(229, f"The {action} permission was denied on the object '{table}', "
                         f"database '{database}', schema '{schema}'.", severity=14)


def ddl_denied(action: str, database: str) -> SqlError:
    """262 CREATE TABLE permission denied in database 'x', class 14.

    :param action: e.g. ``CREATE TABLE``.
    :param database: the database.
    """
    return SqlError(262, f"{action} permission denied in database '{database}'.", severity=14)


def deadlock(spid: int) -> SqlError:
    """1205 for a DuckDB write-write conflict: the transaction is rolled back, retry it.

    :param spid: the session's @@SPID.
    """
    return SqlError(1205, f"Transaction (Process ID {spid}) was deadlocked on lock resources with "
                          "another process and has been chosen as the deadlock victim. Rerun the "
                          "transaction.", severity=13, state=51)


_DUCK_TYPE_NAMES = {"INT8": "tinyint", "UINT8": "tinyint", "INT16": "smallint", "INT32": "int",
                    "INT64": "bigint", "INTEGER": "int", "BIGINT": "bigint",
                    "SMALLINT": "smallint", "UTINYINT": "tinyint", "DOUBLE": "float",
                    "FLOAT": "real", "DATE": "date", "TIMESTAMP": "datetime2", "UUID":
                    "uniqueidentifier", "BOOL": "bit", "BOOLEAN": "bit"}
_COLUMN_RE = re.compile(r'Referenced column "([^"]+)" not found')
_TABLE_RE = re.compile(r"Table with name ([^ ]+) does not exist")
_CONVERT_RE = re.compile(r"Could not convert string '(.*)' to (\w+)")
_RANGE_RE = re.compile(r"out of range for the destination type (\w+)")
_NOT_NULL_RE = re.compile(r"NOT NULL constraint failed: (?:[^.]+\.)?(\w+)\.(\w+)")


def map_duckdb_error(exc: duckdb.Error, spid: int = 0) -> SqlError:
    """Turn a DuckDB exception into the closest SQL Server error, never DuckDB's raw text alone.

    :param exc: what DuckDB raised.
    :param spid: the session id, for 1205.
    """
    text = str(exc)
    if isinstance(exc, duckdb.BinderException) and (m := _COLUMN_RE.search(text)):
        return invalid_column(m.group(1))
    if isinstance(exc, duckdb.CatalogException) and (m := _TABLE_RE.search(text)):
        return invalid_object(m.group(1))
    if isinstance(exc, duckdb.ConversionException):
        if m := _CONVERT_RE.search(text):
            target = _DUCK_TYPE_NAMES.get(m.group(2).upper(), m.group(2).lower())
            if target in ("date", "datetime2"):
                return datetime_conversion()
            return conversion_failed("varchar", m.group(1), target)
        if m := _RANGE_RE.search(text):
            return overflow(_DUCK_TYPE_NAMES.get(m.group(1).upper(), m.group(1).lower()))
    if isinstance(exc, duckdb.ConstraintException):
        if m := _NOT_NULL_RE.search(text):
            return null_not_allowed(m.group(2), m.group(1), "INSERT")
        if "Duplicate key" in text:
            key = text.split('"')[1] if '"' in text else "?"
            return SqlError(2627, f"Violation of PRIMARY KEY constraint. Cannot insert duplicate "
                                  f"key. The duplicate key value is ({key}).", severity=14)
    if isinstance(exc, duckdb.TransactionException) and "onflict" in text:
        return deadlock(spid)
    if isinstance(exc, duckdb.ParserException):
        return SqlError(102, f"Incorrect syntax (emulator: {text.splitlines()[0]}).")
    first = text.splitlines()[0] if text else type(exc).__name__
    return SqlError(INTERNAL, f"emulator: {first}")
