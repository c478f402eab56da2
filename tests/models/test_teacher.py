"""models/teacher.py: release names, parameter count, padding to 4, shapes for any size, SDPA vs explicit,
gradients, and the conversion of the project's older teacher files."""
from __future__ import annotations

import pytest
import torch

from models.attention import SpatialTransformer, set_attn_impl
from models.student import Student, count_parameters
from models.teacher import (RELEASE_GPU_PARAMETER_COUNT, RELEASE_PARAMETER_COUNT, RELEASE_UNUSED_PARAMETERS,
                            Teacher, convert_legacy_teacher_optimizer_state, convert_legacy_teacher_state,
                            legacy_teacher_key)


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
    # The release's 2,787,043 (CPU-built) counts an unused compress_and_upsample Conv(256->64) and its two
    # 3x3 Sobel kernels held as parameters; both are kept here, frozen, so the total matches and 2,639,505 train.
    assert sum(p.numel() for p in teacher.parameters()) == RELEASE_PARAMETER_COUNT == 2_787_043
    assert RELEASE_PARAMETER_COUNT - RELEASE_GPU_PARAMETER_COUNT == 18  # a GPU-built release lacks grad.*
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
        teacher.compress_and_upsample[0].weight.add_(1.0)
        teacher.grad.weightx.mul_(3.0)
        after = teacher(*x)[0]
    assert torch.equal(before, after)


def test_one_shared_spa():  # five transformers, reused by all five SPA levels
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


@pytest.mark.parametrize("size", [(52, 68), (40, 56), (48, 64)])
def test_multiples_of_4_are_neither_padded_nor_cropped(size):
    """52x68 and 40x56 are multiples of 4 but not of 16: the release runs them unpadded, so must we."""
    h, w = size
    teacher = Teacher()
    randomise_transformer_outputs(teacher)
    y, ir, vm, im = inputs(1, h, w, seed=1)
    with torch.no_grad():
        fused, taps = teacher(y, ir, vm, im)
        fused_p, taps_p = teacher.forward_release(y, ir, vm, im)
        # what the earlier padding to 16 computed: a different result at these sizes
        pad = [torch.nn.functional.pad(t, (0, -w % 16, 0, -h % 16), mode="reflect") for t in (y, ir, vm, im)]
        fused_16 = teacher.forward_release(*pad)[0][..., :h, :w]
    assert torch.equal(fused, fused_p)
    assert all(torch.equal(a, b) for a, b in zip(taps, taps_p))
    assert [tuple(t.shape[-2:]) for t in taps_p] == [(h, w), (h // 2, w // 2), (h // 4, w // 4), (h // 2, w // 2), (h, w)]
    if h % 16 or w % 16:
        assert (fused - fused_16).abs().max() > 1e-4


def test_release_forward_refuses_sizes_that_are_not_multiples_of_4():
    y, ir, vm, im = inputs(1, 50, 68)
    with pytest.raises(ValueError, match="multiples of 4"):
        Teacher().forward_release(y, ir, vm, im)


def test_odd_sizes_are_the_top_left_of_the_run_padded_to_4():
    teacher = Teacher()
    y, ir, vm, im = inputs(1, 45, 30, seed=2)
    pad = torch.nn.functional.pad
    with torch.no_grad():
        fused, taps = teacher(y, ir, vm, im)
        padded = [pad(t, (0, 2, 0, 3), mode="reflect") for t in (y, ir, vm, im)]  # to 48 x 32
        fused_p, taps_p = teacher.forward_release(*padded)
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
    assert Teacher(attn_impl="explicit").img_transformer1.transformer_blocks[0].attn1.attn_impl == "explicit"


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
        "compress_and_upsample.0.weight", "compress_and_upsample.0.bias", "grad.weightx", "grad.weighty"}
    assert all(p.grad is None for n, p in teacher.named_parameters() if not p.requires_grad)


def test_mismatched_inputs_fail_loudly():
    y, ir, vm, im = inputs(1, 32, 32)
    with pytest.raises(AssertionError, match="vm"):
        Teacher()(y, ir, vm[..., :16], im)


def test_fixture_teacher_loads_strictly(shared_dir):
    """The release's teacher state_dict (192 keys, its own names and order) loads with strict=True."""
    fixture = torch.load(shared_dir / "fixtures" / "sage_release" / "teacher.pt", weights_only=True)
    teacher = Teacher(mask_channels=4)
    assert list(teacher.state_dict()) == list(fixture["state_dict"])
    teacher.load_state_dict(fixture["state_dict"], strict=True)
    assert teacher.img_decoder2[6].weight.dtype == torch.float32
    torch.testing.assert_close(teacher.img_decoder2[6].weight, fixture["state_dict"]["img_decoder2.6.weight"].float())


# A teacher state_dict as this project wrote it before adopting the release's names (commit caffa87).
def legacy_state(model: Teacher, with_inert: bool = True) -> "OrderedDict[str, torch.Tensor]":
    from collections import OrderedDict
    inverse = {"img_transformer1": "spa.T_img1", "mask_transformer1_vi": "spa.T_vi1",
               "mask_transformer1_ir": "spa.T_ir1", "mask_transformer2": "spa.T_mask2",
               "img_transformer2": "spa.T_img2", "middle_mask_ir": "spa.mid_ir", "middle_mask_vi": "spa.mid_vi",
               "middle_mask": "spa.mid_mask", "middle_img": "spa.mid_img",
               "compress_and_downsample_img1": "down1", "compress_and_downsample_img2": "down2",
               "compress_and_downsample_img3": "merge3", "compress_and_downsample_img4": "merge4",
               "img_decoder1": "decoder1", "img_decoder2": "decoder2"}
    out = OrderedDict()
    for key, value in model.state_dict().items():
        head, rest = key.split(".", 1)
        if head == "grad":
            continue
        if head.startswith("compress_to_32_"):
            key = f"taps.{int(head[-1]) - 1}.{rest}"
        elif head == "compress_and_upsample":
            if not with_inert:
                continue
            key = "compress_and_upsample." + rest[2:]
        elif head in inverse:
            rest = (rest.replace("transformer_blocks.0.", "block.").replace("to_out.0.", "to_out.")
                    .replace("ff.net.2.", "ff.net.1."))
            key = f"{inverse[head]}.{rest}"
        out[key] = value.clone()
    if with_inert:
        out["sobel"] = torch.cat([model.grad.weightx, model.grad.weighty]).reshape(2, 3, 3).clone()
    return out


@pytest.mark.parametrize("with_inert", [True, False])
def test_legacy_teacher_files_are_converted(with_inert):
    torch.manual_seed(3)
    source = Teacher()
    randomise_transformer_outputs(source)
    old = legacy_state(source, with_inert)
    assert "spa.T_img1.block.attn1.to_out.weight" in old and "taps.4.bias" in old
    state, converted = convert_legacy_teacher_state(old)
    assert converted
    target = Teacher()
    target.load_state_dict(state, strict=True)
    x = inputs(1, 32, 40, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(target(*x)[0], source(*x)[0], rtol=0, atol=0)
    # The release's own names pass through unchanged and are not reported as converted.
    same, converted = convert_legacy_teacher_state(source.state_dict())
    assert not converted and list(same) == list(source.state_dict())


def test_release_file_saved_on_a_gpu_lacks_the_sobel_entries():
    teacher = Teacher()
    gpu_saved = {k: v for k, v in teacher.state_dict().items() if not k.startswith("grad.")}
    assert sum(v.numel() for v in gpu_saved.values()) == RELEASE_GPU_PARAMETER_COUNT
    state, converted = convert_legacy_teacher_state(gpu_saved)
    assert not converted and list(state)[:2] == ["grad.weightx", "grad.weighty"]
    Teacher().load_state_dict(state, strict=True)
    torch.testing.assert_close(state["grad.weighty"], teacher.grad.weighty)


def test_legacy_optimizer_state_follows_the_parameters():
    torch.manual_seed(4)
    source = Teacher()
    old = legacy_state(source)
    # An Adam state over the old parameter order: each state records its parameter's shape.
    old_keys = list(old)
    opt_state = {"state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.full_like(v, float(i))}
                           for i, (k, v) in enumerate(old.items()) if k != "sobel"},
                 "param_groups": [{"lr": 5e-4, "params": list(range(len(old_keys)))}]}
    target = Teacher()
    opt = torch.optim.Adam(target.parameters(), lr=5e-4)
    new_state = convert_legacy_teacher_optimizer_state(opt_state, old_keys, target)
    opt.load_state_dict(new_state)
    params = dict(target.named_parameters())
    moved = 0
    for i, key in enumerate(old_keys):
        if key == "sobel":
            continue
        p = params[legacy_teacher_key(key)]
        assert opt.state[p]["exp_avg"].shape == p.shape and float(opt.state[p]["exp_avg"].flatten()[0]) == float(i)
        moved += 1
    assert moved == len(opt.state) == len(old_keys) - 1
    assert not opt.state[params["grad.weightx"]]  # the inert Sobel kernels never had a gradient
