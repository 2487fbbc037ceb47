"""What the emulator reports through Azure SQL's resource DMVs, from its own state.

Azure SQL Database writes a ``sys.dm_db_resource_stats`` row every 15 seconds (and keeps
about an hour of them), caps each database's log write rate
(``sys.dm_user_db_resource_governance.primary_max_log_rate``) and counts the time requests
wait for that cap as ``LOG_RATE_GOVERNOR`` in ``sys.dm_db_wait_stats``. The emulator's
stand-in for the log is the throttle of ``POST /faults {"kind": "throttle", ...}``:

- "log bytes" are the request bytes the throttle admits (all sessions);
  ``avg_log_write_percent`` = bytes in the interval / (cap x interval) x 100, at most 100,
  and NULL when no throttle is set;
- ``avg_cpu_percent`` is the emulator process's CPU time in the interval over the machine's
  CPU time (interval x CPUs);
- ``avg_data_io_percent`` is a plausible figure, not a measurement: the emulator has no data
  files to read, so it reports the admitted bytes against a nominal data IO budget of
  :data:`DATA_IO_BUDGET` bytes per second, at most 100;
- ``avg_memory_usage_percent`` is the process's resident memory over the machine's memory.

A row is written every ``interval`` seconds (default 15; ``POST /faults {"kind":
"resource_stats", "interval_seconds": S}`` changes it at run time) and the last
:data:`KEEP_ROWS` are kept.

>>> from azsql_emulator.faults import FaultPlan
>>> stats = ResourceStats(FaultPlan(), interval=15.0)
>>> stats.resource_stats()
[]
>>> stats.log_rate_cap() is None
True
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import threading
import time
from decimal import Decimal

from azsql_emulator.faults import FaultPlan

__all__ = ["DATA_IO_BUDGET", "KEEP_ROWS", "ResourceStats"]

KEEP_ROWS = 4000
DATA_IO_BUDGET = 100 * 1024 * 1024  # bytes per second that count as 100% data IO
_HUNDREDTH = Decimal("0.01")


def _percent(part: float, whole: float) -> Decimal:
    """``part / whole`` as a decimal(5,2) percentage, capped at 100."""
    if whole <= 0:
        return Decimal("0.00")
    return Decimal(min(100.0, max(0.0, part / whole * 100.0))).quantize(_HUNDREDTH)


def _memory_percent() -> Decimal:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
        total_pages = os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, IndexError):
        return Decimal("0.00")  # not Linux: nothing to report
    return _percent(resident_pages, total_pages)


class ResourceStats:
    """The emulator's resource figures: a sampler thread and the DMV rows it keeps.

    :param faults: the fault plan whose throttle is the log-rate cap and whose counters are
        the log bytes and the LOG_RATE_GOVERNOR waits.
    :param interval: seconds between ``sys.dm_db_resource_stats`` rows.
    """

    def __init__(self, faults: FaultPlan, interval: float = 15.0) -> None:
        self._faults = faults
        self._interval = interval
        self._rows: collections.deque[tuple] = collections.deque(maxlen=KEEP_ROWS)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = self._mark()
        faults.on_stats_interval = self.set_interval

    @property
    def interval(self) -> float:
        """Seconds between rows."""
        return self._interval

    def set_interval(self, seconds: float) -> None:
        """Write rows every ``seconds`` from now on (the current interval ends now).

        :param seconds: the new interval, > 0.
        """
        if not seconds > 0:
            raise ValueError(f"the resource stats interval must be > 0 seconds, not {seconds}")
        with self._lock:
            self._interval = seconds
        self._wake.set()

    def start(self) -> None:
        """Start writing rows."""
        self._last = self._mark()
        self._thread = threading.Thread(target=self._run, name="resource-stats", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the sampler thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _mark(self) -> tuple[float, float, int]:
        return time.monotonic(), time.process_time(), self._faults.log_counters()[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                interval = self._interval
            self._wake.wait(interval)  # a new interval also ends the current one
            self._wake.clear()
            if self._stop.is_set():
                return
            self.sample()

    def sample(self) -> tuple:
        """Close the current interval: append its row and return it."""
        now, cpu, admitted = self._mark()
        then, cpu_before, admitted_before = self._last
        self._last = (now, cpu, admitted)
        elapsed = max(now - then, 1e-6)
        log_bytes = admitted - admitted_before
        cap = self._faults.log_rate()
        end = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        # whole hundredths of a second: exact in datetime (1/300 s), so end_time > ? with a
        # value read back selects exactly the later rows
        row = (end.replace(microsecond=end.microsecond // 10_000 * 10_000),
               _percent(cpu - cpu_before, elapsed * (os.cpu_count() or 1)),
               _percent(log_bytes, DATA_IO_BUDGET * elapsed),
               None if cap is None else _percent(log_bytes, cap * elapsed),
               _memory_percent())
        with self._lock:
            self._rows.append(row)
        return row

    # -- what the DMVs show ----------------------------------------------------------------
    def resource_stats(self) -> list[tuple]:
        """``sys.dm_db_resource_stats`` rows: end_time, avg_cpu_percent, avg_data_io_percent,
        avg_log_write_percent, avg_memory_usage_percent."""
        with self._lock:
            return list(self._rows)

    def log_rate_cap(self) -> int | None:
        """``primary_max_log_rate``: the throttle's bytes per second, None without one."""
        cap = self._faults.log_rate()
        return None if cap is None else int(cap)

    def wait_stats(self) -> list[tuple]:
        """``sys.dm_db_wait_stats`` rows: wait_type, waiting_tasks_count, wait_time_ms,
        max_wait_time_ms, signal_wait_time_ms (cumulative since start)."""
        _, waits, waited, longest = self._faults.log_counters()
        return [("LOG_RATE_GOVERNOR", waits, round(waited * 1000), round(longest * 1000), 0)]
