"""SGAFusionNet: two-stream MoE encoder, cue cross-attention, MoE decoder, segmentation and fusion heads.

docs/sgafusion.md describes the maths. Two variants share the layer names of the release:

- `release`: the release's network exactly (96 state_dict keys, 9,211,131 parameters). The cue only
  adds one constant vector per image (one key token) and reaches no gate.
- `working` (default): every expert gate gets a per-image term from the cue (`*.cue_gate`), and the
  cross-attention's keys are the global cue plus the CLIP patch tokens, so the cue steers which expert
  handles each pixel and adds a pixel-dependent term.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from .attention import CueCrossAttention
from .blocks import SLOPE_DECODER, ConvAct, Trace, conv1x1, conv3x3, record
from .experts import MoEAdapter, ShallowMoE

VARIANTS = ("release", "working")


class Encoder(nn.Module):
    """conv1 [moe1] conv2 moe2 conv3 moe3 conv4 moe4 at full resolution; shared by the visible and IR streams."""

    def __init__(self, in_channels: int = 3, cue_dim: Optional[int] = None):
        """in_channels: image channels (3; IR is given repeated); cue_dim: cue width for cue-gated experts, or None."""
        super().__init__()
        # Convs first, then adapters: the release's state_dict order.
        self.conv1 = ConvAct(in_channels, 16)
        self.conv2 = ConvAct(16, 32)
        self.conv3 = ConvAct(32, 64)
        self.conv4 = ConvAct(64, 128)
        self.moe1 = ShallowMoE(16, cue_dim)
        self.moe2 = MoEAdapter(32, cue_dim=cue_dim)
        self.moe3 = MoEAdapter(64, cue_dim=cue_dim)
        self.moe4 = MoEAdapter(128, cue_dim=cue_dim)

    def forward(self, x: torch.Tensor, cue: Optional[torch.Tensor], stream: str = "vi", use_moe1: bool = True,
                trace: Trace = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) -> (x4 (B, 128, H, W), y3 (B, 64, H, W)); moe1 runs only when use_moe1."""
        p = f"streams.{stream}."
        y = self.conv1(x)
        record(trace, p + "conv1", y)
        if use_moe1:
            y = self.moe1(y, cue, trace, name=f"gates.{stream}.moe1")
            record(trace, p + "moe1", y)
        for k in (2, 3, 4):
            y = getattr(self, f"conv{k}")(y)
            record(trace, p + f"conv{k}", y)
            y = getattr(self, f"moe{k}")(y, cue, trace, name=f"gates.{stream}.moe{k}")
            record(trace, p + f"moe{k}", y)
            if k == 3:
                y3 = y
        return y, y3


class DecoderBlock(nn.Sequential):
    """conv3x3 -> LeakyReLU(0.2) -> MoE adapter (keys `.0`, `.2`, as the release's Sequential)."""

    def __init__(self, cin: int, cout: int, cue_dim: Optional[int] = None):
        """cin/cout: channels; cue_dim: cue width for a cue-gated adapter, or None."""
        super().__init__(conv3x3(cin, cout), nn.LeakyReLU(SLOPE_DECODER), MoEAdapter(cout, cue_dim=cue_dim))

    def forward(self, x: torch.Tensor, cue: Optional[torch.Tensor] = None, trace: Trace = None,
                name: str = "block") -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H, W)."""
        h = self[1](self[0](x))
        record(trace, f"decoder.{name}_conv_act", h)
        out = self[2](h, cue, trace, name=f"gates.{name}")
        record(trace, f"decoder.{name}", out)
        return out


class SGAFusionNet(nn.Module):
    """forward(vi, ir, cue, tokens) -> (seg logits (B, classes, H, W), fused RGB (B, 3, H, W), no activation)."""

    def __init__(self, variant: str = "working", num_classes: int = 9, cue_dim: int = 512,
                 token_dim: Optional[int] = None, heads: int = 2):
        """variant: "release" or "working"; num_classes: segmentation classes (9);
        cue_dim: width of the global cue (512); token_dim: width of the CLIP patch tokens (working
        variant; default cue_dim); heads: cross-attention heads (2)."""
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"models/sgafusion/network.py: variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        gate_cue = cue_dim if variant == "working" else None
        # Registration order = the release's state_dict order: resnet, conv_block4, conv_block5, heads, cross.
        self.resnet = Encoder(3, gate_cue)
        self.conv_block4 = DecoderBlock(256, 128, gate_cue)
        self.conv_block5 = DecoderBlock(128, 64, gate_cue)
        self.seg_head = conv1x1(64, num_classes)
        self.fusion_head = conv3x3(64, 3)
        tokens = (token_dim or cue_dim) if variant == "working" else None
        self.cross = CueCrossAttention(128, cue_dim, heads, token_dim=tokens)

    @property
    def uses_tokens(self) -> bool:
        """True when forward needs the CLIP patch tokens (working variant)."""
        return self.variant == "working"

    def forward(self, vi: torch.Tensor, ir: torch.Tensor, cue: torch.Tensor, tokens: Optional[torch.Tensor] = None,
                trace: Trace = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """vi (B, 3, H, W), ir (B, 3, H, W) (or (B, 1, H, W), repeated), cue (B, cue_dim),
        tokens (B, N, token_dim) (working) -> seg (B, classes, H, W), fused (B, 3, H, W).
        With a `trace` dict, intermediates are stored in it under the fixture's names."""
        if ir.shape[1] == 1:
            ir = ir.expand(-1, 3, -1, -1)
        gate_cue = cue if self.variant == "working" else None
        vi4, vi3 = self.resnet(vi, gate_cue, "vi", True, trace)
        ir4, ir3 = self.resnet(ir, gate_cue, "ir", False, trace)
        x = vi4 + ir4
        record(trace, "cross.x_sum", x)
        z = torch.cat([self.cross(x, cue, tokens, trace), x], dim=1)
        h = self.conv_block5(self.conv_block4(z, gate_cue, trace, "block4"), gate_cue, trace, "block5")
        h = h + vi3 + ir3
        record(trace, "decoder.heads_input", h)
        return self.seg_head(h), self.fusion_head(h)
