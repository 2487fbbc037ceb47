"""Volume and crash tests: 1M rows over 4 workers, and a loader killed with SIGKILL then
resumed. Real turbodbc and Microsoft's driver against the emulator child process; every
result is read back through pyodbc and compared exactly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from loads import check_exact, journal_rows, rows_table

from engine.options import TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("load_child.py")


def test_one_million_rows_with_four_workers(sql_target, reader):
    target = sql_target("million")
    result = transfer(rows_table(1_000_000), target,
                      TransferOptions(workers=4),
                      source_options=SourceOptions(rows_per_batch=25_000))
    assert result.rows == 1_000_000 and result.batches == 40
    assert all(w.batches > 0 for w in result.workers)  # all four connections took part
    check_exact(reader, target.table, 1_000_000)
    assert journal_rows(reader, result.load_id) == (40, 1_000_000)


@pytest.mark.parametrize("seed", [1, 2])
def test_loader_killed_with_sigkill_resumes_exactly(seed, emu_proc, sql_target, reader,
                                                    tmp_path):
    rng = random.Random(seed)
    files = []
    for i in range(10):  # 10 files x 2 row groups x 2 batches of 2,500 rows = 40 batches
        path = tmp_path / f"part-{i:02d}.parquet"
        pq.write_table(rows_table(10_000, start=i * 10_000), path, row_group_size=5_000)
        files.append(str(path))
    target = sql_target("sigkill")
    load_id = f"sigkill-{seed}-{target.table.name}"
    kill_after = rng.randint(3, 25)
    creds = emu_proc.credentials
    env = dict(os.environ, AZSQL_BULK_SQL_USER=creds.sql_login,
               AZSQL_BULK_SQL_PASSWORD=creds.sql_password)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), emu_proc.tds_host, str(emu_proc.tds_port),
         emu_proc.database, emu_proc.server_cert, str(target.table), load_id, *files],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    killed_at = None
    for line in child.stdout:
        if line.startswith("batches ") and int(line.split()[1]) >= kill_after:
            child.send_signal(signal.SIGKILL)  # mid-load, possibly mid-transaction
            killed_at = int(line.split()[1])
            break
    child.wait(timeout=120)
    stderr = child.stderr.read() if child.stderr else ""
    assert killed_at is not None, f"the loader finished before batch {kill_after}: {stderr}"
    assert child.returncode == -signal.SIGKILL
    committed, _ = journal_rows(reader, load_id)
    assert killed_at <= committed < 40  # batches reported committed are journaled
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == committed * 2_500  # no partial batch is visible
    result = transfer(files, target, TransferOptions(workers=4, load_id=load_id),
                      source_options=SourceOptions(rows_per_batch=2_500))
    assert result.batches_skipped == committed and result.batches == 40 - committed
    check_exact(reader, target.table, 100_000)
    assert journal_rows(reader, load_id) == (40, 100_000)
