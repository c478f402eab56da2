"""SSIM, MS-SSIM, Qy, VIF and Qcb: identical images, degenerate inputs, size limits."""
from __future__ import annotations

import math

import pytest
import torch

from metrics.qcb import qcb
from metrics.qy import qy
from metrics.ssim import ms_ssim, ssim, ssim_and_ms_ssim
from metrics.vif import vif


def noise(seed: int, h=48, w=40) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(h, w, generator=g) * 200 + 20
    return torch.nn.functional.avg_pool2d(x[None, None], 3, 1, 1)[0, 0].round().to(torch.uint8)


def test_ssim_of_image_with_itself_is_one_per_source():
    x, y = noise(0), noise(1)
    assert ssim(x, x, x) == 2.0  # exactly: numerator and denominator are the same float32 numbers
    # The two sources are summed: ssim(A=X, F=X) = 1, and ssim(Y, X) is half of ssim(Y, Y, X).
    assert ssim(x, y, x) == pytest.approx(1.0 + ssim(y, y, x) / 2, abs=1e-12)
    assert -1.0 < ssim(y, y, x) / 2 < 1.0


def test_ms_ssim_identical_and_too_small():
    x = noise(2, 176, 168)
    assert ms_ssim(x, x, x) == pytest.approx(2.0, abs=1e-12)
    with pytest.warns(RuntimeWarning, match="160"):
        out = ssim_and_ms_ssim(noise(0), noise(1), noise(2))
    assert math.isnan(out["MS_SSIM"]) and math.isfinite(out["SSIM"])


def test_qy_identical_images_is_one():
    x = noise(3)
    assert qy(x, x, x) == pytest.approx(1.0, abs=1e-12)


def test_qy_uint8_fast_path_equals_float64():
    """uint8 inputs take exact float32 box sums; other dtypes float64 throughout: the same value."""
    a, b, f = noise(7, 64, 72), noise(8, 64, 72), noise(9, 64, 72)
    assert qy(a, b, f) == pytest.approx(qy(a.double(), b.double(), f.double()), rel=1e-12)


def test_vif_identical_images_close_to_two():
    x = noise(4)
    assert vif(x, x, x) == pytest.approx(2.0, abs=1e-3)  # vifp(X, X) ~ 1, summed over the two sources
    assert vif(x, x, torch.full_like(x, 128)) < 0.5  # a flat fused image keeps almost no information


def test_qcb_identical_images_close_to_one_and_nan_for_constant():
    x, y = noise(5), noise(6)
    # Q = 1 everywhere; only the 1e-10 in lambda's denominator removes weight where the contrast is tiny.
    assert 0.95 < qcb(x, x, x) <= 1.0
    assert qcb(x, y, x) == pytest.approx(qcb(y, x, x), rel=1e-12)  # symmetric in the sources
    assert qcb(x, y, x) < qcb(x, x, x)
    assert math.isnan(qcb(x, x, torch.full_like(x, 9)))


def _torch_fuses_multiply_add() -> bool:
    """Whether this CPU build's `acc.add_(x, alpha=w)` rounds once (a fused multiply-add), in the vector
    loop and in the scalar tail, on a row slice of a wider map as `correlate` uses it."""
    b = 1.0 + 2.0 ** -12  # b * b = 1 + 2^-11 + 2^-24: the 2^-24 is lost when the product is rounded first
    acc = torch.full((5, 77), -(1.0 + 2.0 ** -11))
    src = torch.full((7, 93), b)[1:6, 3:80]
    acc.add_(src, alpha=b)
    return bool((acc == 2.0 ** -24).all())


def test_fast_correlation_follows_the_reference_recipe():
    """`correlate` (one fused multiply-add per tap) against the float64 emulation of the reference run's
    float32 rounding, which is CPU-independent: bit-equal where torch fuses multiply-adds (x86-64 AVX2
    or AVX-512, ARM), otherwise the same taps in the same order (a few float32 ulps). Both FMA (> 20480
    elements) and separately rounded (small map, 3x3 kernel) cases, padding and stride 2."""
    from metrics.common import correlate, correlate_reference_f32
    from metrics.constants import ssim_window, vif_kernel

    g = torch.Generator().manual_seed(0)
    big = (torch.rand(160, 140, generator=g) * 255).round() * 255
    small = (torch.rand(60, 50, generator=g) * 255).round()
    cases = [(big, torch.from_numpy(vif_kernel(17)), 8), (big, torch.from_numpy(ssim_window())[:, None], 0),
             (small, torch.from_numpy(vif_kernel(3)), 1), (small, torch.from_numpy(vif_kernel(9)), 4)]
    exact = _torch_fuses_multiply_add()
    for x, k, pad in cases:
        ref = correlate_reference_f32(x, k, pad)
        for stride in (1, 2):
            ours = correlate(x, k, pad, stride=stride)
            want = ref[::stride, ::stride]
            assert ours.shape == want.shape
            if exact:
                assert torch.equal(ours, want)
            else:
                torch.testing.assert_close(ours, want, rtol=2e-5, atol=0)
    # The rule itself: a 3x3 kernel on a small map rounds each product (not fused), a 9x9 one fuses.
    x = torch.full((3, 3), 1.0 + 2.0 ** -12)
    k = torch.zeros(3, 3)
    k[0, 0], k[0, 1] = -(1.0 + 2.0 ** -11), 1.0 + 2.0 ** -12
    x[0, 0] = 1.0
    assert correlate_reference_f32(x, k)[0, 0] == 0.0  # separately rounded: fl32(b * b) = 1 + 2^-11
    big_k = torch.zeros(5, 5)
    big_k[:3, :3] = k
    assert correlate_reference_f32(torch.nn.functional.pad(x, (0, 2, 0, 2)), big_k)[0, 0] == 2.0 ** -24  # fused
