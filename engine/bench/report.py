"""The benchmark's output: a rich table, a PNG chart, a self-contained HTML page, the JSON.

A step whose window held no resource-stats row although the view could be read shows
``no row`` as its log % ("server figures missing"; ``server.missing`` in the JSON says
why), not ``-`` (which means the server's figures could not be seen at all).

The chart has two panels against the worker count, one line per rows-per-batch and
transport: the client's throughput (MB/s), and the server's mean log write as a percent
of the cap (with the 90 % line the recommendation is judged by), when it could be seen.
It needs matplotlib (the ``bench`` extra); without it :func:`write_chart` says how to
install it and everything else still works.

>>> cell(None), cell(12.345, "{:.1f}")
('-', '12.3')
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.bench.recommend import REACHED, Recommendation
from engine.bench.sweep import StepResult

__all__ = ["COLUMNS", "MATPLOTLIB_MISSING", "cell", "chart_png", "html_page", "no_answer",
           "payload", "rates_caption", "rich_table", "rows_of", "stopped_note",
           "write_chart"]

MATPLOTLIB_MISSING = ("the chart needs matplotlib, which is not installed: pip install "
                      "'azsql-bulk[bench]' (or pip install matplotlib)")


def cell(value: Any, fmt: str = "{:,.0f}") -> str:
    """``value`` formatted, or ``-`` when unknown."""
    return "-" if value is None else fmt.format(value)


def _waits(step: StepResult) -> str:
    ms = step.server.log_rate_wait_ms
    return "-" if ms is None else f"{ms:,}"


#: heading -> how a step's cell is written
COLUMNS: tuple[tuple[str, Callable[[StepResult], str]], ...] = (
    ("#", lambda s: str(s.number)),
    ("workers", lambda s: str(s.workers)),
    ("rows per batch", lambda s: f"{s.rows_per_batch:,}"),
    ("transport", lambda s: (s.transport_used or s.transport)
     + (" (auto)" if s.transport == "auto" and s.transport_used else "")),
    ("rows", lambda s: f"{s.rows:,}"),
    ("s", lambda s: f"{s.seconds:,.1f}"),
    ("rows/s", lambda s: cell(s.rows_per_second)),
    ("MB/s", lambda s: cell(s.mb_per_second, "{:,.2f}")),
    ("CPU µs/row", lambda s: cell(s.cpu_us_per_row, "{:,.2f}")),
    ("retries", lambda s: str(s.retries)),
    ("log %", lambda s: "no row" if s.server.missing and s.server.log_write_percent is None
     else cell(s.server.log_write_percent, "{:.1f}")),
    ("log MiB/s", lambda s: cell(s.server.log_mib_per_second, "{:,.2f}")),
    ("CPU %", lambda s: cell(s.server.cpu_percent, "{:.0f}")),
    ("data IO %", lambda s: cell(s.server.data_io_percent, "{:.0f}")),
    ("log waits ms", _waits),
    ("status", lambda s: s.status),
)


def rows_of(steps: list[StepResult]) -> list[list[str]]:
    """The table's cells, one list per step."""
    return [[fmt(s) for _, fmt in COLUMNS] for s in steps]


def rates_caption(steps: list[StepResult]) -> str:
    """What the table's rows/s and MB/s are over (the sweep makes every step alike).

    >>> rates_caption([])
    'rows/s and MB/s: over each whole step, set-up included'
    """
    if steps and all(s.rates_over == "loading window" for s in steps if s.rows):
        return ("rows/s and MB/s: over each step's loading window, from its first committed "
                "batch to its last (the step lines give the whole-step rates too)")
    return "rows/s and MB/s: over each whole step, set-up included"


def rich_table(steps: list[StepResult], recommended: int | None, title: str) -> Any:
    """A :class:`rich.table.Table` of the steps, the recommended one in bold green."""
    from rich import box
    from rich.table import Table

    # no vertical rules, one space between columns: the 16 columns fit 130 characters
    table = Table(title=title, title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, padding=0, pad_edge=False,
                  caption=rates_caption(steps), caption_justify="left")
    cells_of = rows_of(steps)
    for i, (heading, _) in enumerate(COLUMNS):
        # figures are never cut: a narrow terminal wraps the headings instead
        widest = max([len(cells[i]) for cells in cells_of] + [len(w) for w in heading.split()])
        table.add_column(heading, justify="left" if heading in ("transport", "status")
                         else "right", min_width=widest, overflow="fold")
    for step, cells in zip(steps, cells_of, strict=True):
        table.add_row(*cells, style="bold green" if step.number == recommended else None)
    return table


def no_answer(steps: list[StepResult]) -> str:
    """Why there is no recommendation, true to what the steps loaded: a stopped or failed
    step may have loaded rows, but only a step that finished is judged.

    >>> no_answer([])
    'No step loaded a row: no recommendation.'
    """
    loaded = [s for s in steps if s.rows > 0]
    stopped = [s for s in loaded if s.status == "stopped"]
    if stopped:
        s = stopped[-1]
        return (f"No recommendation: the run was stopped during step {s.number} (stopped after "
                f"{s.rows:,} rows, measured above); a stopped step is not used for a "
                "recommendation, and no step finished")
    if loaded:
        return ("No recommendation: no step finished; "
                + "; ".join(f"step {s.number} {s.status} after {s.rows:,} rows"
                            for s in loaded))
    return "No step loaded a row: no recommendation."


def stopped_note(steps: list[StepResult]) -> str | None:
    """The note for a run stopped during a step, when a recommendation was still made from
    the steps that finished (None when no step was stopped)."""
    stopped = [s for s in steps if s.status == "stopped"]
    if not stopped:
        return None
    s = stopped[-1]
    return (f"the run was stopped during step {s.number} (stopped after {s.rows:,} rows); a "
            "stopped step is not used for a recommendation, only the steps that finished")


def payload(*, steps: list[StepResult], recommendation: Recommendation | None,
            server: dict[str, Any], settings: dict[str, Any], status: str,
            exit_code: int, chart: str | None, html_path: str | None,
            notes: list[str]) -> dict[str, Any]:
    """The ``--json`` object: the settings, the server's cap, every step, the
    recommendation (None when no step finished with a row; ``notes`` then say why) and what
    could not be seen."""
    return {"status": status, "exit_code": exit_code, "settings": settings,
            "server": server, "steps": [s.to_dict() for s in steps],
            "recommendation": recommendation.to_dict() if recommendation else None,
            "chart": chart, "html": html_path, "notes": notes}


def chart_png(steps: list[StepResult], title: str) -> bytes:
    """The chart as PNG bytes.

    :raises ModuleNotFoundError: matplotlib is not installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[int, str], list[StepResult]] = {}
    for s in steps:
        if s.rows:
            series.setdefault((s.rows_per_batch, s.transport), []).append(s)
    with_log = any(s.server.log_write_percent is not None for s in steps)
    fig, axes = plt.subplots(1, 2 if with_log else 1, figsize=(11 if with_log else 6, 4.2),
                             squeeze=False)
    left = axes[0][0]
    for (batch, transport), points in series.items():
        points.sort(key=lambda s: s.workers)
        label = f"{batch:,} rows/batch, {transport}"
        left.plot([p.workers for p in points], [p.mb_per_second for p in points],
                  marker="o", label=label)
        if with_log:
            axes[0][1].plot([p.workers for p in points],
                            [p.server.log_write_percent for p in points], marker="o",
                            label=label)
    workers = sorted({s.workers for s in steps}) or [1]
    left.set(xlabel="workers (connections)", ylabel="MB/s (Arrow bytes)",
             title="client throughput", xticks=workers)
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    if with_log:
        right = axes[0][1]
        right.axhline(REACHED, color="grey", linestyle="--", linewidth=1)
        right.text(workers[0], REACHED + 1, f"{REACHED:.0f}% of the cap", fontsize=8,
                   color="grey")
        right.set(xlabel="workers (connections)", ylabel="avg_log_write_percent",
                  title="server: log write, % of the cap", xticks=workers, ylim=(0, 105))
        right.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def write_chart(steps: list[StepResult], path: Path, title: str) -> str | None:
    """Write the PNG chart to ``path``; None, or why not (matplotlib missing)."""
    try:
        png = chart_png(steps, title)
    except ModuleNotFoundError:
        return MATPLOTLIB_MISSING
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return None


def html_page(*, steps: list[StepResult], recommendation: Recommendation | None,
              title: str, facts: list[str], notes: list[str], png: bytes | None) -> str:
    """A self-contained HTML page: the recommendation, the chart (embedded), the table."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h, _ in COLUMNS)
    body = "".join(
        "<tr" + (' class="pick"' if recommendation and s.number == recommendation.step
                 else "") + ">" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
        for s, cells in zip(steps, rows_of(steps), strict=True))
    answer = (f"<p class=\"answer\"><b>Recommendation:</b> {esc(recommendation.reason)}</p>"
              if recommendation else f"<p class=\"answer\">{esc(no_answer(steps))}</p>")
    image = ("<img alt=\"throughput and log write by workers\" src=\"data:image/png;base64,"
             + base64.b64encode(png).decode() + "\">") if png else \
        f"<p>{esc(MATPLOTLIB_MISSING)}</p>"
    facts_html = "".join(f"<li>{esc(f)}</li>" for f in facts)
    said = None if recommendation else no_answer(steps)  # already the page's answer
    notes = [n for n in notes if n != said]
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f3f3f3; }}
tr.pick td {{ background: #e6f4e6; font-weight: bold; }}
.answer {{ font-size: 16px; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{esc(title)}</h1>
<ul>{facts_html}</ul>
{answer}
{image}
<h2>Steps</h2>
<p>{esc(rates_caption(steps))}</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{"<h2>Notes</h2><ul>" + notes_html + "</ul>" if notes else ""}
</body></html>
"""
