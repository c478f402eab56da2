"""models/teacher.py: parameter count, shapes for any size, SDPA vs explicit, gradients."""
from __future__ import annotations

import pytest
import torch

from models.attention import SpatialTransformer, set_attn_impl
from models.student import Student, count_parameters
from models.teacher import RELEASE_PARAMETER_COUNT, RELEASE_UNUSED_PARAMETERS, Teacher


def inputs(b: int, h: int, w: int, k: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, c, h, w, generator=g) for c in (1, 1, k, k)]


def randomise_transformer_outputs(model: torch.nn.Module) -> None:
    """proj_out starts at zero, which would hide attention entirely; give it weights."""
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, SpatialTransformer):
            with torch.no_grad():
                m.proj_out.weight.copy_(torch.randn(m.proj_out.weight.shape, generator=g) * 0.2)


def test_parameter_count():
    teacher = Teacher(mask_channels=4)
    # The release's 2,787,043 counts an unused compress_and_upsample Conv(256->64) and its two 3x3 Sobel
    # kernels held as parameters; both are kept here, frozen, so the total matches and 2,639,505 train.
    assert sum(p.numel() for p in teacher.parameters()) == RELEASE_PARAMETER_COUNT == 2_787_043
    assert count_parameters(teacher) == 2_639_505
    assert count_parameters(teacher) + RELEASE_UNUSED_PARAMETERS == RELEASE_PARAMETER_COUNT
    assert RELEASE_UNUSED_PARAMETERS == count_parameters(torch.nn.Conv2d(256, 64, 3)) + 2 * 9
    # Mask channels only change the first conv of each mask encoder: 2 x 9 x 16 per extra channel.
    assert count_parameters(Teacher(mask_channels=6)) - count_parameters(teacher) == 2 * 2 * 9 * 16
    # vi_mask_activation adds an activation, no parameters.
    assert count_parameters(Teacher(vi_mask_activation=True)) == 2_639_505


def test_inert_release_members_do_not_change_the_output():
    teacher = Teacher().eval()
    x = inputs(1, 32, 48)
    with torch.no_grad():
        before = teacher(*x)[0]
        teacher.compress_and_upsample.weight.add_(1.0)
        teacher.sobel.mul_(3.0)
        after = teacher(*x)[0]
    assert torch.equal(before, after)


def test_one_shared_spa():
    teacher = Teacher()
    assert sum(isinstance(m, SpatialTransformer) for m in teacher.modules()) == 5
    assert not isinstance(teacher.encoder_mask2_vi[-1], torch.nn.LeakyReLU)  # quirk kept by default
    assert isinstance(Teacher(vi_mask_activation=True).encoder_mask2_vi[-1], torch.nn.LeakyReLU)


@pytest.mark.parametrize("size", [(50, 70), (64, 80), (37, 21)])
def test_output_and_tap_shapes_equal_the_students(size):
    h, w = size
    teacher, student = Teacher(), Student()
    y, ir, vm, im = inputs(1, h, w)
    with torch.no_grad():
        fused, taps = teacher(y, ir, vm, im)
        fused_s, taps_s = student(y, ir)
    assert fused.shape == fused_s.shape == (1, 1, h, w)
    assert [t.shape for t in taps] == [t.shape for t in taps_s]
    assert all(t.shape[1] == 32 for t in taps)


def test_sizes_divisible_by_16_are_neither_padded_nor_cropped():
    teacher = Teacher()
    randomise_transformer_outputs(teacher)
    y, ir, vm, im = inputs(1, 48, 64, seed=1)
    with torch.no_grad():
        fused, taps = teacher(y, ir, vm, im)
        fused_p, taps_p = teacher.forward_padded(y, ir, vm, im)
    assert torch.equal(fused, fused_p)
    assert all(torch.equal(a, b) for a, b in zip(taps, taps_p))
    assert [tuple(t.shape[-2:]) for t in taps_p] == [(48, 64), (24, 32), (12, 16), (24, 32), (48, 64)]


def test_odd_sizes_are_the_top_left_of_the_padded_run():
    teacher = Teacher()
    y, ir, vm, im = inputs(1, 45, 30, seed=2)
    pad = torch.nn.functional.pad
    with torch.no_grad():
        fused, taps = teacher(y, ir, vm, im)
        padded = [pad(t, (0, 2, 0, 3), mode="reflect") for t in (y, ir, vm, im)]  # to 48 x 32
        fused_p, taps_p = teacher.forward_padded(*padded)
    torch.testing.assert_close(fused, fused_p[..., :45, :30])
    torch.testing.assert_close(taps[2], taps_p[2][..., :11, :7])


def test_sdpa_equals_explicit_for_the_whole_teacher():
    torch.manual_seed(0)
    teacher = Teacher()
    randomise_transformer_outputs(teacher)
    args = inputs(1, 32, 48, seed=3)
    with torch.no_grad():
        fused_s, taps_s = teacher(*args)
        set_attn_impl(teacher, "explicit")
        fused_e, taps_e = teacher(*args)
    torch.testing.assert_close(fused_s, fused_e, atol=1e-5, rtol=1e-5)
    for a, b in zip(taps_s, taps_e):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert Teacher(attn_impl="explicit").spa.T_img1.block.attn1.attn_impl == "explicit"


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    teacher = Teacher()
    randomise_transformer_outputs(teacher)
    fused, taps = teacher(*inputs(2, 32, 32, seed=4))
    loss = (fused - 0.5).pow(2).mean() + sum(t.pow(2).mean() for t in taps)
    loss.backward()
    trainable = [(n, p) for n, p in teacher.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in trainable if p.grad.abs().max() == 0]
    assert not zero, zero
    # The release's inert members (compress_and_upsample, sobel) are frozen and take no gradient.
    assert {n for n, p in teacher.named_parameters() if not p.requires_grad} == {
        "compress_and_upsample.weight", "compress_and_upsample.bias", "sobel"}
    assert all(p.grad is None for n, p in teacher.named_parameters() if not p.requires_grad)


def test_mismatched_inputs_fail_loudly():
    y, ir, vm, im = inputs(1, 32, 32)
    with pytest.raises(AssertionError, match="vm"):
        Teacher()(y, ir, vm[..., :16], im)
