"""The benchmark's answer: the fewest connections that reach the database's ceiling.

Azure SQL Database caps each database's transaction-log write rate; past the cap more
connections only wait longer (``LOG_RATE_GOVERNOR``). So the answer is the **fewest
workers**, then the **smallest batch** (less memory, shorter transactions), then the
transport (bulk copy before ``auto`` before parameter arrays: fewer bytes per row for
the same log), among the steps that reached the ceiling:

- when the cap and the log-write percentages could be seen: the steps whose mean
  ``avg_log_write_percent`` is at least :data:`REACHED` (90 %);
- otherwise (no permission, not Azure SQL Database, or no step reached 90 % of the cap):
  the steps whose MB/s is at least 90 % of the best step's.

A step whose window held no ``sys.dm_db_resource_stats`` row (Azure writes one every 15 s,
so a short step can fall between two; its log % is unknown, "server figures missing") is
never silently left out: when other steps reached the cap, it counts as reaching the cap
too when its MB/s is at least 90 % of the best MB/s among those steps (the same data at
the same rate writes the same log), and the reason names it and says it was judged so
(``basis`` ``log-rate cap (by throughput)`` when it is the pick); otherwise it is judged
on throughput with every other step. ``no_server_figures`` lists such steps. When the cap
is known but no step's window held a row, the reason says so (not "no cap") and asks for a
longer ``--duration``.

The reason says it in plain words, with the figures, and what more workers added (at the
same batch size and transport).

>>> pick_words(4, 102_400, "bulk-copy")
'4 workers, 102,400 rows per batch, bulk copy'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.bench.sweep import StepResult

__all__ = ["REACHED", "Recommendation", "pick_words", "recommend"]

REACHED = 90.0  # percent of the cap (or of the best throughput) that counts as reached
_SAME = 5.0  # a gain within this many percent is "nothing"
_TRANSPORT_ORDER = {"bulk-copy": 0, "auto": 1, "parameter-arrays": 2}


@dataclass(frozen=True)
class Recommendation:
    """What to run with, and why.

    :param workers: connections.
    :param rows_per_batch: rows per batch.
    :param transport: the ``--transport`` to pass.
    :param transport_used: what that transport chose in the step.
    :param basis: ``log-rate cap``, ``log-rate cap (by throughput)`` (the pick had no server
        figures but was as fast as a step at the cap) or ``throughput`` (what "reached" was
        measured against).
    :param reason: the recommendation in plain words.
    :param step: the step it is based on.
    :param log_write_percent: that step's mean log write, percent of the cap.
    :param log_mib_per_second: that step's log rate.
    :param mb_per_second: that step's Arrow MB/s.
    :param rows_per_second: that step's rows/s.
    :param more_workers: each larger worker count at the same batch size and transport:
        ``{"workers", "mb_per_second", "gain_percent", "log_write_percent"}``.
    :param no_server_figures: the steps judged without the server's log % (their window
        held no resource-stats row), by number.
    """

    workers: int
    rows_per_batch: int
    transport: str
    transport_used: str | None
    basis: str
    reason: str
    step: int
    log_write_percent: float | None = None
    log_mib_per_second: float | None = None
    mb_per_second: float = 0.0
    rows_per_second: float = 0.0
    more_workers: list[dict[str, Any]] = field(default_factory=list)
    no_server_figures: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pick_words(workers: int, rows_per_batch: int, transport: str) -> str:
    """``4 workers, 102,400 rows per batch, bulk copy``."""
    return (f"{workers} worker{'s' if workers != 1 else ''}, {rows_per_batch:,} rows per "
            f"batch, {transport.replace('-', ' ')}")


def _order(step: StepResult) -> tuple[int, int, int, float]:
    return (step.workers, step.rows_per_batch, _TRANSPORT_ORDER.get(step.transport, 3),
            -step.mb_per_second)


def _gains(pick: StepResult, steps: list[StepResult]) -> tuple[list[dict[str, Any]], str]:
    """What more workers added: the figures, and a phrase."""
    more = sorted((s for s in steps if s.rows_per_batch == pick.rows_per_batch
                   and s.transport == pick.transport and s.workers > pick.workers),
                  key=lambda s: s.workers)
    rows, words = [], []
    for s in more:
        gain = (s.mb_per_second / pick.mb_per_second - 1) * 100 if pick.mb_per_second else 0.0
        rows.append({"workers": s.workers, "mb_per_second": s.mb_per_second,
                     "gain_percent": gain, "log_write_percent": s.server.log_write_percent})
        if abs(gain) < _SAME:
            words.append(f"{s.workers} workers added nothing ({gain:+.0f}%)")
        elif gain < 0:
            words.append(f"{s.workers} workers were slower ({gain:+.0f}%)")
        else:
            words.append(f"{s.workers} workers added {gain:.0f}% "
                         f"({s.mb_per_second:,.2f} MB/s)")
    return rows, "; ".join(words)


def _numbers(steps: list[StepResult]) -> str:
    """``step 1`` or ``steps 1, 3``."""
    return ("step " if len(steps) == 1 else "steps ") + ", ".join(str(s.number) for s in steps)


def _mib(cap: int) -> str:
    return f"{cap / 2**20:,.1f} MiB/s"


def _at_cap(pick: StepResult, reached: list[StepResult], blind: list[StepResult],
            cap: int) -> tuple[str, str]:
    """(basis, figures) when some step reached the cap; ``pick`` may be a step without
    server figures that is as fast as the fastest step at the cap."""
    fastest = max(reached, key=lambda s: s.mb_per_second)
    if pick in reached:
        log_rate = pick.server.log_mib_per_second
        figures = (f"{log_rate:,.1f} MiB/s of log, " if log_rate is not None else "") + (
            f"{pick.server.log_write_percent:.0f}% of the cap ({_mib(cap)}); "
            f"{pick.rows_per_second:,.0f} rows/s, {pick.mb_per_second:,.2f} MB/s")
        basis = "log-rate cap"
    else:
        share = (pick.mb_per_second / fastest.mb_per_second * 100 if fastest.mb_per_second
                 else 100.0)
        figures = (f"{pick.rows_per_second:,.0f} rows/s, {pick.mb_per_second:,.2f} MB/s, "
                   f"{share:.0f}% of the {fastest.mb_per_second:,.2f} MB/s of step "
                   f"{fastest.number}, which reached {fastest.server.log_write_percent:.0f}% "
                   f"of the cap ({_mib(cap)}): as fast as a step at the cap, so it reaches "
                   "the cap too")
        basis = "log-rate cap (by throughput)"
    if blind:
        figures += (f"; the server showed no resource-stats row for {_numbers(blind)} (log % "
                    f"unknown), so a step without one counts as reaching the cap when its MB/s "
                    f"is at least {REACHED:.0f}% of the fastest capped step's")
    return basis, figures


def _on_throughput(pick: StepResult, best: StepResult, with_log: list[StepResult],
                   blind: list[StepResult], cap: int | None, unseen: list[str]) -> str:
    """The figures when the answer is judged on throughput, and why."""
    share = pick.mb_per_second / best.mb_per_second * 100 if best.mb_per_second else 100.0
    figures = (f"{pick.rows_per_second:,.0f} rows/s, {pick.mb_per_second:,.2f} MB/s, "
               f"{share:.0f}% of the best step's ({best.mb_per_second:,.2f} MB/s with "
               f"{pick_words(best.workers, best.rows_per_batch, best.transport)})")
    if cap and with_log:
        best_log = max(s.server.log_write_percent or 0.0 for s in with_log)
        figures += (f"; no step {'with server figures ' if blind else ''}reached "
                    f"{REACHED:.0f}% of the log-rate cap ({_mib(cap)}; the most was "
                    f"{best_log:.1f}%): the ceiling is elsewhere (this client, the network, "
                    "the server's CPU)")
        if blind:
            figures += (f"; the server showed no resource-stats row for {_numbers(blind)} "
                        "(log % unknown): judged on throughput like every step")
    elif cap:
        figures += (f"; judged on throughput alone: the log-rate cap is {_mib(cap)}, but the "
                    "server showed no resource-stats row in any step's window, so no step's "
                    "log write is known; give a longer --duration (Azure writes a row every "
                    "15 s)" + "".join(f"; {u}" for u in unseen))
    elif unseen:
        figures += "; judged on throughput alone: " + "; ".join(unseen)
    else:
        figures += "; judged on throughput alone (the server showed no log-rate cap)"
    return figures


def recommend(steps: list[StepResult], cap: int | None,
              unseen: list[str] | None = None) -> Recommendation | None:
    """The recommendation from the measured steps (None when no step finished with a row).

    :param steps: the steps (only those with status ``ok`` and rows count).
    :param cap: the log-rate cap in bytes per second, when known.
    :param unseen: why server figures are missing (said in the reason).
    """
    done = [s for s in steps if s.status == "ok" and s.rows > 0]
    if not done:
        return None
    with_log = [s for s in done if s.server.log_write_percent is not None]
    blind = [s for s in done if s.server.log_write_percent is None] if with_log or cap else []
    reached = [s for s in with_log if (s.server.log_write_percent or 0.0) >= REACHED]
    if cap and reached:
        fastest = max(s.mb_per_second for s in reached)
        alike = [s for s in blind if s.mb_per_second >= fastest * REACHED / 100]
        pick = min(reached + alike, key=_order)
        basis, figures = _at_cap(pick, reached, blind, cap)
        if pick.workers == min(s.workers for s in done) and len({s.workers for s in done}) > 1:
            figures += "; the fewest workers tried already reach the cap"
    else:
        best = max(done, key=lambda s: s.mb_per_second)
        near = [s for s in done if s.mb_per_second >= best.mb_per_second * REACHED / 100]
        pick = min(near, key=_order)
        basis = "throughput"
        figures = _on_throughput(pick, best, with_log, blind, cap, unseen or [])
    more, gained = _gains(pick, done)
    reason = pick_words(pick.workers, pick.rows_per_batch, pick.transport)
    if pick.transport == "auto" and pick.transport_used:  # say what auto chose
        reason += f" (it chose {pick.transport_used.replace('-', ' ')})"
    reason += f": {figures}"
    if gained:
        reason += f"; {gained}"
    return Recommendation(
        workers=pick.workers, rows_per_batch=pick.rows_per_batch, transport=pick.transport,
        transport_used=pick.transport_used, basis=basis, reason=reason, step=pick.number,
        log_write_percent=pick.server.log_write_percent,
        log_mib_per_second=pick.server.log_mib_per_second, mb_per_second=pick.mb_per_second,
        rows_per_second=pick.rows_per_second, more_workers=more,
        no_server_figures=[s.number for s in blind])
