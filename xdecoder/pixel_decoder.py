"""X-Decoder's pixel decoder: an FPN whose coarsest level (res5) passes through a transformer encoder."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .position import sine_position


class ConvNorm(nn.Conv2d):
    """Conv2d (no bias) + GroupNorm(32) [+ ReLU], named like detectron2's Conv2d (`weight`, `norm.*`).

    Args:
        cin: input channels.
        cout: output channels.
        kernel: square kernel size (padding kernel // 2).
        relu: apply ReLU after the norm.
    """

    def __init__(self, cin: int, cout: int, kernel: int, relu: bool):
        super().__init__(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.norm = nn.GroupNorm(32, cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, cin, H, W) -> (B, cout, H, W)."""
        x = self.norm(super().forward(x))
        return F.relu(x) if self.relu else x


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (ReLU FFN) with the position added to queries and keys.

    Args:
        dim: token width.
        heads: attention heads.
        ffn: FFN hidden width.
    """

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """t, pos (N, B, dim) -> (N, B, dim)."""
        q = t + pos
        t = self.norm1(t + self.self_attn(q, q, t, need_weights=False)[0])
        return self.norm2(t + self.linear2(F.relu(self.linear1(t))))


class TransformerEncoder(nn.Module):
    """A stack of `EncoderLayer`s (no final norm); kept as `transformer.encoder.layers` for the key names.

    Args:
        dim: token width.
        heads: attention heads.
        ffn: FFN hidden width.
        layers: number of layers.
    """

    def __init__(self, dim: int, heads: int, ffn: int, layers: int):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, dim, H, W) -> (B, dim, H, W)."""
        b, c, h, w = x.shape
        pos = sine_position(x, c // 2).flatten(2).permute(2, 0, 1)
        t = x.flatten(2).permute(2, 0, 1)
        for layer in self.encoder.layers:
            t = layer(t, pos)
        return t.permute(1, 2, 0).reshape(b, c, h, w)


class PixelDecoder(nn.Module):
    """FPN over res2..res5 with a transformer encoder on res5 (X-Decoder's `transformer_encoder_fpn`).

    Args:
        in_channels: channels of res2, res3, res4, res5.
        dim: width of every FPN level (CONVS_DIM).
        mask_dim: channels of the stride-4 mask features.
        heads: heads of the encoder attention.
        ffn: FFN width of the encoder.
        enc_layers: encoder layers.
    """

    def __init__(self, in_channels: Tuple[int, int, int, int], dim: int = 512, mask_dim: int = 512, heads: int = 8,
                 ffn: int = 2048, enc_layers: int = 6):
        super().__init__()
        for k in (1, 2, 3):  # res2 -> adapter_1/layer_1, res3 -> _2, res4 -> _3
            self.add_module(f"adapter_{k}", ConvNorm(in_channels[k - 1], dim, 1, relu=False))
            self.add_module(f"layer_{k}", ConvNorm(dim, dim, 3, relu=True))
        self.mask_features = nn.Conv2d(dim, mask_dim, 3, padding=1)
        self.input_proj = nn.Conv2d(in_channels[3], dim, 1)
        self.transformer = TransformerEncoder(dim, heads, ffn, enc_layers)
        self.layer_4 = ConvNorm(dim, dim, 3, relu=True)

    def forward(self, feats: Dict[str, torch.Tensor],
                taps: Optional[Dict[str, object]] = None) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """res2..res5 -> (mask_features (B, mask_dim, H/4, W/4), [y5, y4, y3] each (B, dim, h, w)).

        `taps`, when given, receives 'transformer_encoder_features' (B, dim, H/32, W/32).
        """
        t = self.transformer(self.input_proj(feats["res5"]))
        if taps is not None:
            taps["transformer_encoder_features"] = t
        y = self.layer_4(t)
        multi_scale = [y]
        for k, name in ((3, "res4"), (2, "res3"), (1, "res2")):
            lateral = getattr(self, f"adapter_{k}")(feats[name])
            y = getattr(self, f"layer_{k}")(lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest"))
            if len(multi_scale) < 3:
                multi_scale.append(y)
        return self.mask_features(y), multi_scale
