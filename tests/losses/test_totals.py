"""losses/weights.py, losses/fusion.py, losses/totals.py: the totals are the weighted sums of their terms."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from losses.contrast import contrast_loss
from losses.cosine import cosine_distill_loss
from losses.fusion import cal_loss, teacher_base_loss
from losses.gradient import gradient_loss
from losses.totals import NonFiniteLossError, SegmentPrior, check_finite, student_loss, teacher_loss
from losses.weights import LossWeights
from tests.losses.tiny_extractor import TinyExtractor


def setup(seed: int = 0, b: int = 2, h: int = 16, w: int = 16):
    g = torch.Generator().manual_seed(seed)
    y, ir, f_s, f_t = (torch.rand(b, 1, h, w, generator=g) for _ in range(4))
    vm = (torch.rand(b, 2, h, w, generator=g) > 0.5).float() * y
    im = (torch.rand(b, 2, h, w, generator=g) > 0.5).float() * ir
    sizes = [(h, w), (h // 2, w // 2), (h // 4, w // 4), (h // 2, w // 2), (h, w)]
    taps_s = [torch.randn(b, 32, *s, generator=g) for s in sizes]
    taps_t = [torch.randn(b, 32, *s, generator=g) for s in sizes]
    for t in [f_s, f_t, *taps_s, *taps_t]:
        t.requires_grad_()
    return y, ir, f_s, f_t, vm, im, taps_s, taps_t


def test_default_weights_are_the_release():
    w = LossWeights()
    assert (w.fuse_y, w.fuse_ir, w.fuse_ref, w.grad_src, w.grad_ref) == (3, 2, 4, 9, 3)
    assert (w.contrast_div, w.w_fuse, w.w_grad, w.w_contrast, w.w_cos) == (3000, 3, 3, 1, 0.3)
    assert (w.teacher_y, w.teacher_ir, w.teacher_grad, w.mutual, w.mutual_cos) == (1, 1, 2, 0.1, 0.01)


def test_weights_from_config():
    w = LossWeights.from_config({"contrast_mask": "binary", "w_cos": 0.5, "fuse_y": 1})
    assert w.w_cos == 0.5 and w.fuse_y == 1.0 and w.fuse_ir == 2.0
    assert LossWeights.from_config(None) == LossWeights()
    with pytest.raises(ValueError, match="loss.w_coss: unknown"):
        LossWeights.from_config({"w_coss": 0.5})
    with pytest.raises(ValueError, match="loss.mutual: expected a number"):
        LossWeights.from_config({"mutual": "high"})
    with pytest.raises(ValueError, match="contrast_div"):
        LossWeights.from_config({"contrast_div": 0})


def test_cal_is_the_weighted_sum_of_independent_terms():
    ext = TinyExtractor()
    y, ir, f_s, f_t, vm, im, _, _ = setup()
    total, terms = cal_loss(f_s, y, ir, f_t, vm, im, ext)
    fuse = 3 * F.mse_loss(f_s, y) + 2 * F.mse_loss(f_s, ir) + 4 * F.mse_loss(f_s, f_t)
    grad = 9 * gradient_loss(f_s, y, ir) + 3 * gradient_loss(f_s, f_t, f_t)
    cr = contrast_loss(f_s, y, ir, f_t, vm, im, ext)
    torch.testing.assert_close(total, 3 * fuse + 3 * grad + cr / 3000)
    torch.testing.assert_close(terms["fuse"], fuse.detach())
    torch.testing.assert_close(terms["contrast"], (cr / 3000).detach())
    assert cr.item() > 0 and all(not v.requires_grad for v in terms.values())


def test_student_loss_adds_cosine_and_detaches_the_teacher():
    ext = TinyExtractor()
    y, ir, f_s, f_t, vm, im, taps_s, taps_t = setup(1)
    total, terms = student_loss(f_s, taps_s, y, ir, f_t, taps_t, SegmentPrior(vm, im, ext))
    cal, _ = cal_loss(f_s, y, ir, f_t, vm, im, ext)
    cos = cosine_distill_loss(taps_s, taps_t)
    torch.testing.assert_close(total, cal + 0.3 * cos)
    assert set(terms) >= {"fuse", "grad", "contrast", "cos", "total"}
    torch.testing.assert_close(terms["total"], 3 * terms["fuse"] + 3 * terms["grad"] + terms["contrast"] + 0.3 * terms["cos"])
    total.backward()
    assert f_s.grad is not None and all(t.grad is not None for t in taps_s)
    assert f_t.grad is None and all(t.grad is None for t in taps_t)


def test_student_loss_without_teacher_and_custom_weights():
    y, ir, f_s, _, _, _, taps_s, _ = setup(2)
    total, terms = student_loss(f_s, taps_s, y, ir)
    expected = 3 * (3 * F.mse_loss(f_s, y) + 2 * F.mse_loss(f_s, ir)) + 3 * 9 * gradient_loss(f_s, y, ir)
    torch.testing.assert_close(total, expected)
    assert "cos" not in terms and "contrast" not in terms
    w = dataclasses.replace(LossWeights(), fuse_y=0.0, w_grad=0.0)
    total_w, _ = student_loss(f_s, taps_s, y, ir, weights=w)
    torch.testing.assert_close(total_w, 3 * 2 * F.mse_loss(f_s, ir))


def test_student_loss_needs_an_extractor_for_the_triplet_term():
    y, ir, f_s, f_t, vm, im, taps_s, taps_t = setup(3)
    with pytest.raises(ValueError, match="w_contrast"):
        student_loss(f_s, taps_s, y, ir, f_t, taps_t, SegmentPrior(vm, im, None))
    no_cr = dataclasses.replace(LossWeights(), w_contrast=0.0)
    total, terms = student_loss(f_s, taps_s, y, ir, f_t, taps_t, SegmentPrior(vm, im, None), weights=no_cr)
    assert "contrast" not in terms and torch.isfinite(total)


def test_teacher_loss_base_and_mutual():
    ext = TinyExtractor()
    y, ir, f_s, f_t, vm, im, taps_s, taps_t = setup(4)
    base, terms = teacher_loss(f_t, taps_t, y, ir)
    torch.testing.assert_close(base, F.mse_loss(f_t, y) + F.mse_loss(f_t, ir) + 2 * gradient_loss(f_t, y, ir))
    assert set(terms) == {"mse_y", "mse_ir", "g_src", "base", "total"}
    torch.testing.assert_close(teacher_base_loss(f_t, y, ir)[0], base)

    total, terms = teacher_loss(f_t, taps_t, y, ir, f_s, taps_s, SegmentPrior(vm, im, ext), mutual=True)
    cal, _ = cal_loss(f_t, y, ir, f_s, vm, im, ext)
    torch.testing.assert_close(total, base + 0.1 * cal + 0.01 * cosine_distill_loss(taps_t, taps_s))
    assert {"mutual_cal", "mutual_cos", "mutual_contrast", "base", "total"} <= set(terms)
    total.backward()
    assert f_t.grad is not None and all(t.grad is not None for t in taps_t)
    assert f_s.grad is None and all(t.grad is None for t in taps_s)
    with pytest.raises(ValueError, match="ref_s and taps_s"):
        teacher_loss(f_t, taps_t, y, ir, mutual=True)


def test_check_finite():
    terms = {"fuse": torch.tensor(1.0), "contrast": torch.tensor(2.0)}
    check_finite(terms, 3)
    check_finite({}, 3)
    with pytest.raises(NonFiniteLossError, match=r"step 7: loss term 'contrast' is nan"):
        check_finite({**terms, "contrast": torch.tensor(float("nan"))}, 7)
    with pytest.raises(NonFiniteLossError, match=r"step 8: loss term 'cos' is inf"):
        check_finite({**terms, "cos": torch.tensor(float("inf"))}, 8)
