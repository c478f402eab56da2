"""Mixture-of-experts adapters with per-pixel softmax gates (docs/sgafusion.md, "Experts").

`MoEAdapter` is the two-expert adapter used at every encoder/decoder stage; `ShallowMoE` is the
first visible-stream stage with three degradation experts (dehaze, low-light, 1x1 conv).

With `cue_dim` set (the working variant), the gate logits get an extra per-image term
`cue_gate(cue)`, so the degradation cue decides which expert handles each pixel. The release
variant (`cue_dim=None`) gates on the features alone, exactly as the release does.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import SLOPE, SLOPE_DECODER, Trace, conv1x1, conv3x3, lrelu, record

T0 = 0.1  # lower clamp of the transmission in the dehaze expert


def _gate(gating_network: nn.Conv2d, cue_gate: Optional[nn.Linear], x: torch.Tensor,
          cue: Optional[torch.Tensor]) -> torch.Tensor:
    """Softmax over experts of conv1x1(x) (+ cue_gate(cue) per image): (B, E, H, W)."""
    logits = gating_network(x)
    if cue_gate is not None:
        if cue is None:
            raise ValueError("models/sgafusion/experts.py: this adapter is cue-conditioned but got no cue")
        logits = logits + cue_gate(cue).to(logits.dtype)[:, :, None, None]
    return F.softmax(logits, dim=1)


class MoEAdapter(nn.Module):
    """Two experts conv3x3(C->C/8)-LReLU-conv3x3(C/8->C)-LReLU, softmax gate, LReLU(0.2) on the mix."""

    def __init__(self, channels: int, num_experts: int = 2, cue_dim: Optional[int] = None):
        """channels: C (divisible by 8); num_experts: 2 in SGAFusion; cue_dim: cue width for cue gating, or None."""
        super().__init__()
        hidden = channels // 8
        self.experts = nn.ModuleList(
            nn.Sequential(conv3x3(channels, hidden), nn.LeakyReLU(SLOPE), conv3x3(hidden, channels), nn.LeakyReLU(SLOPE))
            for _ in range(num_experts))
        self.gating_network = conv1x1(channels, num_experts)
        self.cue_gate = nn.Linear(cue_dim, num_experts) if cue_dim else None

    def forward(self, x: torch.Tensor, cue: Optional[torch.Tensor] = None, trace: Trace = None,
                name: str = "") -> torch.Tensor:
        """x (B, C, H, W), cue (B, cue_dim) or None -> (B, C, H, W); gates (B, E, H, W) go to trace[name]."""
        g = _gate(self.gating_network, self.cue_gate, x, cue)
        record(trace, name, g)
        out = sum(g[:, i:i + 1] * expert(x) for i, expert in enumerate(self.experts))
        return lrelu(out, SLOPE_DECODER)


class DehazeExpert(nn.Module):
    """Atmospheric-scattering inversion on 16-channel features: x1 = (x - A) / max(t, 0.1) + A.

    t (B,1,H,W) = sigmoid(conv5(h3)); A (B,1) = sigmoid(fc2(sigmoid(fc1(vec(avgpool32x32(h3)))))).
    """

    def __init__(self, channels: int = 16, pool: int = 32):
        """channels: feature width (16); pool: adaptive-pool size feeding fc1 (32 -> 32*32*32 inputs)."""
        super().__init__()
        self.conv2 = conv3x3(channels, 32)
        self.conv3 = conv1x1(32, 64)
        self.conv4 = conv1x1(64, 32)
        self.conv5 = conv1x1(32, 1)
        self.pool = pool
        self.fc1 = nn.Linear(32 * pool * pool, 256)
        self.fc2 = nn.Linear(256, 1)

    def forward(self, x: torch.Tensor, trace: Trace = None) -> torch.Tensor:
        """(B, 16, H, W) -> (B, 16, H, W)."""
        h = lrelu(self.conv4(lrelu(self.conv3(lrelu(self.conv2(x))))))
        t = torch.sigmoid(self.conv5(h))
        pooled = F.adaptive_avg_pool2d(h, self.pool).flatten(1)
        a = torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(pooled))))
        record(trace, "moe1.transmission", t)
        record(trace, "moe1.A", a)
        a = a[:, :, None, None]
        return (x - a) / t.clamp(min=T0) + a


class LowLightExpert(nn.Module):
    """Eight quadratic light-enhancement curves: z_k = clip01(z + sigmoid(r_k)(z^2 - z + 1e-6)); x2 = z_8 + x."""

    def __init__(self, channels: int = 16, iterations: int = 8):
        """channels: feature width (16); iterations: number of curves (8)."""
        super().__init__()
        self.conv3 = conv3x3(channels, 32)
        self.conv4 = conv1x1(32, 16)
        self.conv5 = conv1x1(16, iterations)

    def forward(self, x: torch.Tensor, trace: Trace = None) -> torch.Tensor:
        """(B, 16, H, W) -> (B, 16, H, W)."""
        r = lrelu(self.conv5(lrelu(self.conv4(lrelu(self.conv3(x))))))
        record(trace, "moe1.r", r)
        z = x
        for k in range(r.shape[1]):
            z = (z + torch.sigmoid(r[:, k:k + 1]) * (z * z - z + 1e-6)).clamp(0.0, 1.0)
        return z + x


class ShallowMoE(nn.Module):
    """First visible-stream stage: gate over (dehaze, low-light, conv1x1) experts, LReLU(0.01) on the mix."""

    def __init__(self, channels: int = 16, cue_dim: Optional[int] = None):
        """channels: feature width (16); cue_dim: cue width for cue gating, or None (release)."""
        super().__init__()
        self.dehazenet = DehazeExpert(channels)
        self.lownet = LowLightExpert(channels)
        self.experts = conv1x1(channels, channels)
        self.gating_network = conv1x1(channels, 3)
        self.cue_gate = nn.Linear(cue_dim, 3) if cue_dim else None

    def forward(self, x: torch.Tensor, cue: Optional[torch.Tensor] = None, trace: Trace = None,
                name: str = "gates.vi.moe1") -> torch.Tensor:
        """(B, 16, H, W) -> (B, 16, H, W); gates (B, 3, H, W) go to trace[name]."""
        g = _gate(self.gating_network, self.cue_gate, x, cue)
        record(trace, name, g)
        x1 = self.dehazenet(x, trace)
        x2 = self.lownet(x, trace)
        x3 = self.experts(x)
        record(trace, "moe1.dehaze_expert", x1)
        record(trace, "moe1.lowlight_expert", x2)
        record(trace, "moe1.conv1x1_expert", x3)
        return lrelu(g[:, 0:1] * x1 + g[:, 1:2] * x2 + g[:, 2:3] * x3)
