"""32 pyodbc sessions at once, each inserting into one table: every row arrives exactly once."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

SESSIONS = 32
BATCHES = 5
ROWS_PER_BATCH = 20


def test_32_concurrent_sessions_insert(emu, driver_path):
    token = emu.identity.issue_token()
    attrs = {SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}
    with closing(pyodbc.connect(odbc_string(emu, driver_path), autocommit=True, timeout=15,
                                attrs_before=attrs)) as admin:
        admin.cursor().execute("CREATE TABLE dbo.concurrent_rows (worker int NOT NULL, "
                               "n int NOT NULL, note nvarchar(30), "
                               "CONSTRAINT pk_concurrent PRIMARY KEY (worker, n))")
    inserted_before = sum(v for k, v in emu.metrics()["rows_inserted"].items()
                          if "concurrent_rows" in k)
    connected = threading.Barrier(SESSIONS, timeout=120)
    errors: list[BaseException] = []
    spids: set[int] = set()
    lock = threading.Lock()

    def worker(w: int) -> None:
        try:
            conn = pyodbc.connect(odbc_string(emu, driver_path), timeout=30,
                                  autocommit=(w % 2 == 0), attrs_before=attrs)
            with closing(conn):
                cur = conn.cursor()
                spid = cur.execute("SELECT @@SPID").fetchone()[0]
                with lock:
                    spids.add(spid)
                connected.wait()  # all 32 sessions are open at the same time
                for b in range(BATCHES):
                    values = ", ".join(
                        f"({w}, {b * ROWS_PER_BATCH + i}, N'w{w}-b{b}-☃')"
                        for i in range(ROWS_PER_BATCH))
                    cur.execute(f"INSERT INTO dbo.concurrent_rows VALUES {values}")
                    assert cur.rowcount == ROWS_PER_BATCH
                    if not conn.autocommit:
                        conn.commit()
                own = cur.execute("SELECT COUNT(*) FROM dbo.concurrent_rows WHERE worker = ?",
                                  w).fetchone()[0]
                assert own == BATCHES * ROWS_PER_BATCH
        except BaseException as exc:
            errors.append(exc)
            connected.abort()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert len(spids) == SESSIONS
    with closing(pyodbc.connect(odbc_string(emu, driver_path), autocommit=True, timeout=15,
                                attrs_before=attrs)) as admin:
        cur = admin.cursor()
        total, workers = cur.execute("SELECT COUNT(*), COUNT(DISTINCT worker) "
                                     "FROM dbo.concurrent_rows").fetchone()
        per_worker = cur.execute("SELECT worker, COUNT(*) FROM dbo.concurrent_rows "
                                 "GROUP BY worker ORDER BY worker").fetchall()
    assert total == SESSIONS * BATCHES * ROWS_PER_BATCH
    assert workers == SESSIONS
    assert [tuple(r) for r in per_worker] == [(w, BATCHES * ROWS_PER_BATCH)
                                              for w in range(SESSIONS)]
    inserted = sum(v for k, v in emu.metrics()["rows_inserted"].items()
                   if "concurrent_rows" in k)
    assert inserted - inserted_before == total
