"""SGAFusion's loss terms as pure functions of tensors (docs/sgafusion.md, "Losses").

Argument order everywhere: (visible, infrared, fused). `visible` is the clean (ground-truth) visible
image (B, 3, H, W); `infrared` is (B, 1, H, W) (a 3-channel IR with identical channels gives the
same values); `fused` is the raw fused RGB (B, 3, H, W). All means run over every element.

The release adds only 4*L_max + 12*L_color + 10*L_grad; SSIM and consistency terms are computed by
it but not added. `FusionLossWeights` keeps those weights, with the unused terms at 0.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)
_CB = (-0.168736, -0.331264, 0.5)
_CR = (0.5, -0.418688, -0.081312)


def _mix(x: torch.Tensor, w: Tuple[float, float, float]) -> torch.Tensor:
    return w[0] * x[:, 0:1] + w[1] * x[:, 1:2] + w[2] * x[:, 2:3]


def gray(x: torch.Tensor) -> torch.Tensor:
    """0.299R + 0.587G + 0.114B for 3 channels, the image itself for 1: (B, 1, H, W)."""
    return _mix(x, _GRAY) if x.shape[1] == 3 else x


def max_target(visible: torch.Tensor, infrared: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mask m = [mean_c(I) > mean_c(V)] (B, 1, H, W) and target m*I + (1-m)*V (B, 3, H, W)."""
    m = (infrared.mean(dim=1, keepdim=True) > visible.mean(dim=1, keepdim=True)).to(visible.dtype)
    return m, m * infrared + (1 - m) * visible


def max_loss(visible: torch.Tensor, infrared: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """L_max = mean |m*I + (1-m)*V - F| with the brighter-by-channel-mean mask m."""
    return (max_target(visible, infrared)[1] - fused).abs().mean()


def color_loss(visible: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """L_color = mean|Cb(V) - Cb(F)| + mean|Cr(V) - Cr(F)| (YCbCr chroma, BT.601 full range)."""
    return (_mix(visible, _CB) - _mix(fused, _CB)).abs().mean() + (_mix(visible, _CR) - _mix(fused, _CR)).abs().mean()


def _sobel(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """|d/dx|, |d/dy| of a (B, 1, H, W) image: Sobel cross-correlation after a 1-pixel replicate pad."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    kernel = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel).abs()
    return g[:, 0:1], g[:, 1:2]


def gradient_loss(visible: torch.Tensor, infrared: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """L_grad = sum over x, y of mean| |dF| - max(|dV|, |dI|) | on grey images."""
    fx, fy = _sobel(gray(fused))
    vx, vy = _sobel(gray(visible))
    ix, iy = _sobel(gray(infrared))
    return (fx - torch.maximum(vx, ix)).abs().mean() + (fy - torch.maximum(vy, iy)).abs().mean()


def gaussian_window(size: int = 48, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 2-D Gaussian (size, size) centred on index size // 2."""
    g = torch.tensor([math.exp(-((i - size // 2) ** 2) / (2 * sigma ** 2)) for i in range(size)])
    g = g / g.sum()
    return g[:, None] @ g[None, :]


def ssim_loss(a: torch.Tensor, b: torch.Tensor, window: int = 48, sigma: float = 1.5) -> torch.Tensor:
    """1 - mean SSIM map of a and b (B, C, H, W): Gaussian window per channel, no padding (valid).

    The dynamic range L comes from `a`: 255 if max(a) > 128 else 1, minus -1 if min(a) < -0.5 else 0;
    C1 = (0.01 L)^2, C2 = (0.03 L)^2. Images smaller than the window use a window of their size.
    """
    c = a.shape[1]
    size = min(window, a.shape[-2], a.shape[-1])
    w = gaussian_window(size, sigma).to(a)[None, None].expand(c, 1, size, size)
    hi = 255.0 if float(a.max()) > 128 else 1.0
    lo = -1.0 if float(a.min()) < -0.5 else 0.0
    c1, c2 = (0.01 * (hi - lo)) ** 2, (0.03 * (hi - lo)) ** 2

    def blur(x):
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return 1 - ssim.mean()


def consistency_loss(visible: torch.Tensor, infrared: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
    """L_consist = (mean|gray(V) - gray(F)| + mean|gray(I) - gray(F)|) / 2."""
    gf = gray(fused)
    return ((gray(visible) - gf).abs().mean() + (gray(infrared) - gf).abs().mean()) / 2


@dataclass(frozen=True)
class FusionLossWeights:
    """Weights of the fusion loss terms; the release's values (terms it computes but does not add are 0)."""
    max: float = 4.0
    color: float = 12.0
    grad: float = 10.0
    ssim: float = 0.0
    ssim_ir: float = 0.0
    consist: float = 0.0


def fusion_loss(visible: torch.Tensor, infrared: torch.Tensor, fused: torch.Tensor,
                weights: FusionLossWeights = FusionLossWeights()) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """total = sum of weight * term; returns (total, {"L_max", "L_color", "L_grad"[, "L_ssim_vis", ...]}).

    Terms with weight 0 are not computed (the release computes SSIM and consistency and drops them).
    """
    w = asdict(weights)
    terms = {"L_max": max_loss(visible, infrared, fused), "L_color": color_loss(visible, fused),
             "L_grad": gradient_loss(visible, infrared, fused)}
    total = w["max"] * terms["L_max"] + w["color"] * terms["L_color"] + w["grad"] * terms["L_grad"]
    if w["ssim"]:
        terms["L_ssim_vis"] = ssim_loss(visible, fused)
        total = total + w["ssim"] * terms["L_ssim_vis"]
    if w["ssim_ir"]:
        terms["L_ssim_ir"] = ssim_loss(gray(infrared), gray(fused))
        total = total + w["ssim_ir"] * terms["L_ssim_ir"]
    if w["consist"]:
        terms["L_consist"] = consistency_loss(visible, infrared, fused)
        total = total + w["consist"] * terms["L_consist"]
    return total, terms


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy averaged over non-ignored pixels: logits (B, K, H, W), labels (B, H, W) int64."""
    return F.cross_entropy(logits, labels, ignore_index=ignore_index)


def cue_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Stage-1 loss: cross-entropy of the cue head's logits (B, K) against class indices (B,)."""
    return F.cross_entropy(logits, labels)
