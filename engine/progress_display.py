"""Live progress for ``azsql-bulk load``: a rich display on a terminal, log lines elsewhere.

:class:`ProgressDisplay` takes :class:`engine.results.Progress` snapshots (from worker
threads and from the transfer's once-a-second tick) and shows rows, megabytes, rows/s and
MB/s (over the last few seconds, with the load's average beside them; the final line
shows only the average, and which transport wrote the rows), workers busy, token renewals, retries,
reconnects and, when the source's row count is known, a bar and an ETA. On a terminal it
redraws four times a second; when stdout is not a terminal (CI, ``| tee``, cron) it writes
one line to stderr every ``interval`` seconds instead.

>>> display = ProgressDisplay(table="dbo.t", workers=2, mode="log", interval=0,
...                           err=__import__("io").StringIO())
>>> display.describe().startswith("0 rows")
True
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.results import Progress

__all__ = ["ProgressDisplay", "format_duration"]

_WINDOW = 5.0  # seconds of samples behind the "current" rates


def format_duration(seconds: float) -> str:
    """``H:MM:SS``.

    >>> format_duration(3725.4)
    '1:02:05'
    """
    whole = max(0, int(seconds + 0.5))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _count(n: float) -> str:
    return f"{n:,.0f}"


class ProgressDisplay:
    """Shows a running load's progress; use as a context manager around the transfer.

    :param table: the target table, for the heading.
    :param workers: the number of workers (for "workers busy").
    :param load_id: the load's journal id, for the heading (empty: not known yet; the
        engine derives it).
    :param rows_per_batch: estimates rows skipped on a resumed load.
    :param mode: ``auto`` (rich when ``out`` is a terminal, else log lines), ``rich``,
        ``log`` or ``off``.
    :param interval: seconds between log lines.
    :param out: where the rich display goes (default stdout).
    :param err: where log lines go (default stderr).
    :param title: the rich display's heading (the command that runs).
    :param timestamps: start log lines with the time (off where the logger stamps them).
    """

    def __init__(self, *, table: str, workers: int, load_id: str = "",
                 rows_per_batch: int = 0, mode: str = "auto", interval: float = 5.0,
                 out: IO[str] | None = None, err: IO[str] | None = None,
                 title: str = "azsql-bulk load", timestamps: bool = True) -> None:
        self.table, self.workers, self.load_id = table, workers, load_id
        self.title, self.timestamps = title, timestamps
        self.rows_per_batch = rows_per_batch
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.out, "isatty", None)
            mode = "rich" if isatty is not None and isatty() else "log"
        if mode == "rich":
            try:
                import rich  # noqa: F401 (only whether it is installed)
            except ImportError:  # not a declared dependency everywhere: log lines still work
                mode = "log"
        self.mode = mode
        self.interval = interval
        self.phase = "connecting"
        self._lock = threading.Lock()
        self._latest: Progress | None = None
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()
        self._started = time.monotonic()
        self._last_log = self._started
        self._live: Any = None
        self._stopped = False
        self._final: str | None = None  # set by stop(): figures are the whole load's now

    # -- input ------------------------------------------------------------------------
    @property
    def latest(self) -> Progress | None:
        """The newest snapshot, or None before the first."""
        with self._lock:
            return self._latest

    def update(self, progress: Progress) -> None:
        """Record a :class:`~engine.results.Progress` snapshot (thread-safe, quick)."""
        now = time.monotonic()
        with self._lock:
            if self._latest is None or progress.seconds >= self._latest.seconds:
                self._latest = progress
            if progress.phase == "apply":
                self.phase = "applying the staged rows to the table"
            elif self.phase == "connecting":
                self.phase = "loading"
            self._samples.append((now, progress.rows, progress.bytes))
            while len(self._samples) > 2 and now - self._samples[0][0] > _WINDOW:
                self._samples.popleft()
            due = self.mode == "log" and now - self._last_log >= self.interval
            if due:
                self._last_log = now
        if due:
            self._log_line()

    def set_phase(self, phase: str) -> None:
        """Say what the load is doing (``loading``, ``stopping at a batch boundary``...)."""
        with self._lock:
            self.phase = phase
        if self.mode == "log":
            self._write_err(f"azsql-bulk: {phase}")

    def note(self, text: str) -> None:
        """Print a message without tearing the live display."""
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self._write_err(text)

    # -- figures ----------------------------------------------------------------------
    def _figures(self) -> dict[str, Any]:
        with self._lock:
            p = self._latest
            samples = list(self._samples)
            phase = self.phase
        elapsed = time.monotonic() - self._started
        rows = p.rows if p else 0
        nbytes = p.bytes if p else 0
        seconds = p.seconds if p and p.seconds > 0 else elapsed
        avg_rows = rows / seconds if seconds > 0 else 0.0
        avg_mb = nbytes / 1e6 / seconds if seconds > 0 else 0.0
        cur_rows, cur_mb = avg_rows, avg_mb
        if len(samples) >= 2 and samples[-1][0] - samples[0][0] >= 1.0:
            span = samples[-1][0] - samples[0][0]
            cur_rows = (samples[-1][1] - samples[0][1]) / span
            cur_mb = (samples[-1][2] - samples[0][2]) / 1e6 / span
        total = p.total_rows if p else None
        skipped_batches = p.batches_skipped if p else 0
        done_rows = rows
        if total is not None and skipped_batches and self.rows_per_batch:
            done_rows = min(total, rows + skipped_batches * self.rows_per_batch)
        eta = None
        if total is not None and total > 0:
            rate = cur_rows or avg_rows
            left = max(0, total - done_rows)
            eta = left / rate if rate > 0 else None
        return {
            "phase": phase, "elapsed": elapsed, "rows": rows, "bytes": nbytes,
            "rows_per_second": cur_rows, "mb_per_second": cur_mb,
            "avg_rows_per_second": avg_rows, "avg_mb_per_second": avg_mb,
            "total_rows": total, "done_rows": done_rows, "eta": eta,
            "batches": p.batches if p else 0, "batches_skipped": skipped_batches,
            "workers_busy": p.workers_busy if p else None,
            "retries": p.retries if p else None,
            "reconnects": p.reconnects if p else None,
            "token_renewals": p.token_renewals if p else None,
            "rows_rejected": p.rows_rejected if p else 0,
        }

    def describe(self) -> str:
        """One line: the log-mode text (the final one: averages only, and the transport).

        >>> from engine.results import Progress
        >>> d = ProgressDisplay(table="t", workers=1, mode="log", err=__import__("io").StringIO())
        >>> d.update(Progress(40_000, 4, 0, 4_000_000, 2.0, None))
        >>> d.stop("done", final="via bulk copy")
        >>> d.describe().split(", ")[:3]
        ['40,000 rows', '4.0 MB', '20,000 rows/s average']
        """
        f = self._figures()
        parts = []
        if f["total_rows"] is not None:
            pct = 100.0 * f["done_rows"] / f["total_rows"] if f["total_rows"] else 100.0
            parts.append(f"{_count(f['rows'])} / {_count(f['total_rows'])} rows ({pct:.1f}%)")
        else:
            parts.append(f"{_count(f['rows'])} rows")
        parts.append(f"{f['bytes'] / 1e6:,.1f} MB")
        if self._final is not None:
            parts.append(f"{_count(f['avg_rows_per_second'])} rows/s average")
            parts.append(f"{f['avg_mb_per_second']:,.2f} MB/s average")
        else:
            parts.append(f"{_count(f['rows_per_second'])} rows/s "
                         f"(avg {_count(f['avg_rows_per_second'])})")
            parts.append(f"{f['mb_per_second']:,.2f} MB/s (avg {f['avg_mb_per_second']:,.2f})")
        if f["workers_busy"] is not None:
            parts.append(f"workers busy {f['workers_busy']}/{self.workers}")
        counters = [(f[k], label) for k, label in (("token_renewals", "renewals"),
                                                    ("retries", "retries"),
                                                    ("reconnects", "reconnects"))
                    if f[k] is not None]
        parts.extend(f"{value} {label}" for value, label in counters)
        if f["rows_rejected"]:
            parts.append(f"{_count(f['rows_rejected'])} rows rejected")
        if f["batches_skipped"]:
            parts.append(f"{f['batches_skipped']} batches skipped (already loaded)")
        parts.append(f"elapsed {format_duration(f['elapsed'])}")
        if f["eta"] is not None and self._final is None:
            parts.append(f"ETA {format_duration(f['eta'])}")
        if self._final:
            parts.append(self._final)
        return ", ".join(parts)

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        f = self._figures()
        grid = Table.grid(padding=(0, 2))
        for style in ("dim", "bold", "dim", "bold"):
            grid.add_column(justify="left", no_wrap=True, style=style)
        heading = Text.assemble((f"{self.title} ", "bold"), ("→ ", "dim"),
                                (self.table, "bold cyan"),
                                (f"   {self.workers} workers"
                                 + (f"   load_id {self.load_id}" if self.load_id else ""),
                                 "dim"))
        lines: list[Any] = [heading]
        if f["total_rows"] is not None:
            total = max(1, f["total_rows"])
            bar = Table.grid(padding=(0, 2))
            bar.add_column(width=40)
            bar.add_column(justify="right", no_wrap=True)
            bar.add_column(no_wrap=True)
            pct = 100.0 * f["done_rows"] / total
            eta = format_duration(f["eta"]) if f["eta"] is not None else "-:--:--"
            bar.add_row(ProgressBar(total=total, completed=f["done_rows"], width=40),
                        f"{pct:5.1f}%", f"ETA {eta}")
            lines.append(bar)
        rows_text = _count(f["rows"])
        if f["total_rows"] is not None:
            rows_text = f"{_count(f['done_rows'])} / {_count(f['total_rows'])}"
            if f["batches_skipped"]:  # a resumed load: say how much this run sent
                rows_text += f"  ({_count(f['rows'])} this run)"
        if self._final is not None:  # the whole load's figures: its averages only
            grid.add_row("rows", rows_text, "rows/s", f"{_count(f['avg_rows_per_second'])} avg")
            grid.add_row("data", f"{f['bytes'] / 1e6:,.1f} MB", "MB/s",
                         f"{f['avg_mb_per_second']:,.2f} avg")
        else:
            grid.add_row("rows", rows_text, "rows/s", f"{_count(f['rows_per_second'])}  "
                         f"(avg {_count(f['avg_rows_per_second'])})")
            grid.add_row("data", f"{f['bytes'] / 1e6:,.1f} MB", "MB/s",
                         f"{f['mb_per_second']:,.2f}  (avg {f['avg_mb_per_second']:,.2f})")
        busy = f["workers_busy"]
        grid.add_row("batches", f"{_count(f['batches'])} committed"
                     + (f", {_count(f['batches_skipped'])} skipped" if f["batches_skipped"]
                        else ""),
                     "workers busy", f"{busy}/{self.workers}" if busy is not None else "n/a")

        def counter(key: str) -> str:
            return "n/a" if f[key] is None else str(f[key])

        grid.add_row("renewals", counter("token_renewals"), "retries",
                     f"{counter('retries')}  (reconnects {counter('reconnects')})")
        if f["rows_rejected"]:
            grid.add_row("rejected", _count(f["rows_rejected"]), "", "")
        grid.add_row("elapsed", format_duration(f["elapsed"]), "status", f["phase"])
        if self._final:
            grid.add_row("transport", self._final, "", "")
        lines.append(grid)
        from rich.console import Group

        return Group(*lines)

    # -- output -----------------------------------------------------------------------
    def _write_err(self, text: str) -> None:
        try:
            self.err.write(text + "\n")
            self.err.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the load
            pass

    def _log_line(self) -> None:
        stamp = time.strftime("%H:%M:%S ") if self.timestamps else ""
        self._write_err(f"{stamp}azsql-bulk: {self.table}: {self.describe()}")

    def start(self) -> ProgressDisplay:
        """Start showing progress."""
        self._started = time.monotonic()
        self._last_log = self._started
        self._stopped = False
        if self.mode == "rich":
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.out)
            self._live = Live(get_renderable=self._render, console=console,
                              refresh_per_second=4, transient=False,
                              redirect_stdout=False, redirect_stderr=True)
            self._live.start()
        return self

    def stop(self, phase: str | None = None, *, final: str | None = None) -> None:
        """Draw the last state and stop (a final log line in log mode).

        The last state shows the load's average rates only (the current ones describe a
        few seconds, not the load).

        :param phase: the final status to show, e.g. ``done``.
        :param final: what else the last state says, e.g. ``via bulk copy``.
        """
        if self._stopped:
            return
        self._stopped = True
        self._final = final or ""
        if phase is not None:
            with self._lock:
                self.phase = phase
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
        elif self.mode == "log" and self._latest is not None:
            self._log_line()

    def __enter__(self) -> ProgressDisplay:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop(None if exc_type is None else "stopped")
