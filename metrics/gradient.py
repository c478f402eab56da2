"""Edge-based metrics: EI, Qabf and Nabf (docs/metrics.md).

Float32: the Sobel responses of grey levels are small integers (exact in float32) and everything after
them is well conditioned, so float32 maps with float64 sums agree with float64 to ~1e-7 relative.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .common import as_f32, correlate_separable

_SMOOTH = (1.0, 2.0, 1.0)
_DIFF = (-1.0, 0.0, 1.0)  # later minus earlier sample


def _sobel(x: torch.Tensor, pad: int):
    """(right - left, bottom - top) Sobel responses of an (H, W) map, unnormalised.

    pad = 1: 'same' with zero padding; pad = 0: 'valid' (the caller padded already).
    """
    gx = correlate_separable(x, _SMOOTH, _DIFF, pad, pad)
    gy = correlate_separable(x, _DIFF, _SMOOTH, pad, pad)
    return gx, gy


def ei(fused: torch.Tensor) -> float:
    """Edge intensity: mean Sobel magnitude with zero padding (the padding inflates border gradients,
    a toolkit quirk). Higher is better."""
    gx, gy = _sobel(as_f32(fused), 1)
    return float(torch.sqrt(gx * gx + gy * gy).mean(dtype=torch.float64))


def _qabf_gradients(x: torch.Tensor):
    """Magnitude and arctan orientation of one (H, W) image, Sobel with zero padding (Qabf convention).
    The metrics take one image at a time: small temporaries stay in the cache (no page faults)."""
    sx, sy = _sobel(as_f32(x), 1)
    sy = -sy  # upper row minus lower row
    g = torch.sqrt(sx * sx + sy * sy)
    alpha = torch.where(sx != 0, torch.atan(sy / torch.where(sx != 0, sx, torch.ones_like(sx))),
                        torch.full_like(sx, math.pi / 2))  # arctan, not arctan2: alpha in (-pi/2, pi/2]
    return g, alpha


def qabf(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Xydeas-Petrovic Q^{AB/F}: gradient strength and orientation preservation weighted by source gradients.

    Toolkit quirk kept: where g_X == g_F the strength ratio is g_F (not 1). NaN if both sources are flat.
    Higher is better.
    """
    g_f, a_f = _qabf_gradients(fused)
    num = den = 0.0
    for source in (ir, vis):
        g_x, a_x = _qabf_gradients(source)
        ratio = torch.where(g_x > g_f, g_f / torch.where(g_x > 0, g_x, torch.ones_like(g_x)),
                            torch.where(g_x == g_f, g_f, g_x / torch.where(g_f > 0, g_f, torch.ones_like(g_f))))
        orient = 1 - torch.abs(a_x - a_f) / (math.pi / 2)
        q_g = torch.sigmoid((ratio - 0.5) * 15) * 0.9994  # 0.9994 / (1 + exp(-15 (ratio - 0.5)))
        q_a = torch.sigmoid((orient - 0.8) * 22) * 0.9879
        num += float((q_g * q_a * g_x).sum(dtype=torch.float64))
        den += float(g_x.sum(dtype=torch.float64))
    return num / den if den != 0 else math.nan


def _nabf_gradients(x: torch.Tensor):
    """Magnitude and orientation of one (H, W) image: Sobel / 8 with reflect padding (Nabf convention)."""
    x = F.pad(as_f32(x)[None], (1, 1, 1, 1), mode="reflect")[0]
    right_minus_left, bottom_minus_top = _sobel(x, 0)
    gh = -bottom_minus_top / 8  # upper minus lower row, Sobel / 8
    gv = -right_minus_left / 8  # left minus right column
    g = torch.sqrt(gh * gh + gv * gv)
    alpha = torch.atan(gv / gh)  # gh = 0, gv != 0 -> +-pi/2
    return g, alpha.masked_fill_((gh == 0) & (gv == 0), 0.0)


def nabf(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Kumar's modified fusion-artifact measure N_m^{AB/F}; sub-threshold weights are 0 (toolkit). Lower is better."""
    g_a, a_a = _nabf_gradients(ir)
    g_b, a_b = _nabf_gradients(vis)
    g_f, a_f = _nabf_gradients(fused)
    artefact = (g_f > g_a) & (g_f > g_b)
    num = den = 0.0
    for g_x, a_x in ((g_a, a_a), (g_b, a_b)):
        hi = torch.maximum(g_x, g_f)
        ratio = torch.where((g_x == 0) | (g_f == 0), torch.zeros_like(g_x),
                            torch.minimum(g_x, g_f) / torch.where(hi > 0, hi, torch.ones_like(hi)))
        orient = torch.abs(torch.abs(a_x - a_f) - math.pi / 2) * 2 / math.pi
        q_g = torch.sigmoid((ratio - 0.5) * 19) * 0.9999  # 0.9999 / (1 + exp(-19 (ratio - 0.5)))
        q_a = torch.sigmoid((orient - 0.5) * 22) * 0.9995
        q = torch.sqrt(q_g * q_a)
        w = torch.where(g_x >= 2, g_x ** 1.5, torch.zeros_like(g_x))
        num += float(torch.where(artefact, (1 - q) * w, 0.0).sum(dtype=torch.float64))
        den += float(w.sum(dtype=torch.float64))
    return num / den if den != 0 else math.nan
