"""data/colour.py: the release's YCrCb -> RGB constants, clamping, and why kornia is not used for it."""
from __future__ import annotations

import pytest
import torch

from data.colour import colourise, fused_to_bgr8, ycrcb_to_rgb


def test_release_constants_on_known_values():
    y = torch.tensor([0.5, 0.2]).view(2, 1, 1, 1)
    cr = torch.tensor([0.7, 0.5]).view(2, 1, 1, 1)
    cb = torch.tensor([0.4, 0.5]).view(2, 1, 1, 1)
    rgb = ycrcb_to_rgb(y, cr, cb).flatten(1)
    expected = torch.tensor([[0.5 + 1.403 * 0.2, 0.5 - 0.714 * 0.2 + 0.344 * 0.1, 0.5 - 1.773 * 0.1],
                             [0.2, 0.2, 0.2]])
    torch.testing.assert_close(rgb, expected, atol=1e-7, rtol=0)


def test_colourise_clamps_and_takes_cr_then_cb():
    torch.manual_seed(0)
    y, crcb = torch.rand(2, 1, 8, 9) * 1.4 - 0.2, torch.rand(2, 2, 8, 9)
    out = colourise(y, crcb)
    assert out.shape == (2, 3, 8, 9) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, ycrcb_to_rgb(y, crcb[:, 0:1], crcb[:, 1:2]).clamp(0, 1))
    assert not torch.equal(out, ycrcb_to_rgb(y, crcb[:, 1:2], crcb[:, 0:1]).clamp(0, 1))


def test_bgr8_rounds_like_the_release():
    fused = torch.full((1, 2, 2), 0.5)
    crcb = torch.full((2, 2, 2), 0.5)
    assert fused_to_bgr8(fused, crcb).tolist() == [[[128, 128, 128]] * 2] * 2  # 0.5 * 255 + 0.5 = 128.0
    assert fused_to_bgr8(fused, None).shape == (2, 2)


def test_kornia_inverse_uses_other_constants():
    """kornia.color.ycbcr_to_rgb is the exact inverse (1.40252...), not the release's rounded 1.403:
    up to ~1e-4 apart, far above float32 rounding, so the release's colours cannot come from it."""
    kornia = pytest.importorskip("kornia")
    torch.manual_seed(0)
    y, cr, cb = torch.rand(3, 1, 1, 32, 32).unbind(0)
    ours = ycrcb_to_rgb(y, cr, cb).clamp(0, 1)
    theirs = kornia.color.ycbcr_to_rgb(torch.cat([y, cb, cr], 1)).clamp(0, 1)
    diff = float((ours - theirs).abs().max())
    assert 1e-5 < diff < 1e-3
