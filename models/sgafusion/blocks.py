"""Small building blocks of the SGAFusion network (docs/sgafusion.md, "Architecture").

Every conv has a bias and stride 1; 3x3 convs pad by 1 with zeros, 1x1 convs do not pad, so every
feature map keeps the input's full resolution.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# The two LeakyReLU slopes the network uses: PyTorch's default, and the decoder's 0.2.
SLOPE = 0.01
SLOPE_DECODER = 0.2

Trace = Optional[Dict[str, torch.Tensor]]


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 conv, zero padding 1, bias."""
    return nn.Conv2d(cin, cout, 3, padding=1)


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    """1x1 conv, bias."""
    return nn.Conv2d(cin, cout, 1)


def lrelu(x: torch.Tensor, slope: float = SLOPE) -> torch.Tensor:
    return F.leaky_relu(x, slope)


def record(trace: Trace, name: str, value: torch.Tensor) -> None:
    """Store `value` under `name` in `trace` when a trace dict is being collected."""
    if trace is not None:
        trace[name] = value


class ConvAct(nn.Module):
    """conv3x3 followed by LeakyReLU(0.01); the encoder's `resnet.convK` (weights under `.conv`)."""

    def __init__(self, cin: int, cout: int):
        """cin/cout: input and output channels."""
        super().__init__()
        self.conv = conv3x3(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, H, W) -> (B, cout, H, W)."""
        return lrelu(self.conv(x))
