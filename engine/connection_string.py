"""ODBC connection strings: building with correct escaping, and redacted display."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Keys whose values are secrets: never shown by `redact`.
SECRET_KEYS = frozenset({"pwd", "password", "accesstoken", "access_token", "clientsecret"})

# A value needs braces when the driver manager would otherwise split or trim it.
_NEEDS_BRACES = re.compile(r"[;{}=\s]|^$")
_VALID_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9 _.-]*$")


def quote_value(value: str) -> str:
    """Quote one ODBC attribute value.

    Values containing ``;``, ``{``, ``}``, ``=`` or whitespace (or empty values) are
    wrapped in braces, and every ``}`` inside is doubled, as ODBC specifies.

    >>> quote_value("a;b}c")
    '{a;b}}c}'
    """
    if _NEEDS_BRACES.search(value):
        return "{" + value.replace("}", "}}") + "}"
    return value


def build_connection_string(attributes: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """Build ``Key=Value;`` pairs from attributes, in order, escaping values.

    ``None`` values are skipped; ``bool`` values become ``yes``/``no``.

    :param attributes: ODBC keywords to values.
    :raises ValueError: a keyword is not a valid ODBC keyword, or appears twice.

    >>> build_connection_string({"Server": "tcp:db,1433", "PWD": "p;w}"})
    'Server=tcp:db,1433;PWD={p;w}}}'
    """
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    parts: list[str] = []
    seen: set[str] = set()
    for key, value in items:
        if value is None:
            continue
        if not _VALID_KEY.match(key):
            raise ValueError(f"invalid ODBC connection-string keyword {key!r}: use letters, "
                             "digits, spaces, '_', '.' or '-', starting with a letter")
        folded = key.lower()
        if folded in seen:
            raise ValueError(f"ODBC connection-string keyword {key!r} given twice")
        seen.add(folded)
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        parts.append(f"{key}={quote_value(text)}")
    return ";".join(parts)


def parse_connection_string(text: str) -> list[tuple[str, str]]:
    """Split a connection string into (keyword, value) pairs, undoing brace escaping.

    The inverse of `build_connection_string`.

    :raises ValueError: an unterminated ``{`` or a pair without ``=``.
    """
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in "; ":
            i += 1
            continue
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError(f"connection string: no '=' after keyword at offset {i}")
        key = text[i:eq].strip()
        i = eq + 1
        if i < n and text[i] == "{":
            i += 1
            chunks: list[str] = []
            while True:
                close = text.find("}", i)
                if close < 0:
                    raise ValueError(f"connection string: unterminated '{{' in value of {key!r}")
                chunks.append(text[i:close])
                if close + 1 < n and text[close + 1] == "}":
                    chunks.append("}")
                    i = close + 2
                    continue
                i = close + 1
                break
            value = "".join(chunks)
        else:
            end = text.find(";", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            i = end
        pairs.append((key, value))
    return pairs


def redact(text: str) -> str:
    """Return the connection string with secret values replaced by ``***``.

    Safe for logs and error messages.
    """
    try:
        pairs = parse_connection_string(text)
    except ValueError:
        return "<unparseable connection string redacted>"
    return build_connection_string(
        [(k, "***" if k.lower() in SECRET_KEYS else v) for k, v in pairs])
