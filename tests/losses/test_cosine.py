"""losses/cosine.py: Cos(a, b) = sum over levels of (1 - batch mean of the flattened cosine)."""
from __future__ import annotations

import pytest
import torch

from losses.cosine import cosine_distill_loss


def maps(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, s, s, generator=g) for s in (8, 4, 2, 4, 8)]


def test_identical_scaled_opposite_orthogonal():
    a = maps(0)
    assert cosine_distill_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_distill_loss(a, [3 * t for t in a]).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_distill_loss(a, [-t for t in a]).item() == pytest.approx(10.0, abs=1e-5)
    x = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    y = torch.tensor([[[[0.0, 5.0]], [[0.0, 0.0]]]])
    assert cosine_distill_loss([x], [y]).item() == pytest.approx(1.0)


def test_flattens_channels_and_pixels_and_averages_the_batch():
    # Flattened per sample: [1,0,0,1] vs [1,0,0,-1] -> cosine 0; the second sample is identical -> 1.
    x = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[1.0, 2.0]], [[3.0, 4.0]]]])
    y = torch.tensor([[[[1.0, 0.0]], [[0.0, -1.0]]], [[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert cosine_distill_loss([x], [y]).item() == pytest.approx(1.0 - (0.0 + 1.0) / 2)


def test_gradient_only_where_not_detached_and_length_check():
    a = [t.requires_grad_() for t in maps(1)]
    b = maps(2)
    cosine_distill_loss(a, b).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in a)
    with pytest.raises(ValueError, match="4 maps against 5"):
        cosine_distill_loss(a[:4], b)
