"""Colour restoration of the fused luminance with the visible image's chroma (docs/sage.md#colour).

Not kornia.color.ycbcr_to_rgb: kornia uses the exact inverse of the forward transform (1.40252...,
0.71440..., 0.34434..., 1.77305...) where the release uses the rounded 1.403, 0.714, 0.344, 1.773, so
its results differ by up to 1.3e-4 (docs/inference.md#colour-and-kornia).
"""
from __future__ import annotations

import numpy as np
import torch


def ycrcb_to_rgb(y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) each -> (B, 3, H, W) RGB with the release's constants; not clamped.

    Note: the release calls channel 1 "cb" and channel 2 "cr"; the maths below is what it computes.
    """
    r = y + 1.403 * (cr - 0.5)
    g = y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5)
    b = y + 1.773 * (cb - 0.5)
    return torch.cat([r, g, b], dim=1)


def colourise(y: torch.Tensor, crcb: torch.Tensor | None) -> torch.Tensor:
    """Fused luminance (B, 1, H, W) and chroma (B, 2, H, W) (channel 0 = Cr, 1 = Cb) -> RGB (B, 3, H, W)
    clamped to [0, 1], as the release colourises for its semantic judge and its saved images. Without chroma
    (a grayscale visible image) the clamped luminance itself."""
    if crcb is None:
        return y.clamp(0.0, 1.0)
    return ycrcb_to_rgb(y, crcb[:, 0:1], crcb[:, 1:2]).clamp(0.0, 1.0)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Clamp to [0, 1], x255, +0.5 and truncate, as the release does. (C, H, W) tensor -> (H, W, C) uint8."""
    arr = (img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def fused_to_bgr8(fused: torch.Tensor, crcb: torch.Tensor | None) -> np.ndarray:
    """One fused image (1, H, W) and its VIS chroma (2, H, W) or None (grayscale) -> uint8 for cv2.imwrite.

    Returns (H, W, 3) BGR for colour inputs and (H, W) for grayscale ones.
    """
    if crcb is None:
        return to_uint8(fused)[:, :, 0]
    rgb = ycrcb_to_rgb(fused[None], crcb[None, 0:1], crcb[None, 1:2])[0]
    return np.ascontiguousarray(to_uint8(rgb)[:, :, ::-1])

