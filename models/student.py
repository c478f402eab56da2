"""The SAGE student: a 0.136 M-parameter U-shaped CNN that fuses Y and IR (docs/sage.md#student)."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def cbl(in_ch: int, out_ch: int, kernel_size: int = 3) -> List[nn.Module]:
    """Conv (bias) -> BatchNorm2d -> LeakyReLU(0.01), as a flat list for nn.Sequential indexing."""
    return [
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=True),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(0.01),
    ]


def cbl_stack(in_ch: int, width: int, depth: int = 3) -> nn.Sequential:
    """`depth` CBL blocks; the first maps in_ch -> width. Indices match the release (0..3*depth-1)."""
    layers: List[nn.Module] = []
    for i in range(depth):
        layers += cbl(in_ch if i == 0 else width, width)
    return nn.Sequential(*layers)


class Student(nn.Module):
    """SAGE student network.

    Args:
        in_channels: input channels (Y and IR stacked: 2).
        width: feature width of every stage (32 in the release).

    forward(y, ir) with y, ir of shape (B, 1, H, W) in [0, 1] returns
    (fused (B, 1, H, W) in (-1, 1) from a Tanh, [x1, x2, x3, x4, x5]) where x1, x5 are (B, 32, H, W),
    x2, x4 are (B, 32, H/2, W/2) and x3 is (B, 32, H/4, W/4) (floor division by the max-pools).
    Any H, W >= 4 works; the bilinear resizes follow the skip connections' actual sizes.
    """

    def __init__(self, in_channels: int = 2, width: int = 32):
        super().__init__()
        self.module1 = cbl_stack(in_channels, width)
        self.downsample1 = nn.MaxPool2d(2)
        self.module2 = cbl_stack(width, width)
        self.downsample2 = nn.MaxPool2d(2)
        self.module3 = cbl_stack(width, width)
        self.adjust_channels4 = nn.Sequential(*cbl(2 * width, width, kernel_size=1))
        self.module4 = cbl_stack(width, width)
        self.adjust_channels5 = nn.Sequential(*cbl(2 * width, width, kernel_size=1))
        self.module5 = cbl_stack(width, width)
        self.final_decoder = nn.Sequential(nn.Conv2d(width, 1, 3, padding=1, bias=True), nn.Tanh())

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        x1 = self.module1(torch.cat([y, ir], dim=1))
        x2 = self.module2(self.downsample1(x1))
        x3 = self.module3(self.downsample2(x2))
        up4 = F.interpolate(x3, size=x2.shape[-2:], mode="bilinear", align_corners=False)
        x4 = self.module4(self.adjust_channels4(torch.cat([up4, x2], dim=1)))
        up5 = F.interpolate(x4, size=x1.shape[-2:], mode="bilinear", align_corners=False)
        x5 = self.module5(self.adjust_channels5(torch.cat([up5, x1], dim=1)))
        return self.final_decoder(x5), [x1, x2, x3, x4, x5]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
