"""EI, Qabf and Nabf: hand-worked values and the toolkit's quirks (zero padding, tie rule)."""
from __future__ import annotations

import math

import pytest
import torch

from metrics.gradient import ei, nabf, qabf


def binary_image(seed=0, h=24, w=20, hi=200) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(h, w, generator=g) > 0.5).to(torch.uint8) * hi


def test_ei_of_constant_image_counts_zero_padding_edges():
    # 3x3 image of ones: corners |(3, 3)| = 3 sqrt 2, edge middles 4, centre 0.
    assert ei(torch.ones(3, 3)) == pytest.approx((4 * 3 * math.sqrt(2) + 4 * 4) / 9, rel=1e-6)  # float32 maps
    assert ei(torch.zeros(6, 7)) == 0.0


def test_qabf_when_fused_equals_source_uses_the_tie_quirk():
    a = binary_image()
    # Every non-zero Sobel magnitude is >= 200, so the strength term is 0.9994 (G = g_F, not 1, on ties)
    # and the orientation term 0.9879 / (1 + e^-4.4).
    expected = 0.9994 * 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    assert qabf(a, a, a) == pytest.approx(expected, rel=1e-6)
    flat = torch.zeros_like(a)
    assert qabf(a, flat, a) == pytest.approx(expected, rel=1e-6)  # a flat source has zero weight


def test_qabf_nan_when_both_sources_flat():
    flat = torch.zeros(8, 8)
    assert math.isnan(qabf(flat, flat, binary_image(h=8, w=8)))


def test_nabf_zero_without_artefacts_and_known_value_for_doubled_gradients():
    a = binary_image(hi=100)
    assert nabf(a, a, a) == 0.0
    f = a * 2  # every gradient doubled: G = 1/2, same orientation (A = 1), every weighted pixel an artefact
    q = math.sqrt(0.9999 / 2 * 0.9995 / (1 + math.exp(-22 * 0.5)))
    assert nabf(a, a, f) == pytest.approx(1 - q, rel=1e-6)
