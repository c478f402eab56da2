"""The sine position encoding of X-Decoder's pixel decoder and decoder (DETR's normalised variant)."""
from __future__ import annotations

import math

import torch


def sine_position(x: torch.Tensor, num_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """x (B, C, H, W) -> (B, 2*num_feats, H, W): [y part, x part], sin on even and cos on odd channels.

    Row i and column j (1-based) are scaled to i / (H + 1e-6) * 2*pi and j / (W + 1e-6) * 2*pi; channel k
    divides them by temperature ** (2 * floor(k / 2) / num_feats). docs/xdecoder.md gives the formula.
    """
    b, _, h, w = x.shape
    dev = x.device
    eps, scale = 1e-6, 2 * math.pi
    y_embed = torch.arange(1, h + 1, device=dev, dtype=torch.float32)[:, None].expand(h, w)
    x_embed = torch.arange(1, w + 1, device=dev, dtype=torch.float32)[None, :].expand(h, w)
    y_embed = y_embed / (h + eps) * scale
    x_embed = x_embed / (w + eps) * scale
    k = torch.arange(num_feats, device=dev, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / num_feats)
    pos_x = x_embed[..., None] / dim_t
    pos_y = y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=3).flatten(2)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=3).flatten(2)
    pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)
    return pos[None].expand(b, -1, -1, -1).to(x.dtype)
