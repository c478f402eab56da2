"""SGAFusion learning-rate schedules and AMP-aware gradient clipping."""
from __future__ import annotations

import pytest
import torch

from training.sgafusion_schedule import RELEASE_STAGES, clip_gradients, lr_at_epoch, lr_schedule, set_lr


def test_release_numbers():
    s2 = RELEASE_STAGES["stage2_joint"]
    compounding = lr_schedule(s2.epochs, s2.base_lr, compounding=True)
    assert compounding[25] == 1e-3 and abs(compounding[-1] - 1.746406994280273e-13) < 1e-25
    plain = lr_schedule(s2.epochs, s2.base_lr)
    assert plain[-1] == pytest.approx(4e-5) and min(plain) > 1e-6
    s1 = RELEASE_STAGES["stage1_cue"]
    assert lr_schedule(s1.epochs, s1.base_lr)[10] == 5e-3 and lr_schedule(s1.epochs, s1.base_lr)[-1] == pytest.approx(5e-4)


def test_bad_epoch():
    with pytest.raises(ValueError, match="epoch"):
        lr_at_epoch(5, 5, 1e-3)


def _model_with_grad(scale: float):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    (lin(torch.ones(1, 4)).sum() * scale).backward()
    return lin, opt


class _FakeScaler:
    """Stands in for torch.amp.GradScaler on CPU: gradients are multiplied by `scale` until unscale_."""

    def __init__(self, scale):
        self.scale, self.unscaled = scale, False

    def is_enabled(self):
        return True

    def unscale_(self, optimizer):
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad.div_(self.scale)
        self.unscaled = True


def test_clipping_unscales_first_by_default():
    lin, opt = _model_with_grad(65536.0)
    scaler = _FakeScaler(65536.0)
    norm = clip_gradients(lin.parameters(), 1.0, opt, scaler)
    assert norm > 1.0  # the norm before clipping, of the unscaled gradient
    assert scaler.unscaled
    true_norm = (sum(p.grad.square().sum() for p in lin.parameters())).sqrt()
    assert true_norm <= 1.0 + 1e-6 and true_norm > 0.99  # limited to 1, not to 1/65536


def test_release_clipping_of_scaled_gradients():
    lin, opt = _model_with_grad(65536.0)
    scaler = _FakeScaler(65536.0)
    clip_gradients(lin.parameters(), 1.0, opt, scaler, release_scaled_clipping=True)
    assert not scaler.unscaled
    scaled_norm = (sum(p.grad.square().sum() for p in lin.parameters())).sqrt()
    assert scaled_norm == pytest.approx(1.0, rel=1e-5)  # the true gradient is now 1/65536 of that


def test_no_clipping_and_set_lr():
    lin, opt = _model_with_grad(1.0)
    before = [p.grad.clone() for p in lin.parameters()]
    assert clip_gradients(lin.parameters(), None) is None
    assert all(torch.equal(a, p.grad) for a, p in zip(before, lin.parameters()))
    set_lr(opt, 0.123)
    assert opt.param_groups[0]["lr"] == 0.123
