"""The 21 metrics by name: column order, direction, groups, and one call computing any subset."""
from __future__ import annotations

import math
import warnings
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch

from . import gradient, information, qcb, qy, ssim, statistics, vif

# Column order of the reference toolkit's report (eval_torch.py).
METRIC_NAMES: List[str] = ["CE", "NMI", "QNCIE", "TE", "EI", "Qy", "Qcb", "EN", "MI", "SF", "AG", "SD",
                           "CC", "SCD", "VIF", "MSE", "PSNR", "Qabf", "Nabf", "SSIM", "MS_SSIM"]

# True: higher is better. TE is reported as higher-is-better by convention (docs/metrics.md).
HIGHER_IS_BETTER: Dict[str, bool] = {name: True for name in METRIC_NAMES}
HIGHER_IS_BETTER.update(CE=False, MSE=False, Nabf=False)

# Groups for the comparison bar charts.
METRIC_GROUPS: Dict[str, List[str]] = {
    "information": ["EN", "MI", "NMI", "CE", "TE", "QNCIE"],
    "structure": ["SSIM", "MS_SSIM", "Qy", "CC", "SCD", "MSE", "PSNR"],
    "gradient": ["EI", "SF", "AG", "SD", "Qabf", "Nabf"],
    "perceptual": ["VIF", "Qcb"],
}

# name -> (function, uses sources): single-image metrics take only the fused image.
_FUNCTIONS: Dict[str, tuple] = {
    "CE": (information.ce, True), "NMI": (information.nmi, True), "QNCIE": (information.qncie, True),
    "TE": (information.te, True), "EI": (gradient.ei, False), "Qy": (qy.qy, True), "Qcb": (qcb.qcb, True),
    "EN": (information.en, False), "MI": (information.mi, True), "SF": (statistics.sf, False),
    "AG": (statistics.ag, False), "SD": (statistics.sd, False), "CC": (statistics.cc, True),
    "SCD": (statistics.scd, True), "VIF": (vif.vif, True), "MSE": (statistics.mse, True),
    "PSNR": (statistics.psnr, True), "Qabf": (gradient.qabf, True), "Nabf": (gradient.nabf, True),
    "SSIM": (ssim.ssim, True), "MS_SSIM": (ssim.ms_ssim, True),
}


class MetricNameError(ValueError):
    """An unknown metric name was requested."""


def arrow(name: str) -> str:
    """'↑' when higher is better, '↓' when lower is better."""
    return "↑" if HIGHER_IS_BETTER[name] else "↓"


def parse_metric_list(spec: Optional[str | Iterable[str]]) -> List[str]:
    """Metric names from 'EN,SD,...' (case-insensitive, '-' or '_' in MS_SSIM) in canonical order; None -> all."""
    if spec is None:
        return list(METRIC_NAMES)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    lookup = {n.lower(): n for n in METRIC_NAMES}
    chosen = set()
    for item in items:
        key = item.strip().lower().replace("-", "_")
        if not key:
            continue
        if key == "msssim":
            key = "ms_ssim"
        if key not in lookup:
            raise MetricNameError(f"--metrics: unknown metric '{item.strip()}' (choose from {', '.join(METRIC_NAMES)})")
        chosen.add(lookup[key])
    if not chosen:
        raise MetricNameError("--metrics: no metric named")
    return [n for n in METRIC_NAMES if n in chosen]


def _to_tensor(x, device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if x.ndim != 2:
        raise ValueError(f"metrics expect (H, W) grey images, got shape {tuple(x.shape)}")
    return x.to(device)


# Why a metric may come out NaN/inf, for the messages.
NON_FINITE_HINTS: Dict[str, str] = {
    "MS_SSIM": "needs both sides > 160 px", "QNCIE": "constant image", "Qcb": "constant image",
    "CC": "constant image", "SCD": "constant image", "Qabf": "both sources flat", "Nabf": "no source edges",
    "PSNR": "fused equals both sources", "VIF": "flat reference",
}


def non_finite_message(values: Dict[str, float]) -> str:
    """'' if every value is finite, else 'MS_SSIM (needs both sides > 160 px), CC (constant image) not finite'."""
    bad = [f"{m} ({NON_FINITE_HINTS[m]})" if m in NON_FINITE_HINTS else m
           for m, v in values.items() if not math.isfinite(v)]
    return f"{', '.join(bad)} not finite" if bad else ""


def compute_metrics(ir, vis, fused, metrics: Optional[Sequence[str]] = None,
                    device: str | torch.device = "cpu", warn: bool = True) -> Dict[str, float]:
    """{name: value} for the (H, W) grey-level images ir (A), vis (B), fused (F) (uint8 arrays or tensors, 0..255).

    metrics: names or 'EN,SD,...' (None: all 21); the result is in the toolkit's column order.
    A metric that cannot be computed on these images (constant image, too small for MS-SSIM) gives NaN;
    a RuntimeWarning names them unless warn=False. Raises ValueError if the three sizes differ, MetricNameError
    for an unknown name.
    """
    names = parse_metric_list(metrics)
    a, b, f = (_to_tensor(x, device) for x in (ir, vis, fused))
    if not (a.shape == b.shape == f.shape):
        raise ValueError(f"IR {tuple(a.shape)}, VIS {tuple(b.shape)} and fused {tuple(f.shape)} differ in size")
    out: Dict[str, float] = {}
    failed: List[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 in constant images -> NaN, reported by the caller
        if "SSIM" in names and "MS_SSIM" in names:  # MS-SSIM's first level is SSIM: compute both at once
            out.update(ssim.ssim_and_ms_ssim(a, b, f))
        for name in names:
            if name in out:
                continue
            fn, two_sources = _FUNCTIONS[name]
            try:
                value = fn(a, b, f) if two_sources else fn(f)
            except (RuntimeError, ZeroDivisionError, ValueError) as exc:  # e.g. degenerate eigen-decomposition
                failed.append(f"{name} ({exc})")
                value = math.nan
            out[name] = float(value)
    if failed:
        warnings.warn(f"could not be computed, NaN: {'; '.join(failed)}", RuntimeWarning, stacklevel=2)
    result = {name: out[name] for name in names}
    if warn and non_finite_message(result):
        warnings.warn(non_finite_message(result), RuntimeWarning, stacklevel=2)
    return result
