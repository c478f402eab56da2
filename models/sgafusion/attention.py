"""Cue cross-attention between the fused encoder features and the CLIP degradation cue.

Both variants keep the release's parameter names (`fc1`, `fc2`, `cross_attention`); see
docs/sgafusion.md, "Cue cross-attention".

- `release`: the queries are the pixels of conv1x1(x); the only key/value token is fc2(cue). With one
  key the softmax is 1 everywhere, so the block adds the same vector at every pixel (the release's
  non-working cue path, kept for the fixture).
- `working`: the keys/values are fc2 of the global cue *and* of every CLIP patch token (through
  `fc_tokens` when their width differs from the cue's). With 1 + N keys the softmax depends on each
  pixel's query, so each pixel draws on the image regions (patch tokens carry CLIP's positional
  embedding) whose degradation matters to it, and the cue's effect varies over the image.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .blocks import Trace, conv1x1, record


class CueCrossAttention(nn.Module):
    """out = MHA(query=conv1x1(x), key=value=cue tokens) + conv1x1(x); embed 128, 2 heads."""

    def __init__(self, channels: int = 128, cue_dim: int = 512, heads: int = 2, token_dim: Optional[int] = None):
        """channels: width of x; cue_dim: width of the global cue; heads: attention heads;
        token_dim: width of the patch tokens (None: release, the cue is the single key token)."""
        super().__init__()
        self.fc1 = conv1x1(channels, channels)
        self.fc2 = nn.Linear(cue_dim, channels)
        # batch_first=False as in the release; the state_dict is the same either way.
        self.cross_attention = nn.MultiheadAttention(channels, heads)
        self.token_dim = token_dim
        if token_dim is not None:
            self.fc_tokens = nn.Linear(token_dim, channels) if token_dim != cue_dim else None

    def key_tokens(self, cue: torch.Tensor, tokens: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, cue_dim) [+ (B, N, token_dim)] -> key/value tokens (M, B, channels), M = 1 or 1 + N."""
        keys = self.fc2(cue)[None]
        if self.token_dim is None:
            return keys
        if tokens is None:
            raise ValueError("models/sgafusion/attention.py: the working cue attention needs CLIP patch tokens (B, N, D)")
        proj = self.fc_tokens(tokens) if self.fc_tokens is not None else self.fc2(tokens)
        return torch.cat([keys, proj.transpose(0, 1)], dim=0)

    def forward(self, x: torch.Tensor, cue: torch.Tensor, tokens: Optional[torch.Tensor] = None,
                trace: Trace = None) -> torch.Tensor:
        """x (B, C, H, W), cue (B, cue_dim), tokens (B, N, token_dim) or None -> (B, C, H, W)."""
        b, c, h, w = x.shape
        q_map = self.fc1(x)
        record(trace, "cross.query_fc1", q_map)
        q = q_map.flatten(2).permute(2, 0, 1)  # (HW, B, C), pixels in row-major order
        kv = self.key_tokens(cue, tokens).to(q.dtype)
        record(trace, "cross.key_value_fc2", kv[0])
        attn, weights = self.cross_attention(q, kv, kv, need_weights=trace is not None)
        record(trace, "cross.attn", attn.permute(1, 2, 0).reshape(b, c, h, w))
        if weights is not None:
            record(trace, "cross.attn_weights", weights)
        out = (attn + q).permute(1, 2, 0).reshape(b, c, h, w)
        record(trace, "cross.out", out)
        return out
