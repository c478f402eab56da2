"""SSIM and MS-SSIM as the toolkit computes them (pytorch_msssim on inputs scaled by 255^2; docs/metrics.md).

Toolkit quirk: the 0..255 images are multiplied by 255 again (X in 0..65025) while data_range stays 255,
so the constants are effectively 255^2 times smaller than in standard SSIM; the two sources are summed.
Float32 with the toolkit's exact window bits, filtered tap by tap (docs/metrics.md, "Float32 recipes"):
the result is ill-conditioned and a float64 version is up to 1.3e-3 off.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .common import as_f32, correlate, exact_float32
from .constants import ssim_window

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_filter(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """'valid' separable filtering of an (H, W) map: vertical pass, then horizontal; a side < 11 is not smoothed."""
    if x.shape[0] >= win.numel():
        x = correlate(x, win[:, None])
    if x.shape[1] >= win.numel():
        x = correlate(x, win[None, :])
    return x


def _moments(x: torch.Tensor, win: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mu, filtered x^2) of one map: the part of SSIM that depends on one image only."""
    return _gaussian_filter(x, win), _gaussian_filter(x * x, win)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor,
                x_moments=None, y_moments=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean ssim, mean cs) of two float32 (H, W) maps already scaled to 0..65025 (pytorch_msssim._ssim)."""
    mu1, e11 = x_moments if x_moments is not None else _moments(x, win)
    mu2, e22 = y_moments if y_moments is not None else _moments(y, win)
    mu1_sq = mu1.pow(2)
    mu2_sq = mu2.pow(2)
    mu1_mu2 = mu1 * mu2
    sigma1_sq = e11 - mu1_sq
    sigma2_sq = e22 - mu2_sq
    sigma12 = _gaussian_filter(x * y, win) - mu1_mu2
    cs_map = (2 * sigma12 + _C2) / (sigma1_sq + sigma2_sq + _C2)
    ssim_map = ((2 * mu1_mu2 + _C1) / (mu1_sq + mu2_sq + _C1)) * cs_map
    return ssim_map.mean(dtype=torch.float64), cs_map.mean(dtype=torch.float64)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling, stride 2; an odd side gets one zero row/column on both ends, counted in the /4."""
    pad = (x.shape[0] % 2, x.shape[1] % 2)
    return F.avg_pool2d(x[None, None], kernel_size=2, padding=pad)[0, 0]


def ssim_and_ms_ssim(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor,
                     want_ms: bool = True) -> Dict[str, float]:
    """{'SSIM': ssim(A,F) + ssim(B,F), 'MS_SSIM': ms_ssim(A,F) + ms_ssim(B,F)} sharing the fused image's
    filtered maps and MS-SSIM's first level (which is SSIM). MS_SSIM is NaN (with a warning) when
    min(H, W) <= 160, where the toolkit aborts."""
    h, w = fused.shape[-2:]
    levels = len(MS_SSIM_WEIGHTS)
    if want_ms and min(h, w) <= 160:
        warnings.warn(f"MS_SSIM needs both sides > 160 pixels (got {w}x{h}); NaN (the reference toolkit aborts)",
                      RuntimeWarning, stacklevel=2)
        want_ms = False
        ms_value: Optional[float] = math.nan
    else:
        ms_value = None
    with exact_float32():
        f = as_f32(fused) * 255
        srcs = [as_f32(ir) * 255, as_f32(vis) * 255]
        win = torch.from_numpy(ssim_window()).to(f.device)
        ssim_total = 0.0
        products: List[List[float]] = [[], []]
        for level in range(levels if want_ms else 1):
            f_mom = _moments(f, win)
            for i, x in enumerate(srcs):
                s, cs = _ssim_terms(x, f, win, None, f_mom)
                if level == 0:
                    ssim_total += float(s)
                products[i].append(max(float(cs if level < levels - 1 else s), 0.0))
            if level < levels - 1 and want_ms:
                f = _pool(f)
                srcs = [_pool(x) for x in srcs]
    if ms_value is None:
        if want_ms:
            ms_value = sum(math.prod(t ** wgt for t, wgt in zip(p, MS_SSIM_WEIGHTS)) for p in products)
        else:
            ms_value = math.nan
    return {"SSIM": ssim_total, "MS_SSIM": ms_value}


def ssim(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """ssim(A, F) + ssim(B, F) on 255-scaled inputs (toolkit). In [-2, 2]; higher is better."""
    return ssim_and_ms_ssim(ir, vis, fused, want_ms=False)["SSIM"]


def ms_ssim(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """ms_ssim(A, F) + ms_ssim(B, F) on 255-scaled inputs (toolkit), 5 levels. In [0, 2]; higher is better."""
    return ssim_and_ms_ssim(ir, vis, fused)["MS_SSIM"]
