"""The pipeline hands the Arrow pool's freed pages back once per batch (issue 20's bound),
and the command turns transparent huge pages off for its process.

Runs a real :class:`engine.pipeline.Pipeline` (reader and worker threads) over in-memory
batches with a writer that only counts; the database is not involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pyarrow as pa
import pytest

from engine import pipeline as pipeline_module
from engine.pipeline import Pipeline
from engine.results import Tally
from engine.sources import SourceBatch, SourceLocation


def _batches(n: int, rows: int = 100) -> list[SourceBatch]:
    return [SourceBatch(f"mem#{i}", pa.record_batch({"x": pa.array(range(rows))}),
                        SourceLocation("<memory>", None, i * rows, rows))
            for i in range(n)]


@pytest.mark.parametrize("workers", [1, 3])
def test_every_batch_gives_freed_memory_back_in_reader_and_worker(monkeypatch, workers):
    calls: list[str] = []
    lock = threading.Lock()

    def counting() -> None:
        with lock:
            calls.append(threading.current_thread().name)

    monkeypatch.setattr(pipeline_module, "give_back_freed_memory", counting)
    written: list[str] = []

    def write(conn, item, stats):
        with lock:
            written.append(item.batch_id)
        return conn

    tally = Tally(workers, None, None)
    pipe = Pipeline("dbo.t", "load", tally, max_memory_bytes=10_000, cancel=None,
                    close=lambda conn: None)
    pipe.run(iter(_batches(7)), set(), write)
    assert sorted(written) == sorted(f"mem#{i}" for i in range(7))
    readers = [c for c in calls if c == "azsql-bulk-reader"]
    workers_calls = [c for c in calls if c.startswith("azsql-bulk-worker-")]
    assert len(readers) == 7  # one per queued batch
    assert len(workers_calls) == 7  # one per finished batch
    assert pipe.inflight == 0  # every reserved byte was released



def _thp_enabled(status: str) -> str | None:
    for line in status.splitlines():
        if line.startswith("THP_enabled:"):
            return line.split()[1]
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_disable_transparent_huge_pages_turns_them_off_for_the_process():
    # process-wide, so in a child: before and after, as the kernel reports them. The flag
    # is inherited, and this test process may have run a command in-process (which turns
    # it off), so the child first turns it back on (PR_SET_THP_DISABLE = 41, value 0)
    script = ("import ctypes\n"
              "from pathlib import Path\n"
              "ctypes.CDLL(None, use_errno=True).prctl(41, 0, 0, 0, 0)\n"
              "from engine.pipeline import disable_transparent_huge_pages as off\n"
              "status = Path('/proc/self/status')\n"
              "before = status.read_text()\n"
              "print(off())\n"
              "print('=====')\n"
              "print(before, '=====', status.read_text())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "MIMALLOC_ALLOW_THP": "1"})
    accepted, _, rest = done.stdout.partition("=====")
    before, _, after = rest.partition("=====")
    if _thp_enabled(before) is None:
        pytest.skip("this kernel does not report THP_enabled in /proc/self/status")
    assert accepted.strip() == "True"
    assert _thp_enabled(before) == "1"
    assert _thp_enabled(after) == "0"


def test_the_command_turns_huge_pages_off_before_it_runs(monkeypatch, capsys):
    import engine.cli

    order: list[str] = []
    monkeypatch.setattr(pipeline_module, "disable_transparent_huge_pages",
                        lambda: order.append("huge pages off") or True)

    def command(argv, *, plugins=None):
        order.append(f"command {list(argv)}")
        return 0

    monkeypatch.setattr(engine.cli.app, "main", command)
    assert engine.cli.main(["doctor"], plugins=[]) == 0
    assert order == ["huge pages off", "command ['doctor']"]
