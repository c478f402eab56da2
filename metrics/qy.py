"""Yang's SSIM-based fusion metric Qy with the toolkit's window (docs/metrics.md). Float64."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .common import as_f64, correlate_1d

_C1, _C2 = 1e-4, 9e-4  # constants meant for [0, 1] data, applied to 0..255 data (toolkit quirk)


def _gauss7() -> torch.Tensor:
    g = torch.tensor([math.exp(-((b - 3) ** 2) / (2 * 1.5 ** 2)) for b in range(7)], dtype=torch.float64)
    return g / g.sum()


_GAUSS7 = _gauss7().tolist()


def _window_filter(x: torch.Tensor) -> torch.Tensor:
    """'same' zero-padded correlation of one (H, W) map with the toolkit's 7x7 window W[a, b] = g[b], float64.

    Every row of the window is the same 1-D Gaussian, so it is a vertical 7-tap box sum (sum W = 7)
    followed by a horizontal Gaussian pass in float64. The box sum is taken in x's dtype: float32 is
    exact for grey levels and their products (sums below 2^24), float64 for anything else. One map at a
    time, so it stays in the CPU cache.
    """
    h = x.shape[0]
    p = F.pad(x, (0, 0, 3, 3))
    box = p[0:h].clone()
    for i in range(1, 7):
        box.add_(p[i:i + h])
    return correlate_1d(box.to(torch.float64), _GAUSS7, -1, 3)


def _ssim_maps(mu_x, mu_y, e_xx, e_yy, e_xy):
    s_x = e_xx - mu_x * mu_x
    s_y = e_yy - mu_y * mu_y
    s_xy = e_xy - mu_x * mu_y
    s = ((2 * mu_x * mu_y + _C1) * (2 * s_xy + _C2)) / ((mu_x ** 2 + mu_y ** 2 + _C1) * (s_x + s_y + _C2))
    return s, s_x, s_y


def qy(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Qy: lambda S(A,F) + (1 - lambda) S(B,F) where S(A,B) >= 0.75, else max(S(A,F), S(B,F)). Higher is better."""
    if all(x.dtype == torch.uint8 for x in (ir, vis, fused)):
        a, b, f = (x.to(torch.float32) for x in (ir, vis, fused))  # products and box sums of 0..255: exact
    else:
        a, b, f = as_f64(ir), as_f64(vis), as_f64(fused)
    mu_a, mu_b, mu_f, e_aa, e_bb, e_ff, e_ab, e_af, e_bf = (
        _window_filter(m) for m in (a, b, f, a * a, b * b, f * f, a * b, a * f, b * f))
    s_ab, var_a, var_b = _ssim_maps(mu_a, mu_b, e_aa, e_bb, e_ab)
    s_af, _, _ = _ssim_maps(mu_a, mu_f, e_aa, e_ff, e_af)
    s_bf, _, _ = _ssim_maps(mu_b, mu_f, e_bb, e_ff, e_bf)
    lam = var_a / (var_a + var_b + 1e-10)
    q = torch.where(s_ab >= 0.75, lam * s_af + (1 - lam) * s_bf, torch.maximum(s_af, s_bf))
    return float(q.mean())
