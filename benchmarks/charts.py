"""The report's PNG charts, drawn with matplotlib from the JSON of one ``run.py`` invocation.

- ``chart_rows_per_second.png``: median wall rows/s of every tool, one panel per dataset;
- ``chart_cpu_per_row.png``: median client CPU seconds per million rows, same layout, with
  each tool's CPU ratio to azsql-bulk (one worker) measured in the same rounds;
- ``chart_scaling.png``: azsql-bulk rows/s by workers per dataset, beside the emulator's
  busy seconds per wall second (how close the server is to its own ceiling);
- ``chart_memory.png``: client RSS over time during the largest loads (the memory
  benchmark's streams of a file many times ``max_memory_bytes``, and the throttled
  8-worker load).

Every function returns the file names it wrote (relative to ``out_dir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PEER_ORDER = ("azsql-bulk-w1", "azsql-bulk-w2", "azsql-bulk-w4", "azsql-bulk-w8", "turbodbc",
              "pyodbc", "pandas", "mssql-python", "mssql-python-bulkcopy", "python-tds")
LABELS = {"turbodbc": "raw turbodbc (pre-cast)", "pyodbc": "pyodbc fast_executemany",
          "pandas": "pandas to_sql", "mssql-python": "mssql-python executemany",
          "mssql-python-bulkcopy": "mssql-python bulkcopy", "python-tds": "python-tds copy_to"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _label(tool: str) -> str:
    return LABELS.get(tool, tool.replace("azsql-bulk-w", "azsql-bulk, workers="))


def _ok(report: dict[str, Any]) -> list[dict[str, Any]]:
    rank = {t: i for i, t in enumerate(PEER_ORDER)}
    return sorted((r for r in report["results"] if "error" not in r),
                  key=lambda r: rank.get(r["tool"], 99))


def _peer_bars(plt: Any, peers: list[dict[str, Any]], key: str, xlabel: str, title: str,
               ratio_key: str | None, path: Path) -> None:
    fig, axes = plt.subplots(1, len(peers), figsize=(5.2 * len(peers), 4.6), squeeze=False)
    for ax, report in zip(axes[0], peers, strict=True):
        rows = _ok(report)
        names = [_label(r["tool"]) for r in rows]
        values = [r[key] for r in rows]
        colors = ["#1f77b4" if r["tool"].startswith("azsql-bulk") else "#999999" for r in rows]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        for y, r in enumerate(rows):
            note = f"{r[key]:,.0f}" if r[key] >= 100 else f"{r[key]:.2f}"
            if ratio_key and r.get(ratio_key) is not None and r["tool"] != report["base"]:
                note += f"  (x{r[ratio_key]:.2f})"
            ax.text(r[key], y, " " + note, va="center", fontsize=7)
        failed = [r["tool"] for r in report["results"] if "error" in r]
        if failed:
            ax.text(0.98, 0.02, "failed: " + ", ".join(_label(t) for t in failed),
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="red")
        ax.set_xlim(0, max(values) * 1.45)
        ax.set_title(f"{report['dataset']}: {report['rows']:,} rows, median of "
                     f"{report['rounds']}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(runs: dict[str, Any], out_dir: Path) -> list[str]:
    """Every chart the runs have data for; returns the file names written."""
    plt = _plt()
    written: list[str] = []
    order = {"narrow": 0, "wide": 1, "text": 2}
    peers = sorted((v for k, v in runs.items() if k.startswith("peers-") and "results" in v),
                   key=lambda v: order.get(v["dataset"], 9))
    if peers:
        name = "chart_rows_per_second.png"
        _peer_bars(plt, peers, "rows_per_second", "wall rows/s (emulator-bound)",
                   "Rows/s by tool\n(the emulator, a Python TDS server on the same 2 cores, "
                   "bounds these)", None, out_dir / name)
        written.append(name)
        name = "chart_cpu_per_row.png"
        _peer_bars(plt, peers, "cpu_seconds_per_million_rows",
                   "client CPU s per million rows (lower is better)",
                   "Client CPU per row by tool\n(x r) = CPU ratio to azsql-bulk w1 in the same "
                   "rounds", "ratio_cpu", out_dir / name)
        written.append(name)
        written.append(_scaling(plt, peers, out_dir / "chart_scaling.png"))
    memory_runs = runs.get("memory", {}).get("runs", [])
    throttle = runs.get("scenarios", {}).get("throttle")
    if memory_runs or throttle:
        written.append(_memory(plt, runs.get("memory", {}), throttle, out_dir / "chart_memory.png"))
    return written


def _scaling(plt: Any, peers: list[dict[str, Any]], path: Path) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for report in peers:
        pts = sorted((int(r["tool"].rsplit("w", 1)[1]), r) for r in _ok(report)
                     if r["tool"].startswith("azsql-bulk-w"))
        if not pts:
            continue
        workers = [w for w, _ in pts]
        # the median of per-round ratios to w1, as in the report's tables
        left.plot(workers, [r.get("ratio_rows_per_second", 1.0) for _, r in pts], marker="o",
                  label=f"{report['dataset']} ({report['rows']:,} rows)")
        right.plot(workers, [r["server_seconds"] / r["wall_seconds"] for _, r in pts],
                   marker="o", label=report["dataset"])
    ticks = [1, 2, 4, 8]
    left.plot(ticks, ticks, ls=":", color="grey", label="linear")
    left.set_xscale("log", base=2)
    left.set_yscale("log", base=2)
    left.set_xticks(ticks, [str(t) for t in ticks])
    left.set_yticks([0.5, 1, 2, 4, 8], ["0.5", "1", "2", "4", "8"])
    left.set_xlabel("workers (connections)")
    left.set_ylabel("rows/s ÷ azsql-bulk w1 (median of rounds)")
    left.set_title("azsql-bulk scaling by workers", fontsize=9)
    left.legend(fontsize=7)
    right.set_xscale("log", base=2)
    right.set_xticks(ticks, [str(t) for t in ticks])
    right.axhline(1.0, ls=":", color="grey")
    right.set_xlabel("workers (connections)")
    right.set_ylabel("emulator busy s per wall s")
    right.set_title("the emulator's request handling (1.0 = one core's worth)", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _memory(plt: Any, memory: dict[str, Any], throttle: dict[str, Any] | None,
            path: Path) -> str:
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for run in memory.get("runs", []):
        ts = run.get("rss_samples") or []
        if ts:
            line = ax.plot([t for t, _ in ts], [v for _, v in ts],
                           label=f"text {run['rows']:,} rows, {run['arrow_mib_loaded']} MiB "
                                 f"Arrow, {run['workers']} workers, "
                                 f"max_memory {run['max_memory_mib']} MiB")[0]
            ax.axhline(run["baseline_rss_mib"], ls=":", color=line.get_color(), lw=0.8)
    if throttle and throttle.get("rss_samples"):
        ts = throttle["rss_samples"]
        ax.plot([t for t, _ in ts], [v for _, v in ts],
                label=f"narrow {throttle['throttled']['rows']:,} rows, throttled, "
                      f"{throttle.get('workers', '?')} workers (default max_memory)")
    ax.set_xlabel("seconds into the load")
    ax.set_ylabel("client RSS MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("Client memory over time (dotted: RSS after login, before the load)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
