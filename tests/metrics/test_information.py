"""EN, MI, NMI, TE, CE and QNCIE on hand-made images against values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from metrics.information import ce, en, mi, nmi, qncie, te


def two_level(h=8, w=8, lo=0, hi=255) -> torch.Tensor:
    """Left half `lo`, right half `hi`: one bit of entropy."""
    x = torch.full((h, w), lo, dtype=torch.uint8)
    x[:, w // 2:] = hi
    return x


def four_level() -> torch.Tensor:
    return torch.tensor([[0, 50], [100, 200]], dtype=torch.uint8).repeat(4, 4)


def test_en_of_two_and_four_level_images():
    assert en(two_level()) == pytest.approx(-math.log2(0.5 + 1e-7), abs=1e-12)  # 1 bit less the 1e-7 offset
    assert en(four_level()) == pytest.approx(-math.log2(0.25 + 1e-7), abs=1e-12)
    assert en(torch.full((5, 5), 7, dtype=torch.uint8)) == pytest.approx(-math.log2(1 + 1e-7), abs=1e-12)


def test_mi_of_identical_and_independent_images():
    x = four_level()
    assert mi(x, x, x) == pytest.approx(4.0, abs=1e-12)  # MI(X, X) = H(X) = 2 bits, summed over two sources
    cols = two_level()
    rows = cols.T.contiguous()  # independent of `cols`: the joint histogram is uniform over 4 cells
    assert mi(cols, cols, rows) == pytest.approx(0.0, abs=1e-12)


def test_nmi_divides_by_source_entropies_only():
    x = two_level()
    h_hat = -math.log2(0.5 + 1e-10)
    assert nmi(x, x, x) == pytest.approx(2 * 2.0 / (2 * h_hat + 1e-10), rel=1e-12)
    f = torch.full_like(x, 9)  # H(F) = 0, MI = 0
    assert nmi(x, x, f) == pytest.approx(0.0, abs=1e-12)


def test_te_is_source_entropies_minus_fused_entropy():
    a, b, f = two_level(), four_level(), torch.full((8, 8), 3, dtype=torch.uint8)
    expected = -math.log2(0.5 + 1e-10) - math.log2(0.25 + 1e-10) + math.log2(1 + 1e-10)
    assert te(a, b, f) == pytest.approx(expected, abs=1e-12)


def test_ce_saturates_above_grey_level_16():
    bright = torch.full((4, 4), 200, dtype=torch.uint8)
    e = 1 - 2.0 ** -23  # fl32(1 - 1e-7): the clamp, reached by every level >= 16
    expected = -(e * math.log(e) + (1 - e) * math.log(1 - e))
    assert ce(bright, bright, bright) == pytest.approx(expected, rel=1e-9)
    assert ce(bright, bright, torch.full((4, 4), 16, dtype=torch.uint8)) == pytest.approx(expected, rel=1e-9)
    # F = 0 (sigmoid 0.5) against saturated sources: ln 2 per pixel.
    assert ce(bright, bright, torch.zeros(4, 4, dtype=torch.uint8)) == pytest.approx(math.log(2), rel=1e-6)
    # Dark sources (target 0.5) against a bright F: 0.5 * 15.94 (= -ln 2^-23) per pixel, about 7.97.
    dark = torch.zeros(4, 4, dtype=torch.uint8)
    assert ce(dark, dark, bright) == pytest.approx(-0.5 * (math.log(e) + math.log(2.0 ** -23)), rel=1e-6)


def test_qncie_of_mutually_uncorrelated_images():
    # Centred 2x2 patterns (1,1,-1,-1), (1,-1,1,-1), (1,-1,-1,1) are orthogonal: R = I, eigenvalues 1, 1, 1.
    a = torch.tensor([[255, 255], [0, 0]], dtype=torch.uint8).repeat(3, 3)
    b = torch.tensor([[255, 0], [255, 0]], dtype=torch.uint8).repeat(3, 3)
    f = torch.tensor([[255, 0], [0, 255]], dtype=torch.uint8).repeat(3, 3)
    assert qncie(a, b, f) == pytest.approx(1 - math.log(3) / math.log(256), abs=1e-9)


def test_qncie_nan_for_constant_image():
    a = two_level()
    assert math.isnan(qncie(a, a, torch.full_like(a, 4)))
