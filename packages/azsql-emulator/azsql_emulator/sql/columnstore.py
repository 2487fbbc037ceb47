"""Columnstore indexes: accepted in T-SQL and kept in the catalog; the data stays in DuckDB.

sqlglot parses neither ``CREATE CLUSTERED COLUMNSTORE INDEX cci ON t`` (it keeps no
trace of COLUMNSTORE once the emulator drops its storage words) nor an inline
``INDEX cci CLUSTERED COLUMNSTORE`` in ``CREATE TABLE``. :func:`take_columnstore` cuts
those words out of a statement's tokens before it is parsed and says what it cut; the
DDL then records the index with kind :data:`CLUSTERED` (``CS``) or :data:`NONCLUSTERED`
(``NCS``), which ``sys.indexes`` shows as type 5 or 6. Rows are stored and read exactly
as in any other table: there are no row groups and no delta store here.

>>> from azsql_emulator.sql.batch import DIALECT
>>> tokens, found = take_columnstore(DIALECT.tokenize(
...     "CREATE TABLE t (a int, INDEX cci CLUSTERED COLUMNSTORE)"))
>>> " ".join(t.text for t in tokens), found
('CREATE TABLE t ( a int )', [('CS', 'cci', [])])
"""

from __future__ import annotations

from sqlglot.tokens import Token, TokenType

__all__ = ["CLUSTERED", "NONCLUSTERED", "take_columnstore"]

#: catalog kinds (the ``_emu.keys.kind`` column) of the two columnstore indexes
CLUSTERED, NONCLUSTERED = "CS", "NCS"

#: one index found: kind, name (None: the statement is CREATE ... COLUMNSTORE INDEX), columns
Found = tuple[str, str | None, list[str]]


def _upper(tok: Token) -> str:
    return "" if tok.token_type == TokenType.IDENTIFIER else tok.text.upper()


def _kind(tokens: list[Token], at: int) -> str:
    """CLUSTERED unless NONCLUSTERED comes right before COLUMNSTORE (SQL Server's default
    for an inline index is NONCLUSTERED, but CREATE TABLE names it either way here)."""
    return NONCLUSTERED if at > 0 and _upper(tokens[at - 1]) == "NONCLUSTERED" else CLUSTERED


def _columns(tokens: list[Token], start: int) -> tuple[list[str], int]:
    """The names in ``( a, b )`` starting at ``start``, and the index after ``)``."""
    if start >= len(tokens) or tokens[start].token_type != TokenType.L_PAREN:
        return [], start
    names, i = [], start + 1
    while i < len(tokens) and tokens[i].token_type != TokenType.R_PAREN:
        if tokens[i].token_type not in (TokenType.COMMA,):
            names.append(tokens[i].text)
        i += 1
    return names, i + 1


def take_columnstore(tokens: list[Token]) -> tuple[list[Token], list[Found]]:
    """Cut the columnstore words out of a CREATE statement's tokens.

    ``CREATE [NON]CLUSTERED COLUMNSTORE INDEX name ON t [(cols)]`` loses the word
    COLUMNSTORE (the rest parses as a CREATE INDEX); each ``, INDEX name [NON]CLUSTERED
    COLUMNSTORE [(cols)]`` of a CREATE TABLE is cut whole. Other statements come back
    as they were, with nothing found.

    :param tokens: one statement's tokens.
    :returns: the tokens left, and the indexes cut (kind, name or None, columns).
    """
    if not tokens or _upper(tokens[0]) != "CREATE" or not any(
            _upper(t) == "COLUMNSTORE" for t in tokens):
        return tokens, []
    words = [_upper(t) for t in tokens]
    at = words.index("COLUMNSTORE")
    if "INDEX" in words[at + 1:at + 2]:  # CREATE [NON]CLUSTERED COLUMNSTORE INDEX ...
        return tokens[:at] + tokens[at + 1:], [(_kind(tokens, at), None, [])]
    out, i = list(tokens), len(tokens) - 1
    found: list[Found] = []
    while i >= 0:  # from the end, so the indexes still to cut stay valid
        if words[i] != "COLUMNSTORE":
            i -= 1
            continue
        start = i - 1 if words[i - 1] in ("CLUSTERED", "NONCLUSTERED") else i
        if start < 3 or words[start - 2] != "INDEX" or \
                tokens[start - 3].token_type != TokenType.COMMA:
            return tokens, []  # not the inline form: the parser reports the syntax error
        columns, end = _columns(tokens, i + 1)
        found.append((_kind(tokens, i), tokens[start - 1].text, columns))
        del out[start - 3:end]
        i = start - 3
    found.reverse()
    return out, found
