"""SQL Server column types as the emulator's layers share them (SQL engine <-> TDS codec)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

MAX = -1  # length of (max) types: varchar(max), nvarchar(max), varbinary(max)


class SqlKind(Enum):
    """Base SQL Server type names, lower-case as T-SQL spells them."""

    BIT = "bit"
    TINYINT = "tinyint"
    SMALLINT = "smallint"
    INT = "int"
    BIGINT = "bigint"
    REAL = "real"
    FLOAT = "float"
    DECIMAL = "decimal"
    NUMERIC = "numeric"
    MONEY = "money"
    SMALLMONEY = "smallmoney"
    CHAR = "char"
    VARCHAR = "varchar"
    NCHAR = "nchar"
    NVARCHAR = "nvarchar"
    BINARY = "binary"
    VARBINARY = "varbinary"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    SMALLDATETIME = "smalldatetime"
    DATETIME2 = "datetime2"
    DATETIMEOFFSET = "datetimeoffset"
    UNIQUEIDENTIFIER = "uniqueidentifier"


_LENGTH_KINDS = {SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR,
                 SqlKind.BINARY, SqlKind.VARBINARY}
_SCALE_KINDS = {SqlKind.TIME, SqlKind.DATETIME2, SqlKind.DATETIMEOFFSET}
_DEFAULT_LENGTH = 1  # char, varchar, binary... without (n) mean (1) in a column definition
_SYNONYMS = {
    "integer": "int", "dec": "decimal", "double precision": "float",
    "character": "char", "national character": "nchar", "rowversion": "binary",
    "ntext": "nvarchar", "text": "varchar", "image": "varbinary",
}
_TYPE_RE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*([^)]*)\s*\))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SqlType:
    """One SQL Server type with its facets.

    :param kind: the base type.
    :param length: characters (char/varchar/nchar/nvarchar) or bytes (binary/varbinary);
        ``MAX`` (-1) for the (max) forms; None for other kinds.
    :param precision: decimal/numeric precision (1-38), or float's mantissa bits (24/53).
    :param scale: decimal/numeric scale, or fractional-second digits (0-7) of time,
        datetime2 and datetimeoffset.
    """

    kind: SqlKind
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def parse(cls, text: str) -> SqlType:
        """Parse a T-SQL type name such as ``nvarchar(50)``, ``decimal(18, 4)`` or ``varchar(max)``.

        >>> SqlType.parse("decimal(18,4)").sql()
        'decimal(18,4)'
        """
        m = _TYPE_RE.match(text.strip().strip("[]").lower())
        if not m:
            raise ValueError(f"not a SQL Server type: {text!r}")
        name = " ".join(m.group(1).split())
        name = _SYNONYMS.get(name, name)
        args = [a.strip() for a in m.group(2).split(",")] if m.group(2) else []
        try:
            kind = SqlKind(name)
        except ValueError:
            raise ValueError(f"unsupported SQL Server type: {text!r}") from None
        if kind in _LENGTH_KINDS:
            if text.lower().strip() in ("ntext", "text", "image"):
                return cls(kind, MAX)
            if not args:
                return cls(kind, _DEFAULT_LENGTH)
            return cls(kind, MAX if args[0] == "max" else int(args[0]))
        if kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
            precision = int(args[0]) if args else 18
            scale = int(args[1]) if len(args) > 1 else 0
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise ValueError(f"invalid precision/scale in {text!r}")
            return cls(kind, precision=precision, scale=scale)
        if kind is SqlKind.FLOAT:
            bits = int(args[0]) if args else 53
            return cls(SqlKind.REAL) if bits <= 24 else cls(SqlKind.FLOAT, precision=53)
        if kind in _SCALE_KINDS:
            scale = int(args[0]) if args else 7
            if not 0 <= scale <= 7:
                raise ValueError(f"invalid fractional-second precision in {text!r}")
            return cls(kind, scale=scale)
        if args:
            raise ValueError(f"type {kind.value} takes no arguments: {text!r}")
        return cls(kind)

    def sql(self) -> str:
        """The T-SQL spelling, e.g. ``nvarchar(max)``."""
        if self.kind in _LENGTH_KINDS:
            return f"{self.kind.value}({'max' if self.length == MAX else self.length})"
        if self.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
            return f"{self.kind.value}({self.precision},{self.scale})"
        if self.kind in _SCALE_KINDS:
            return f"{self.kind.value}({self.scale})"
        return self.kind.value

    @property
    def is_max(self) -> bool:
        return self.length == MAX


@dataclass(frozen=True)
class ColumnInfo:
    """A result or table column: what COLMETADATA describes."""

    name: str
    type: SqlType
    nullable: bool = True
