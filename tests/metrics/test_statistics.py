"""SD, SF, AG, CC, SCD, MSE and PSNR on small arrays with hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from metrics.statistics import ag, cc, mse, psnr, scd, sd, sf


def ramp(h=4, w=5, step=2) -> torch.Tensor:
    """F(i, j) = step * j."""
    return (torch.arange(w, dtype=torch.float32) * step).repeat(h, 1)


def test_sd_population_form():
    assert sd(torch.tensor([[1, 3], [5, 7]], dtype=torch.uint8)) == pytest.approx(math.sqrt(5.0), rel=1e-12)


def test_sf_and_ag_of_a_ramp():
    f = ramp()
    assert sf(f) == pytest.approx(2.0, rel=1e-12)  # horizontal diffs 2, vertical 0
    assert ag(f) == pytest.approx(math.sqrt(2.0), rel=1e-12)  # dx = 2 everywhere (edges one-sided), dy = 0
    f2 = ramp().T.contiguous()
    assert sf(f2) == pytest.approx(2.0, rel=1e-12)


def test_ag_divides_by_hw_with_numpy_gradient_edges():
    f = torch.tensor([[0, 0, 0], [0, 8, 0], [0, 0, 0]], dtype=torch.float32)
    # numpy.gradient: dy = [[0,8,0],[0,0,0],[0,-8,0]], dx = [[0,0,0],[8,0,-8],[0,0,0]]
    expected = 4 * math.sqrt(64 / 2) / 9
    assert ag(f) == pytest.approx(expected, rel=1e-12)


def test_cc_and_scd():
    a = torch.tensor([[10, 20], [30, 70]], dtype=torch.float32).repeat(2, 2)
    b = 100 - a
    assert cc(a, b, a) == pytest.approx(0.0, abs=1e-12)  # r(A, A) = 1, r(B, A) = -1
    c = torch.tensor([[5, 60], [1, 9]], dtype=torch.float32).repeat(2, 2)
    assert scd(a, c, a + c) == pytest.approx(2.0, rel=1e-12)  # F - B = A and F - A = B
    assert math.isnan(cc(a, b, torch.full_like(a, 3)))


def test_mse_on_unit_scale_and_psnr_offset():
    zero = torch.zeros(3, 3)
    full = torch.full((3, 3), 255.0)
    assert mse(zero, zero, full) == pytest.approx(1.0, rel=1e-12)
    assert psnr(zero, zero, full) == pytest.approx(20 * math.log10(255), rel=1e-12)  # true PSNR 0 + 48.13 dB
    half = torch.full((3, 3), 51.0)  # (51/255)^2 = 0.04 against A, 0 against B
    assert mse(zero, half, half) == pytest.approx(0.02, rel=1e-12)
    assert psnr(full, full, full) == math.inf
