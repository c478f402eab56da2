"""Writing evaluation results: per-image CSV, summary CSV/Markdown, method comparison table and bar charts.

Layout of a report folder (one method):          (several methods):
    metrics.csv    name, CE, NMI, ... per image      <method>/metrics.csv, summary.csv, summary.md
    summary.csv    metric, better, mean, std, n      comparison.csv   metric, better, <method>...
    summary.md     the Markdown table                comparison.md    best value per metric in bold
                                                     summary.md       = comparison.md
                                                     plots/<group>.png
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import List, Mapping, Sequence

from .evaluate import EvaluationSummary, Row, format_value, format_summary
from .registry import HIGHER_IS_BETTER, METRIC_GROUPS, arrow


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def write_rows_csv(path: str | os.PathLike, rows: Sequence[Row], metrics: Sequence[str]) -> None:
    """One row per image: name, then the metric columns (full float precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["name", *metrics])
        for r in rows:
            w.writerow([r["name"], *(repr(float(r[m])) for m in metrics)])


def write_report(out_dir: str | os.PathLike, rows: Sequence[Row], summary: EvaluationSummary) -> List[Path]:
    """metrics.csv, summary.csv and summary.md in `out_dir`; returns the paths written."""
    out = Path(out_dir)
    write_rows_csv(out / "metrics.csv", rows, summary.metrics)
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "better", "mean", "std", "n"])
        for m in summary.metrics:
            w.writerow([m, "higher" if HIGHER_IS_BETTER[m] else "lower", repr(summary.mean[m]),
                        repr(summary.std[m]), summary.count])
    _write_text(out / "summary.md", format_summary(summary, "markdown"))
    return [out / "metrics.csv", out / "summary.csv", out / "summary.md"]


def best_method(values: Mapping[str, float], metric: str) -> List[str]:
    """The method(s) with the best finite value of `metric` (ties all count)."""
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return []
    target = max(finite.values()) if HIGHER_IS_BETTER[metric] else min(finite.values())
    return [k for k, v in finite.items() if v == target]


def comparison_markdown(summaries: Mapping[str, EvaluationSummary]) -> str:
    """Markdown table: a row per metric, a column per method (mean), the best value per metric in bold."""
    methods = list(summaries)
    metrics = next(iter(summaries.values())).metrics
    lines = ["| metric | better | " + " | ".join(methods) + " |",
             "|---|:-:|" + "---:|" * len(methods)]
    for m in metrics:
        vals = {k: summaries[k].mean[m] for k in methods}
        best = set(best_method(vals, m))
        cells = [f"**{format_value(vals[k])}**" if k in best else format_value(vals[k]) for k in methods]
        lines.append(f"| {m} | {arrow(m)} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{k}: {s.count}" for k, s in summaries.items())
    lines.append("")
    lines.append(f"Images scored per method: {counts}.")
    return "\n".join(lines)


def write_comparison(out_dir: str | os.PathLike, summaries: Mapping[str, EvaluationSummary]) -> List[Path]:
    """comparison.csv, comparison.md and summary.md (the same table) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = list(summaries)
    metrics = next(iter(summaries.values())).metrics
    with (out / "comparison.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "better", *methods])
        for m in metrics:
            w.writerow([m, "higher" if HIGHER_IS_BETTER[m] else "lower", *(repr(summaries[k].mean[m]) for k in methods)])
    table = comparison_markdown(summaries)
    _write_text(out / "comparison.md", table)
    _write_text(out / "summary.md", table)
    return [out / "comparison.csv", out / "comparison.md", out / "summary.md"]


def plot_groups(out_dir: str | os.PathLike, summaries: Mapping[str, EvaluationSummary]) -> List[Path]:
    """One bar-chart PNG per metric group (information, structure, gradient, perceptual): a panel per
    metric, a bar per method with its std as an error bar. Only groups with a computed metric are drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    methods = list(summaries)
    computed = set(next(iter(summaries.values())).metrics)
    written = []
    for group, names in METRIC_GROUPS.items():
        names = [m for m in names if m in computed]
        if not names:
            continue
        fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names) + 1, 3.2), squeeze=False)
        for ax, m in zip(axes[0], names):
            means = [summaries[k].mean[m] for k in methods]
            stds = [summaries[k].std[m] for k in methods]
            best = set(best_method(dict(zip(methods, means)), m))
            colours = ["tab:orange" if k in best else "tab:blue" for k in methods]
            ax.bar(range(len(methods)), [v if math.isfinite(v) else 0.0 for v in means],
                   yerr=[s if math.isfinite(s) else 0.0 for s in stds], color=colours, capsize=3)
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{m} {arrow(m)}", fontsize=10)
        fig.suptitle(f"{group} metrics (best in orange)", fontsize=11)
        fig.tight_layout()
        path = out / f"{group}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
