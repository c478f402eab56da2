"""Information-theoretic metrics: EN, MI, NMI, TE, CE and QNCIE (docs/metrics.md).

Histograms have one bin per grey level 0..255 and are built with `bincount` (the reference toolkit
loops over pixels in Python; the counts, and so the values, are identical). Entropies are in bits.
"""
from __future__ import annotations

import math

import torch

from .common import as_f32, as_levels
from .constants import sigmoid_levels


def _probabilities(x: torch.Tensor) -> torch.Tensor:
    """(256,) float64 grey-level probabilities of an (H, W) image."""
    h = torch.bincount(as_levels(x).flatten(), minlength=256)
    return h.to(torch.float64) / h.sum()


def _joint_probabilities(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(65536,) float64 joint probabilities p(x = k, y = l) at index 256 k + l."""
    idx = as_levels(x).flatten() * 256 + as_levels(y).flatten()
    h = torch.bincount(idx, minlength=65536)
    return h.to(torch.float64) / h.sum()


def _shannon(p: torch.Tensor) -> torch.Tensor:
    """-sum p log2 p with 0 log 0 = 0 (bits)."""
    p = p[p > 0]
    return -(p * torch.log2(p)).sum()


def _entropy_offset(p: torch.Tensor, offset: float) -> torch.Tensor:
    """The toolkit's entropy -sum p log2(p + offset) (bits); offset 1e-10 (TE, NMI) or 1e-7 (EN)."""
    return -(p * torch.log2(p + offset)).sum()


def _mutual_information(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MI(X, Y) = H(X) + H(Y) - H(X, Y) in bits."""
    return _shannon(_probabilities(x)) + _shannon(_probabilities(y)) - _shannon(_joint_probabilities(x, y))


def en(fused: torch.Tensor) -> float:
    """Entropy of the fused image in bits, with the toolkit's log2(p + 1e-7) offset. Higher is better."""
    return float(_entropy_offset(_probabilities(fused), 1e-7))


def mi(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """MI(A, F) + MI(B, F) in bits (a sum over the two sources, as in VIFB). Higher is better."""
    return float(_mutual_information(ir, fused) + _mutual_information(vis, fused))


def nmi(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """2 [MI(A,F) + MI(B,F)] / (H(A) + H(B)): the toolkit's normalisation (H(F) absent). Higher is better."""
    h_a = _entropy_offset(_probabilities(ir), 1e-10)
    h_b = _entropy_offset(_probabilities(vis), 1e-10)
    num = 2.0 * (_mutual_information(ir, fused) + _mutual_information(vis, fused))
    return float(num / (h_a + h_b + 1e-10))


def te(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """'Tsallis entropy' with q = 1: H(A) + H(B) - H(F) (Shannon, bits, +1e-10 offset). Reported as higher is better."""
    h = [_entropy_offset(_probabilities(x), 1e-10) for x in (ir, vis, fused)]
    return float(h[0] + h[1] - h[2])


def ce(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Pixel-wise binary cross-entropy (nats) between sigmoid(F) and (sigmoid(A) + sigmoid(B)) / 2.

    Quirk of the toolkit: the sigmoid is applied to raw grey levels, so every level >= 16 saturates and
    only dark pixels matter. The float32 sigmoid values and clamps are taken bit-exactly (docs/metrics.md, "Float32 recipes").
    Lower is better.
    """
    lut = torch.from_numpy(sigmoid_levels()).to(fused.device)
    lo = torch.tensor(1e-7, dtype=torch.float32)
    hi = torch.tensor(1.0 - 1e-7, dtype=torch.float32)
    f = lut[as_levels(fused)].clamp(lo.item(), hi.item())
    t = ((lut[as_levels(ir)] + lut[as_levels(vis)]) / 2).clamp(lo.item(), hi.item())  # float32, as the toolkit
    f, t = f.to(torch.float64), t.to(torch.float64)
    log_f = torch.log(f).clamp(min=-100.0)
    log_1f = torch.log(1.0 - f).clamp(min=-100.0)
    return float(-(t * log_f + (1.0 - t) * log_1f).mean())


def _min_max(x: torch.Tensor) -> torch.Tensor:
    x = as_f32(x)
    return (x - x.min()) / (x.max() - x.min())  # constant image -> NaN, as the toolkit


def qncie(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """NCIE with Pearson correlations in the 3x3 matrix (the toolkit's variant): 1 + sum (l/3) log_256 (l/3).

    NaN when an image is constant. Higher is better.
    """
    x = torch.stack([_min_max(ir), _min_max(vis), _min_max(fused)]).flatten(1).to(torch.float64)
    x = x - x.mean(dim=1, keepdim=True)
    gram = x @ x.T  # sums of products of the centred images
    d = torch.sqrt(torch.diagonal(gram))
    r = (gram / (d[:, None] * d[None, :] + 1e-10)).to(torch.float32)  # Pearson r with the toolkit's 1e-10
    r.fill_diagonal_(1.0)
    if not torch.isfinite(r).all():
        return float("nan")
    lam = torch.linalg.eigvalsh(r.to(torch.float64).cpu()) / 3.0
    return float(1.0 + (lam * torch.log(lam)).sum() / math.log(256.0))
