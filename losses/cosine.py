"""Cosine feature-distillation loss between the student's and the teacher's five taps."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def cosine_distill_loss(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cos(a, b) = sum over levels l of (1 - mean_batch cosine_similarity(flat(a_l), flat(b_l))).

    Each sample's map is flattened to one vector (channels and pixels together) before the
    cosine (eps 1e-8, PyTorch's default). No detaching here: the callers decide which side is
    the constant (see losses.totals).

    Args:
        a, b: sequences of the same length (5 in SAGE) of tensors (B, C_l, H_l, W_l), pairwise
            of equal shape.
    Returns:
        scalar tensor in [0, 2 * len(a)].
    """
    if len(a) != len(b):
        raise ValueError(f"cosine_distill_loss: {len(a)} maps against {len(b)}")
    total = a[0].new_zeros(())
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
        cos = F.cosine_similarity(x.flatten(1), y.flatten(1), dim=1)  # (B,)
        total = total + (1.0 - cos.mean())
    return total
