"""Scoring folders of fused images against their IR/VIS pairs: per-image rows and a mean/std summary.

    rows, summary = evaluate_folders(ir_dir, vis_dir, fused_dir, metrics=None, device="cpu", progress=True)
    print(format_summary(summary, "markdown"))

Pairs are matched by base name with data/pairs.py (png/jpg/jpeg/bmp/tif/tiff, any mix); the fused file
is the one in `fused_dir` with the same base name. Images are read as the reference toolkit reads them
(Pillow `convert('L')`). Triples whose sizes differ are skipped with a message, never resized.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from data.pairs import list_images, pair_folders
from utils.device import pick_device

from .imread import MetricImageError, read_gray
from .registry import METRIC_NAMES, arrow, compute_metrics, non_finite_message, parse_metric_list

Row = Dict[str, object]  # {"name": str, <metric>: float, ...}


@dataclass
class EvaluationSummary:
    """Mean and population std per metric over the scored images, and what could not be scored."""

    metrics: List[str]
    mean: Dict[str, float]
    std: Dict[str, float]
    count: int  # images scored
    fused_dir: str = ""
    missing: List[str] = field(default_factory=list)  # pair names without a fused file
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (name, reason): unreadable, size mismatch
    non_finite: Dict[str, List[str]] = field(default_factory=dict)  # metric -> images where it is NaN/inf
    unpaired: List[str] = field(default_factory=list)  # IR or VIS files without a partner


def summarize(rows: Sequence[Row], metrics: Sequence[str]) -> Tuple[Dict[str, float], Dict[str, float]]:
    """(mean, std) per metric over `rows`. Like the toolkit, one NaN makes that metric's mean NaN."""
    mean, std = {}, {}
    for m in metrics:
        vals = np.array([float(r[m]) for r in rows], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            mean[m] = float(vals.mean()) if vals.size else math.nan
            std[m] = float(vals.std()) if vals.size else math.nan
    return mean, std


def _triple_sizes(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> Optional[str]:
    if a.shape == b.shape == f.shape:
        return None
    fmt = lambda x: f"{x.shape[1]}x{x.shape[0]}"  # noqa: E731
    return f"sizes differ (IR {fmt(a)}, VIS {fmt(b)}, fused {fmt(f)}); images are never resized, skipped"


def evaluate_folders(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike, fused_dir: str | os.PathLike,
                     metrics: Optional[Sequence[str] | str] = None, device: str | torch.device = "cpu",
                     progress: bool = True, names: Optional[Sequence[str]] = None,
                     log: Callable[[str], None] = tqdm.write,
                     threads: Optional[int] = 1) -> Tuple[List[Row], EvaluationSummary]:
    """Score every fused image of `fused_dir` against its IR/VIS pair.

    metrics: names or 'EN,SD,...' (None: all 21, in the toolkit's order). device: 'auto', 'cpu', 'cuda'.
    names: restrict to these pair names (used to compare methods on the same pairs).
    threads: torch CPU threads while scoring, restored afterwards (None: leave as is). The work is many
    small memory-bound operations, and one thread is the fastest on a shared 2-core CPU (2 threads were
    4x slower under load).
    Returns (rows, summary): one {"name", metric...} dict per scored image, sorted by name, and the
    EvaluationSummary. Problems (missing fused files, unreadable files, size mismatches, NaN values)
    are reported through `log` and recorded in the summary; they never raise.
    """
    chosen = parse_metric_list(metrics)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    pairing = pair_folders(ir_dir, vis_dir)
    fused = list_images(fused_dir) if Path(fused_dir).is_dir() else None
    if fused is None:
        raise FileNotFoundError(f"{fused_dir}: no such directory (the fused images to score)")
    pairs = pairing.pairs if names is None else [p for p in pairing.pairs if p[0] in set(names)]
    summary = EvaluationSummary(metrics=chosen, mean={}, std={}, count=0, fused_dir=str(fused_dir),
                                unpaired=[str(p) for p in pairing.ir_only + pairing.vis_only])
    todo = []
    for name, ir_path, vis_path in pairs:
        if name in fused:
            todo.append((name, ir_path, vis_path, fused[name]))
        else:
            summary.missing.append(name)
    if summary.unpaired:
        log(f"{len(summary.unpaired)} IR/VIS file(s) without a partner, ignored: {', '.join(summary.unpaired[:5])}"
            + (" ..." if len(summary.unpaired) > 5 else ""))
    if summary.missing:
        log(f"{fused_dir}: no fused image for {len(summary.missing)} pair(s): {', '.join(summary.missing[:10])}"
            + (" ..." if len(summary.missing) > 10 else ""))
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        rows = _score(todo, chosen, dev, progress, log, summary, Path(fused_dir).name)
    finally:
        torch.set_num_threads(old_threads)
    summary.count = len(rows)
    summary.mean, summary.std = summarize(rows, chosen)
    return rows, summary


def _score(todo, chosen, dev, progress, log, summary: EvaluationSummary, label: str) -> List[Row]:
    rows: List[Row] = []
    bar = tqdm(todo, desc=f"metrics {label}", unit="img", disable=not progress)
    for name, ir_path, vis_path, fused_path in bar:
        try:
            a, b, f = read_gray(ir_path), read_gray(vis_path), read_gray(fused_path)
        except MetricImageError as exc:
            summary.skipped.append((name, str(exc)))
            log(f"skipped {name}: {exc}")
            continue
        problem = _triple_sizes(a, b, f)
        if problem:
            summary.skipped.append((name, problem))
            log(f"skipped {name}: {problem}")
            continue
        values = compute_metrics(a, b, f, chosen, dev, warn=False)
        for m, v in values.items():
            if not math.isfinite(v):
                summary.non_finite.setdefault(m, []).append(name)
        if non_finite_message(values):
            log(f"{name}: {non_finite_message(values)}; kept as NaN/inf")
        rows.append({"name": name, **values})
    return rows


def format_value(v: float) -> str:
    """A metric value for tables: 4 decimals, or 4 significant digits for tiny values."""
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"


def format_summary(summary: EvaluationSummary, style: str = "markdown") -> str:
    """The summary as a Markdown table (metric | direction | mean | std) or as one line 'EN 7.12 | SD ...'."""
    if style == "line":
        body = " | ".join(f"{m}{arrow(m)} {format_value(summary.mean[m])}" for m in summary.metrics)
        return f"{summary.count} images: {body}"
    if style != "markdown":
        raise ValueError(f"format_summary: style must be 'markdown' or 'line', not {style!r}")
    lines = ["| metric | better | mean | std |", "|---|:-:|---:|---:|"]
    for m in summary.metrics:
        lines.append(f"| {m} | {arrow(m)} | {format_value(summary.mean[m])} | {format_value(summary.std[m])} |")
    return "\n".join(lines)


def final_line(summary: EvaluationSummary) -> str:
    """'Scored N images (M without a fused image, K skipped).'"""
    extra = []
    if summary.missing:
        extra.append(f"{len(summary.missing)} without a fused image")
    if summary.skipped:
        extra.append(f"{len(summary.skipped)} skipped")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"Scored {summary.count} image{'s' if summary.count != 1 else ''} from {summary.fused_dir}{tail}."


__all__ = ["EvaluationSummary", "evaluate_folders", "final_line", "format_summary", "summarize", "METRIC_NAMES"]
