"""A stand-in for the SAM feature extractor in loss tests (the real one needs SAM ViT-B weights)."""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn


class TinyExtractor(nn.Module):
    """A fixed random two-level conv pyramid, (N, 1, H, W) -> [(N, 6, H/2, W/2), (N, 5, H/4, W/4)].

    It treats samples independently, like the SAM encoder, and records the batch sizes it is given.
    """

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(6, 5, 3, stride=2, padding=1)
        g = torch.Generator().manual_seed(123)  # fixed weights, global RNG untouched
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.calls: List[int] = []
        self.requires_grad_(False)

    def forward(self, x):
        self.calls.append(x.shape[0])
        f1 = self.c1(x)
        return [f1, self.c2(torch.tanh(f1))]
