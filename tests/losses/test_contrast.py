"""losses/contrast.py: the SAM-feature triplet ratio CR, with a small stand-in feature extractor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from losses.contrast import contrast_loss, feature_distance
from tests.losses.tiny_extractor import TinyExtractor


def numpy_in(f: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = f.mean(axis=(2, 3), keepdims=True)
    var = f.var(axis=(2, 3), keepdims=True)
    return (f - mean) / np.sqrt(var + eps)


def numpy_cr(ext, out, y, ir, ref, wv, wi) -> float:
    """CR recomputed channel by channel in numpy from the extractor's features (one call per image set)."""
    def d(a, b):
        fa = [f.double().numpy() for f in ext(a)]
        fb = [f.double().numpy() for f in ext(b)]
        return sum(np.sqrt(((numpy_in(x) - numpy_in(z)) ** 2).sum()) for x, z in zip(fa, fb))

    total = 0.0
    with torch.no_grad():
        for weights, neg in ((wv, y), (wi, ir)):
            for k in range(weights.shape[1]):
                m = weights[:, k:k + 1]
                if m.abs().sum() == 0:
                    continue
                total += d(out * m, ref * m) / (d(out * m, neg * m) + 1e-7)
    return total


def batch(seed: int = 0, b: int = 2, k: int = 3, h: int = 16, w: int = 20):
    g = torch.Generator().manual_seed(seed)
    out, y, ir, ref = (torch.rand(b, 1, h, w, generator=g) for _ in range(4))
    vmask = (torch.rand(b, k, h, w, generator=g) > 0.5).float()
    imask = (torch.rand(b, k, h, w, generator=g) > 0.5).float()
    vmask[:, 1] = 0  # an empty VIS slot: skipped
    return out, y, ir, ref, vmask * y, imask * ir, vmask, imask


def test_matches_numpy_recomputation_in_image_mode():
    ext = TinyExtractor()
    out, y, ir, ref, vm, im, _, _ = batch()
    cr = contrast_loss(out, y, ir, ref, vm, im, ext)
    assert cr.item() == pytest.approx(numpy_cr(ext, out, y, ir, ref, vm, im), rel=1e-5)
    assert cr.item() > 0.1


def test_empty_channels_are_skipped():
    ext = TinyExtractor()
    out, y, ir, ref, vm, im, _, _ = batch(b=2, k=3)
    contrast_loss(out, y, ir, ref, vm, im, ext)
    # 5 non-empty slots (2 VIS + 3 IR) x batch 2: anchors in one call, positives and negatives in another.
    assert ext.calls == [10, 20]
    ext.calls.clear()
    zero = contrast_loss(out, y, ir, ref, torch.zeros_like(vm), torch.zeros_like(im), ext)
    assert zero.item() == 0.0 and ext.calls == []


def test_binary_mode_uses_masks_and_differs_from_image_mode():
    ext = TinyExtractor()
    out, y, ir, ref, vm, im, vmask, imask = batch(seed=1)
    image = contrast_loss(out, y, ir, ref, vm, im, ext, "image")
    binary = contrast_loss(out, y, ir, ref, vm, im, ext, "binary", vm_masks=vmask, im_masks=imask)
    assert abs(binary.item() - image.item()) > 1e-3
    assert binary.item() == pytest.approx(numpy_cr(ext, out, y, ir, ref, vmask, imask), rel=1e-5)
    with pytest.raises(ValueError, match="vm_masks"):
        contrast_loss(out, y, ir, ref, vm, im, ext, "binary")
    with pytest.raises(ValueError, match="contrast_mask"):
        contrast_loss(out, y, ir, ref, vm, im, ext, "soft")


def test_gradient_reaches_the_anchor_only():
    ext = TinyExtractor()
    out, y, ir, ref, vm, im, _, _ = batch(seed=2)
    out.requires_grad_()
    ref.requires_grad_()
    contrast_loss(out, y, ir, ref, vm, im, ext).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert ref.grad is None


def test_anchor_equal_to_positive_gives_zero():
    ext = TinyExtractor()
    out, y, ir, _, vm, im, _, _ = batch(seed=3)
    assert contrast_loss(out, y, ir, out.clone(), vm, im, ext).item() == pytest.approx(0.0, abs=1e-6)


def test_feature_distance_is_one_norm_over_the_batch():
    a = [torch.randn(3, 4, 5, 6)]
    b = [torch.randn(3, 4, 5, 6)]
    na, nb = numpy_in(a[0].double().numpy()), numpy_in(b[0].double().numpy())
    assert feature_distance(a, b).item() == pytest.approx(np.sqrt(((na - nb) ** 2).sum()), rel=1e-5)


def test_parts_are_the_vis_and_ir_sums():
    """contrast_parts gives the release's DH3 (VIS channels) and DH4 (IR channels); CR is their sum."""
    from losses.contrast import contrast_parts, nonempty_channels
    ext = TinyExtractor()
    out, y, ir, ref, vm, im, _, _ = batch(seed=4)
    vis, ir_part = contrast_parts(out, y, ir, ref, vm, im, ext)
    assert nonempty_channels(vm) == [0, 2] and nonempty_channels(im) == [0, 1, 2]
    assert vis.item() == pytest.approx(numpy_cr(ext, out, y, ir, ref, vm, torch.zeros_like(im)), rel=1e-5)
    assert ir_part.item() == pytest.approx(numpy_cr(ext, out, y, ir, ref, torch.zeros_like(vm), im), rel=1e-5)
    assert (vis + ir_part).item() == contrast_loss(out, y, ir, ref, vm, im, ext).item()
