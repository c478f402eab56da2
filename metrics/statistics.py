"""Statistical and simple gradient metrics: SD, CC, SCD, MSE, PSNR, SF, AG (docs/metrics.md).

All are well conditioned: float64 reproduces the toolkit's float32 values to < 1e-6 relative.
"""
from __future__ import annotations

import math

import torch

from .common import as_f64, pearson


def sd(fused: torch.Tensor) -> float:
    """Population standard deviation of F (grey levels). Higher is better."""
    f = as_f64(fused)
    return float(torch.sqrt(((f - f.mean()) ** 2).mean()))


def cc(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Mean of the Pearson correlations r(A, F) and r(B, F); NaN for a constant image. Higher is better."""
    return float((pearson(ir, fused) + pearson(vis, fused)) / 2)


def scd(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Sum of the correlations of differences r(F - B, A) + r(F - A, B) (Aslantas-Bendes). Higher is better."""
    a, b, f = as_f64(ir), as_f64(vis), as_f64(fused)
    return float(pearson(f - b, a) + pearson(f - a, b))


def mse(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Mean of the two source MSEs on the [0, 1] scale (the toolkit divides by 255 first). Lower is better."""
    a, b, f = as_f64(ir) / 255.0, as_f64(vis) / 255.0, as_f64(fused) / 255.0
    return float(((f - a) ** 2).mean() / 2 + ((f - b) ** 2).mean() / 2)


def psnr(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """10 log10(255^2 / MSE) with the [0, 1]-scale MSE: the true PSNR + 48.13 dB (toolkit quirk). Higher is better."""
    m = mse(ir, vis, fused)
    return math.inf if m == 0 else 10.0 * math.log10(255.0 ** 2 / m)


def sf(fused: torch.Tensor) -> float:
    """Spatial frequency sqrt(mean(vertical diff^2) + mean(horizontal diff^2)). Higher is better."""
    f = as_f64(fused)
    rows = (f[1:, :] - f[:-1, :]) ** 2
    cols = (f[:, 1:] - f[:, :-1]) ** 2
    return float(torch.sqrt(rows.mean() + cols.mean()))


def _gradient(f: torch.Tensor, dim: int) -> torch.Tensor:
    """numpy.gradient along `dim`: central differences inside, one-sided at the two ends."""
    return torch.gradient(f, dim=dim, edge_order=1)[0]


def ag(fused: torch.Tensor) -> float:
    """Average gradient: sum sqrt((dx^2 + dy^2) / 2) / (H W) (the toolkit divides by H W, VIFB by (H-1)(W-1)).

    Higher is better.
    """
    f = as_f64(fused)
    dy, dx = _gradient(f, 0), _gradient(f, 1)
    return float(torch.sqrt((dx * dx + dy * dy) / 2).sum() / f.numel())
