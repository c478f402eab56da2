"""Pictures of a training run: loss curves from the per-update history."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over `window` points (shorter at the start); NaN-free input assumed."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(v.size):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


# The headline terms per network; every term is in losses.csv and TensorBoard.
HEADLINE_TERMS = {"student": ("total", "fuse", "grad", "contrast", "cos"),
                  "teacher": ("total", "base", "semantic", "mutual_cal", "mutual_cos")}


def plot_loss_curves(history: List[Dict], path: str | os.PathLike, title: str = "SAGE training") -> None:
    """One panel per network ('student', 'teacher'): its headline loss terms against the update number."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: Dict[str, Dict[str, List]] = defaultdict(lambda: defaultdict(list))
    for rec in history:
        for key, val in rec.items():
            if key in ("step", "epoch", "kind"):
                continue
            series[rec["kind"]][key].append((rec["step"], float(val)))
    kinds = [k for k in ("student", "teacher") if k in series] or ["student"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for name in HEADLINE_TERMS[kind]:
            pts = series[kind].get(name)
            if not pts:
                continue
            x, y = zip(*pts)
            window = max(1, len(y) // 50)
            ax.plot(x, smooth(y, window), label=name, lw=2 if name == "total" else 1)
        ax.set_title(f"{kind} losses")
        ax.set_xlabel("update")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
