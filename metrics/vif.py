"""Pixel-domain multiscale VIF (vifp) as the toolkit computes it, summed over the sources (docs/metrics.md).

Float32 on purpose: E[x^2] - mu^2 cancels in float32 and leaves spurious variance in flat areas that
the reference numbers contain (a float64 version is up to 9e-4 off). The kernels are the toolkit's
off-centre float32 Gaussians, applied tap by tap with one fused multiply-add per tap (common.correlate),
which is the reference run's accumulation order and rounding (docs/metrics.md, "Float32 recipes").
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch

from .common import as_f32, correlate, exact_float32
from .constants import vif_kernel

_SIGMA_NSQ = 2.0
_EPS = 1e-10


def _scale_stats(ref: torch.Tensor, dist: torch.Tensor, k: torch.Tensor, pad: int,
                 cache: Dict[str, torch.Tensor]) -> Tuple[float, float]:
    """(num, den) sums of one scale; `cache` shares the fused image's filtered maps between the sources."""
    mu1 = correlate(ref, k, pad)
    if "mu2" not in cache:
        cache["mu2"] = correlate(dist, k, pad)
        cache["e22"] = correlate(dist * dist, k, pad)
    mu2 = cache["mu2"]
    sigma1_sq = correlate(ref * ref, k, pad) - mu1 * mu1
    sigma2_sq = cache["e22"] - mu2 * mu2
    sigma12 = correlate(ref * dist, k, pad) - mu1 * mu2
    sigma1_sq = torch.clamp(sigma1_sq, min=0.0)
    sigma2_sq = torch.clamp(sigma2_sq, min=0.0)
    g = sigma12 / (sigma1_sq + _EPS)
    sv_sq = sigma2_sq - g * sigma12
    flat1 = sigma1_sq < _EPS
    g = torch.where(flat1, torch.zeros_like(g), g)
    sv_sq = torch.where(flat1, sigma2_sq, sv_sq)
    sigma1_sq = torch.where(flat1, torch.zeros_like(sigma1_sq), sigma1_sq)
    flat2 = sigma2_sq < _EPS
    g = torch.where(flat2, torch.zeros_like(g), g)
    sv_sq = torch.where(flat2, torch.zeros_like(sv_sq), sv_sq)
    neg = g < 0
    sv_sq = torch.where(neg, sigma2_sq, sv_sq)
    g = torch.where(neg, torch.zeros_like(g), g)
    sv_sq = torch.where(sv_sq <= _EPS, torch.full_like(sv_sq, _EPS), sv_sq)
    num = torch.log10(1 + g * g * sigma1_sq / (sv_sq + _SIGMA_NSQ))
    den = torch.log10(1 + sigma1_sq / _SIGMA_NSQ)
    return float(num.sum(dtype=torch.float64)), float(den.sum(dtype=torch.float64))


def _pyramid(x: torch.Tensor):
    """Yield (scale image, kernel, padding) for scales 1..4: blur with the scale's kernel, keep even pixels."""
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        k = torch.from_numpy(vif_kernel(n)).to(x.device)
        if scale > 1:
            x = correlate(x, k, n // 2, stride=2)
        yield x, k, n // 2


def vifp(ref: torch.Tensor, dist: torch.Tensor) -> float:
    """vifp(ref, dist) = sum num / sum den over 4 scales (one source)."""
    return vif_pair([ref], dist)[0]


def vif_pair(refs, dist: torch.Tensor):
    """[vifp(ref, dist) for ref in refs], sharing the distorted image's pyramid and statistics."""
    with exact_float32():
        d_scales = list(_pyramid(as_f32(dist)))
        caches = [dict() for _ in d_scales]
        out = []
        for ref in refs:
            num = den = 0.0
            for (r, k, pad), (d, _, _), cache in zip(_pyramid(as_f32(ref)), d_scales, caches):
                n_s, d_s = _scale_stats(r, d, k, pad, cache)
                num, den = num + n_s, den + d_s
            out.append(num / den if den != 0 else math.nan)
    return out


def vif(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """VIF = vifp(A, F) + vifp(B, F) (a sum, so values above 1 are normal). Higher is better."""
    return float(sum(vif_pair([ir, vis], fused)))
