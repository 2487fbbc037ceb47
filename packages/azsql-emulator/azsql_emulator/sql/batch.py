"""Split a T-SQL batch into statements and parse each with sqlglot's T-SQL grammar.

T-SQL needs no ``;`` between statements, and ``IF ... BEGIN ... END ELSE ...`` is
control flow sqlglot does not parse, so the batch is first cut into a small tree of
statements on sqlglot's tokens, then each statement's tokens are parsed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.tsql import TSQL
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.columnstore import take_columnstore

# sqlglot logs a warning for each statement it keeps as a Command; the engine reports
# those itself as unsupported, so the warnings would only be noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


class EmulatorTSQL(TSQL):
    """T-SQL as sqlglot parses it, but keeping real vs float, numeric vs decimal, ntext."""

    class Tokenizer(TSQL.Tokenizer):
        KEYWORDS = {
            **TSQL.Tokenizer.KEYWORDS,
            # sqlglot folds these pairs into one type; the catalog must tell them apart
            "REAL": TokenType.FLOAT,
            "FLOAT": TokenType.DOUBLE,
            "NUMERIC": TokenType.BIGDECIMAL,
            "NTEXT": TokenType.LONGTEXT,
        }


DIALECT = EmulatorTSQL()

_LITERAL_TYPES = frozenset({TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.IDENTIFIER,
                            TokenType.NUMBER, TokenType.HEX_STRING, TokenType.BIT_STRING,
                            TokenType.BYTE_STRING})
_STARTERS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER",
                       "TRUNCATE", "DECLARE", "SET", "PRINT", "USE", "EXEC", "EXECUTE", "BEGIN",
                       "COMMIT", "ROLLBACK", "IF", "RETURN", "WHILE", "RAISERROR", "THROW",
                       "GRANT", "REVOKE", "DENY", "SAVE", "WAITFOR", "WITH"})
_SET_OPS = frozenset({"UNION", "ALL", "EXCEPT", "INTERSECT", "AS"})
_IGNORED_WORDS = frozenset({"CLUSTERED", "NONCLUSTERED"})  # storage hints with no meaning here


@dataclass
class Statement:
    """One statement: its tokens, first line and parsed tree."""

    tokens: list[Token]
    line: int
    ast: exp.Expr | None = None

    @property
    def head(self) -> str:
        return _word(self.tokens[0])


@dataclass
class IfStatement:
    """``IF cond stmt [ELSE stmt]``; the condition is parsed as a SELECT of a CASE."""

    condition: exp.Expr
    then: list[Node]
    otherwise: list[Node] = field(default_factory=list)
    line: int = 1


@dataclass
class Block:
    """``BEGIN ... END``."""

    body: list[Node]
    line: int = 1


Node = Statement | IfStatement | Block


def _word(tok: Token) -> str:
    return "" if tok.token_type in _LITERAL_TYPES else tok.text.upper()


class _Splitter:
    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.toks = tokens
        self.n = len(tokens)

    def error_near(self, i: int) -> SqlError:
        tok = self.toks[min(i, self.n - 1)] if self.n else None
        return em.syntax_error(tok.text if tok else "")

    def parse_list(self, i: int, in_block: bool) -> tuple[list[Node], int]:
        nodes: list[Node] = []
        while i < self.n:
            w = _word(self.toks[i])
            if self.toks[i].token_type == TokenType.SEMICOLON or w == "GO":
                i += 1
                continue
            if w == "END" and in_block:
                return nodes, i
            node, i = self.parse_statement(i)
            nodes.append(node)
        if in_block:
            raise self.error_near(self.n - 1)
        return nodes, i

    def parse_statement(self, i: int) -> tuple[Node, int]:
        tok = self.toks[i]
        w = _word(tok)
        nxt = _word(self.toks[i + 1]) if i + 1 < self.n else ""
        if w == "IF":
            return self.parse_if(i)
        if w == "BEGIN" and nxt in ("TRY", "CATCH"):
            raise em.unsupported(f"BEGIN {nxt}", tok.line)
        if w == "BEGIN" and nxt not in ("TRAN", "TRANSACTION", "DISTRIBUTED"):
            body, j = self.parse_list(i + 1, in_block=True)
            return Block(body, tok.line), j + 1
        if w in ("WHILE", "RAISERROR", "THROW", "WAITFOR", "RETURN", "GRANT", "REVOKE", "DENY"):
            raise em.unsupported(w, tok.line)
        j = self.scan_simple(i)
        return Statement(self.toks[i:j], tok.line), j

    def parse_if(self, i: int) -> tuple[Node, int]:
        start = i + 1
        j, depth = start, 0
        while j < self.n:
            tt, w = self.toks[j].token_type, _word(self.toks[j])
            if tt == TokenType.L_PAREN:
                depth += 1
            elif tt == TokenType.R_PAREN:
                depth -= 1
            elif depth == 0 and w in _STARTERS:
                break
            j += 1
        if j == start or j >= self.n:
            raise self.error_near(j)
        cond_sql = self.sql[self.toks[start].start:self.toks[j - 1].end + 1]
        condition = parse_statement_text(f"SELECT CASE WHEN {cond_sql} THEN 1 ELSE 0 END")
        then, k = self.parse_branch(j)
        while k < self.n and self.toks[k].token_type == TokenType.SEMICOLON:
            k += 1
        otherwise: list[Node] = []
        if k < self.n and _word(self.toks[k]) == "ELSE":
            otherwise, k = self.parse_branch(k + 1)
        return IfStatement(condition, then, otherwise, self.toks[i].line), k

    def parse_branch(self, i: int) -> tuple[list[Node], int]:
        if i >= self.n:
            raise self.error_near(i)
        node, j = self.parse_statement(i)
        return [node], j

    def scan_simple(self, i: int) -> int:
        head = _word(self.toks[i])
        if head == "CREATE" and i + 1 < self.n and _word(self.toks[i + 1]) in (
                "PROCEDURE", "PROC", "FUNCTION", "TRIGGER", "OR"):
            return self.n  # these bodies run to the end of the batch, as in SQL Server
        depth = case = 0
        seen_query = seen_set = False
        main = head
        prev = head
        j = i + 1
        while j < self.n:
            tok = self.toks[j]
            tt, w = tok.token_type, _word(tok)
            if tt == TokenType.L_PAREN:
                depth += 1
            elif tt == TokenType.R_PAREN:
                depth -= 1
                if depth < 0:
                    raise self.error_near(j)
            elif depth == 0:
                if w == "CASE":
                    case += 1
                elif w == "END":
                    if case == 0:
                        break
                    case -= 1
                elif tt == TokenType.SEMICOLON or (w in ("GO", "ELSE") and case == 0):
                    break
                elif case == 0 and w in _STARTERS and not self._alter_column(head, w, j) \
                        and not self.continues(w, head, main, prev, seen_query, seen_set):
                    break
                if w in ("SELECT", "VALUES"):
                    seen_query = True
                if w == "SET":
                    seen_set = True
                if head == "WITH" and main == "WITH" and w in ("SELECT", "INSERT", "UPDATE",
                                                               "DELETE", "MERGE"):
                    main = w
            prev = w
            j += 1
        if depth > 0:
            raise self.error_near(j)
        return j

    def _alter_column(self, head: str, w: str, j: int) -> bool:
        """``ALTER TABLE t ALTER COLUMN c ...``: the second ALTER starts no statement."""
        return (head == w == "ALTER" and j + 1 < self.n
                and _word(self.toks[j + 1]) == "COLUMN")

    @staticmethod
    def continues(w: str, head: str, main: str, prev: str, seen_query: bool,
                  seen_set: bool) -> bool:
        if w == "WITH":
            return True  # a CTE needs a ';' before it, so WITH here is a table hint / option
        if w == "SELECT":
            return prev in _SET_OPS or (main == "INSERT" and not seen_query) or main == "WITH"
        if w in ("INSERT", "UPDATE", "DELETE"):
            return prev in ("THEN", "ON") or main == "WITH"
        if w == "MERGE":
            return main == "WITH"
        if w == "SET":
            return ((main == "UPDATE" and not seen_set) or (main == "MERGE" and prev == "UPDATE")
                    or head in ("CREATE", "ALTER") or prev in ("DELETE", "UPDATE"))
        if w == "DROP":
            return head == "ALTER"
        if w == "IF":  # DROP TABLE IF EXISTS, CREATE SCHEMA IF NOT EXISTS...
            return prev in ("TABLE", "SCHEMA", "INDEX", "VIEW", "COLUMN", "CONSTRAINT")
        return False


def parse_statement_text(sql: str) -> exp.Expr:
    """Parse one statement's text with the emulator's T-SQL dialect.

    :param sql: a single statement.
    :raises SqlError: 102 on a syntax error.
    """
    try:
        trees = DIALECT.parse(sql)
    except (ParseError, TokenError) as exc:
        raise _syntax_from(exc, sql) from None
    if not trees or trees[0] is None:
        raise em.syntax_error(sql.strip()[:30])
    return trees[0]


def _syntax_from(exc: Exception, sql: str) -> SqlError:
    errors = getattr(exc, "errors", None) or []
    near = ""
    if errors:
        near = (errors[0].get("highlight") or "").strip()
    if not near or near == "SENTINEL":
        near = sql.strip().split()[-1] if sql.strip() else ""
    return em.syntax_error(near)


# Table hints SQL Server accepts on an INSERT target; they change locking and logging only,
# which the emulator does not model, so `INSERT INTO t WITH (TABLOCK) ...` runs as a plain
# INSERT (the T-SQL parser would otherwise read WITH as the start of a CTE).
_INSERT_HINTS = frozenset({"TABLOCK", "TABLOCKX", "HOLDLOCK", "ROWLOCK", "PAGLOCK", "XLOCK",
                           "UPDLOCK", "SERIALIZABLE", "KEEPIDENTITY", "KEEPDEFAULTS",
                           "IGNORE_CONSTRAINTS", "IGNORE_TRIGGERS"})


def _drop_insert_hints(tokens: list[Token]) -> list[Token]:
    """Remove ``WITH (hint, ...)`` right after an INSERT's target name."""
    if not tokens or _word(tokens[0]) != "INSERT":
        return tokens
    i = 2 if len(tokens) > 1 and _word(tokens[1]) == "INTO" else 1
    while i < len(tokens) and tokens[i].token_type in (TokenType.VAR, TokenType.DOT,
                                                       TokenType.IDENTIFIER):
        i += 1  # the (possibly multi-part) target name
    if i + 2 >= len(tokens) or _word(tokens[i]) != "WITH" or tokens[i + 1].text != "(":
        return tokens
    j = i + 2
    while j < len(tokens) and tokens[j].text != ")":
        if tokens[j].text != "," and _word(tokens[j]) not in _INSERT_HINTS:
            return tokens  # not a hint list: let the parser report it
        j += 1
    return tokens[:i] + tokens[j + 1:]


def _parse_tokens(sql: str, tokens: list[Token]) -> exp.Expr:
    tokens, columnstore = take_columnstore(tokens)
    tokens = _drop_insert_hints([t for t in tokens if _word(t) not in _IGNORED_WORDS])
    if _word(tokens[0]) == "SET" and len(tokens) > 1 and not sql[tokens[1].start:].startswith("@"):
        # SET options (NOCOUNT, XACT_ABORT ON, IDENTITY_INSERT t ON...) are read as raw text
        rest = sql[tokens[1].start:tokens[-1].end + 1]
        return exp.Command(this="SET", expression=exp.Literal.string(rest))
    try:
        trees = DIALECT.parser().parse(tokens, sql)
    except (ParseError, TokenError) as exc:
        raise _syntax_from(exc, sql) from None
    parsed = [t for t in trees if t is not None]
    if len(parsed) != 1:
        raise em.syntax_error(tokens[-1].text if tokens else "")
    if columnstore:  # the DDL records them (see azsql_emulator.sql.columnstore)
        parsed[0].meta["columnstore"] = columnstore
    return parsed[0]


def _parse_nodes(sql: str, nodes: list[Node]) -> None:
    for node in nodes:
        if isinstance(node, Statement):
            node.ast = _parse_tokens(sql, node.tokens)
        elif isinstance(node, IfStatement):
            _parse_nodes(sql, node.then)
            _parse_nodes(sql, node.otherwise)
        else:
            _parse_nodes(sql, node.body)


def split_batch(sql: str) -> list[Node]:
    """Cut a batch into statements and parse every one (a syntax error anywhere stops all).

    >>> [type(n).__name__ for n in split_batch("SELECT 1\\nSELECT 2")]
    ['Statement', 'Statement']

    :param sql: the batch text.
    :raises SqlError: 102 for a syntax error, 50100 for unsupported control flow.
    """
    try:
        tokens = DIALECT.tokenize(sql)
    except TokenError as exc:
        raise em.syntax_error(str(exc)[:40]) from None
    splitter = _Splitter(sql, tokens)
    nodes, _ = splitter.parse_list(0, in_block=False)
    _parse_nodes(sql, nodes)
    return nodes


class BatchCache:
    """Parsed batches by text (sqlglot parsing is slow); the trees must be copied before edits.

    :param size: how many batches to keep.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[str, list[Node] | SqlError] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sql: str) -> list[Node]:
        """The parsed batch, from cache when possible.

        :param sql: the batch text.
        :raises SqlError: the (cached) syntax error.
        """
        with self._lock:
            hit = self._items.get(sql)
            if hit is not None:
                self._items.move_to_end(sql)
        if hit is None:
            try:
                hit = split_batch(sql)
            except SqlError as err:
                hit = err
            with self._lock:
                self._items[sql] = hit
                if len(self._items) > self._size:
                    self._items.popitem(last=False)
        if isinstance(hit, SqlError):
            raise hit
        return hit
