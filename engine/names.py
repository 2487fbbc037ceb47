"""SQL names as values: :class:`TableName` parses, quotes and derives (staging) once.

Everything that names a table holds a :class:`TableName`, never a hand-quoted or
re-split string, so a schema or table name holding ``.``, ``]`` or spaces stays one part.

>>> name = TableName.parse("[my.schema].orders")
>>> name.schema, name.name, name.quoted
('my.schema', 'orders', '[my.schema].[orders]')
>>> str(TableName.parse("sales"))
'dbo.sales'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from engine.errors import ConfigurationError

__all__ = ["TableName", "quote_identifier", "split_table_name"]

_NAME_LIMIT = 128  # sysname
_STAGE_SUFFIX = "__azsql_stage_"


def quote_identifier(name: str) -> str:
    """Bracket-quote one identifier, doubling any ``]`` inside.

    :param name: a schema, table or column name.

    >>> quote_identifier("odd]name")
    '[odd]]name]'
    """
    if not name:
        raise ConfigurationError("an empty name cannot be a SQL identifier")
    return "[" + name.replace("]", "]]") + "]"


def split_table_name(table: str) -> tuple[str, str]:
    """Split ``schema.table`` (brackets allowed, ``]]`` inside them) into its two names.

    A name without a schema gets ``dbo``.

    :param table: e.g. ``dbo.sales``, ``[my schema].[odd.name]``.
    :raises ConfigurationError: for more than two parts or unbalanced brackets.

    >>> split_table_name("[s.x].[t]]1]")
    ('s.x', 't]1')
    """
    parts: list[str] = []
    i, n = 0, len(table)
    while i < n:
        if table[i] == "[":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise ConfigurationError(f"table name {table!r} has an unclosed '['")
                if table[j] == "]":
                    if j + 1 < n and table[j + 1] == "]":
                        buf.append("]")
                        j += 2
                        continue
                    break
                buf.append(table[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
        else:
            j = table.find(".", i)
            j = n if j < 0 else j
            parts.append(table[i:j].strip())
            i = j
        if i < n:
            if table[i] != ".":
                raise ConfigurationError(f"table name {table!r}: expected '.' at position {i}")
            i += 1
    if len(parts) == 1:
        parts.insert(0, "dbo")
    if len(parts) != 2 or not all(parts):
        raise ConfigurationError(f"table name {table!r} must be 'schema.table' or 'table'")
    return parts[0], parts[1]


@dataclass(frozen=True)
class TableName:
    """A table's schema and name, unquoted.

    :param schema: the schema, e.g. ``dbo``.
    :param name: the table's own name.
    """

    schema: str
    name: str

    def __post_init__(self) -> None:
        if not self.schema or not self.name:
            raise ConfigurationError(f"a table needs a schema and a name, not "
                                     f"{self.schema!r}.{self.name!r}")

    @classmethod
    def parse(cls, table: str | TableName) -> TableName:
        """``schema.table`` or ``table`` (schema ``dbo``), brackets allowed.

        :param table: the text, or a TableName (returned as it is).
        :raises ConfigurationError: a malformed name.
        """
        if isinstance(table, TableName):
            return table
        if not isinstance(table, str):
            raise ConfigurationError(f"a table name must be text like 'dbo.orders', "
                                     f"not {type(table).__name__}")
        return cls(*split_table_name(table))

    @property
    def quoted(self) -> str:
        """``[schema].[table]``, for SQL text."""
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.name)}"

    def staging(self, load_id: str) -> TableName:
        """The staging table of one load, beside this table (deterministic, so a resumed
        load finds the rows it staged before; within SQL Server's 128-character limit).

        :param load_id: the load's id.

        >>> TableName("dbo", "t").staging("x").name
        't__azsql_stage_2d711642b726b044'
        """
        suffix = _STAGE_SUFFIX + hashlib.sha256(load_id.encode()).hexdigest()[:16]
        return TableName(self.schema, self.name[: _NAME_LIMIT - len(suffix)] + suffix)

    def __str__(self) -> str:
        """``schema.table`` as written in the journal and in messages (unquoted)."""
        return f"{self.schema}.{self.name}"
