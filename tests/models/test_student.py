"""The student matches the released checkpoint's layout and the shapes of SPEC-SAGE.md section 2."""
from __future__ import annotations

import pytest
import torch

from models.student import Student, count_parameters


def test_parameter_count_is_the_published_one():
    assert count_parameters(Student()) == 135_617


def test_state_dict_matches_the_release(shared_dir):
    release = torch.load(shared_dir / "sage_reference" / "checkpoints" / "checkpoints.pt",
                         map_location="cpu", weights_only=True)
    own = Student().state_dict()
    assert list(own) == list(release)  # same names in the same order
    for key, tensor in own.items():
        assert tuple(tensor.shape) == tuple(release[key].shape), key
        assert tensor.dtype == release[key].dtype, key


def test_release_key_examples_exist():
    keys = set(Student().state_dict())
    for k in ("module1.0.weight", "module1.1.running_mean", "module1.1.num_batches_tracked",
              "module5.6.weight", "module5.7.running_var", "adjust_channels4.0.weight", "adjust_channels5.1.running_var",
              "final_decoder.0.bias"):
        assert k in keys
    assert tuple(Student().state_dict()["adjust_channels4.0.weight"].shape) == (32, 64, 1, 1)


@pytest.mark.parametrize("h,w", [(16, 24), (13, 9), (4, 4), (7, 30)])
def test_output_and_tap_shapes(h, w):
    torch.manual_seed(0)
    model = Student().eval()
    y, ir = torch.rand(2, 1, h, w), torch.rand(2, 1, h, w)
    with torch.no_grad():
        fused, taps = model(y, ir)
    assert fused.shape == (2, 1, h, w)
    assert fused.abs().max() < 1  # Tanh output
    assert [tuple(t.shape) for t in taps] == [
        (2, 32, h, w), (2, 32, h // 2, w // 2), (2, 32, h // 4, w // 4), (2, 32, h // 2, w // 2), (2, 32, h, w)]


def test_inputs_are_concatenated_y_first():
    """Swapping Y and IR changes the output: the first conv sees (Y, IR) in that order."""
    torch.manual_seed(1)
    model = Student().eval()
    y, ir = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        a = model(y, ir)[0]
        b = model(ir, y)[0]
        w = model.module1[0].weight
        model.module1[0].weight.data = w[:, [1, 0]].clone()  # swap the input channels of conv 1
        c = model(ir, y)[0]
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, c)


def test_gradients_reach_every_parameter():
    model = Student().train()
    fused, taps = model(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12))
    (fused.mean() + sum(t.mean() for t in taps)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
