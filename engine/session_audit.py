"""The audit trail of a load's sessions: the application name and ``SESSION_CONTEXT``.

Azure SQL auditing, ``sys.dm_exec_sessions.program_name`` and triggers can tell which
load (and which Airflow DAG and task) a session belongs to:

- the login's application name is ``azsql-bulk/<version>`` followed by the connection's
  audit facts as ``key=value`` words (``load=<load_id>``, and from the Airflow operator
  ``dag=<dag_id> task=<task_id> run=<run_id>``), cut to the login record's 128
  characters;
- right after login, the same facts are set as read-only ``SESSION_CONTEXT`` keys
  (:data:`SESSION_KEYS`, plus ``azsql_bulk.application``), which a trigger or an audit
  query reads with ``SESSION_CONTEXT(N'azsql_bulk.load_id')``.

The facts are ids chosen by the load or the scheduler, never a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import error_text

__all__ = ["MAX_APPLICATION_NAME", "SESSION_KEYS", "application_label", "session_context",
           "set_session_context"]

log = logging.getLogger(__name__)

#: the login record's application name holds at most this many characters
MAX_APPLICATION_NAME = 128
#: audit fact -> its SESSION_CONTEXT key (any other fact: ``azsql_bulk.<fact>``)
SESSION_KEYS = {"load": "azsql_bulk.load_id", "dag": "airflow.dag_id",
                "task": "airflow.task_id", "run": "airflow.run_id"}
_VALUE_MAX = 4000  # a sql_variant holds 8,000 bytes: 4,000 UTF-16 units


def application_label(application_name: str, audit: Mapping[str, str]) -> str:
    """The login's application name: ``application_name`` and the audit facts.

    Cut to the login record's 128 characters (the last facts go first); blanks inside a
    value become ``_`` so that each ``key=value`` stays one word.

    >>> application_label("azsql-bulk/1.2", {"load": "ab12", "dag": "nightly", "task": "t 1"})
    'azsql-bulk/1.2 load=ab12 dag=nightly task=t_1'
    >>> len(application_label("azsql-bulk/1.2", {"load": "x" * 200}))
    128
    """
    words = [application_name]
    words += [f"{k}={'_'.join(str(v).split())}" for k, v in audit.items()]
    return " ".join(words)[:MAX_APPLICATION_NAME]


def session_context(application_name: str, audit: Mapping[str, str]) -> list[tuple[str, str]]:
    """The ``SESSION_CONTEXT`` keys and values set at connect (none without audit facts).

    >>> session_context("azsql-bulk/1", {"load": "ab12", "dag": "nightly"})
    [('azsql_bulk.application', 'azsql-bulk/1'), ('azsql_bulk.load_id', 'ab12'), \
('airflow.dag_id', 'nightly')]
    """
    if not audit:
        return []
    pairs = [("azsql_bulk.application", application_name)]
    pairs += [(SESSION_KEYS.get(k, f"azsql_bulk.{k}"), str(v)) for k, v in audit.items()]
    return [(k, v[:_VALUE_MAX]) for k, v in pairs]


def set_session_context(conn: Any, pairs: Sequence[tuple[str, str]]) -> str | None:
    """``sp_set_session_context`` of each pair (read-only keys) on a new connection; commit.

    :param conn: an :class:`engine.odbc_connection.Connection`, just opened.
    :param pairs: from :func:`session_context`.
    :return: None when set, else the ODBC client's error text: the caller decides (a
        transient failure means the new connection is no good; a server that refuses the
        procedure costs the keys, not the load, as the application name still names it).
    """
    sql = "".join("EXEC sys.sp_set_session_context @key = ?, @value = ?, @read_only = 1;\n"
                  for _ in pairs)
    try:
        conn.cursor().execute(sql, [x for pair in pairs for x in pair])
        conn.commit()
        return None
    except Exception as exc:  # the ODBC client's error
        failure = error_text(exc)
    try:
        conn.rollback()
    except Exception:  # a broken link: the server rolls back by itself
        log.debug("rollback after the session context failed", exc_info=False)
    return failure
