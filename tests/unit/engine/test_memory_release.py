"""The pipeline hands the Arrow pool's freed pages back once per batch (issue 20's bound).

Runs a real :class:`engine.pipeline.Pipeline` (reader and worker threads) over in-memory
batches with a writer that only counts; the database is not involved.
"""

from __future__ import annotations

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

