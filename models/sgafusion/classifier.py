"""The degradation-cue head on a CLIP image embedding: fc1 (512->512), ReLU, fc2 (512->classes).

`feature` = ReLU(fc1(embedding)) is the 512-d cue the fusion network receives; `logits` = fc2(feature)
are the degradation classes trained in stage 1 (docs/sgafusion.md, "Degradation cue").
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class CueHead(nn.Module):
    """embedding (..., embed_dim) -> (feature (..., hidden), logits (..., num_classes)); keys fc1.*, fc2.*."""

    def __init__(self, embed_dim: int = 512, hidden: int = 512, num_classes: int = 9):
        """embed_dim: CLIP embedding width; hidden: cue width (512); num_classes: degradation classes."""
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def features(self, embedding: torch.Tensor) -> torch.Tensor:
        """ReLU(fc1(embedding)): (..., embed_dim) -> (..., hidden)."""
        return F.relu(self.fc1(embedding))

    def forward(self, embedding: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(..., embed_dim) -> feature (..., hidden), logits (..., num_classes)."""
        feature = self.features(embedding)
        return feature, self.fc2(feature)
