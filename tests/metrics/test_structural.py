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


def test_float32_emulation_matches_torch_onednn_conv():
    """The tap-by-tap FMA emulation (used on GPUs and for small maps) equals torch's oneDNN CPU conv bit for bit."""
    from metrics.common import correlate_reference_f32
    from metrics.constants import ssim_window, vif_kernel

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(160, 140, generator=g) * 255).round() * 255  # > 20480 elements: the FMA path
    for k in (torch.from_numpy(vif_kernel(5)), torch.from_numpy(ssim_window())[:, None]):
        pad = (k.shape[0] // 2, k.shape[1] // 2)
        ours = correlate_reference_f32(x, k, pad)
        ref = torch.nn.functional.conv2d(x[None, None], k[None, None], padding=pad)[0, 0]
        assert torch.equal(ours, ref)
