"""The three SGAFusion training stages: a few optimiser steps lower each stage's loss."""
from __future__ import annotations

import pytest
import torch

from training.sgafusion_steps import stage1_step, stage2_step, stage3_step

from .tiny import images, tiny_cue, tiny_net


def _train(step_fn, params, steps=6, lr=1e-3):
    opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss, terms = step_fn()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, terms


def test_stage1_lowers_classification_loss(single_thread):
    torch.manual_seed(0)
    cue = tiny_cue(num_classes=3).train()
    batch = {"image": torch.rand(6, 3, 32, 32), "label": torch.tensor([0, 1, 2, 0, 1, 2])}
    lora_before = {n: p.detach().clone() for n, p in cue.named_parameters() if "lora_" in n}
    losses, terms = _train(lambda: stage1_step(cue, batch), cue.parameters(), steps=8, lr=1e-2)
    assert losses[-1] < 0.9 * losses[0]
    assert set(terms) == {"ce", "accuracy"}
    assert all(not torch.equal(p, lora_before[n]) for n, p in cue.named_parameters() if "lora_" in n)


@pytest.mark.parametrize("stage", [2, 3])
def test_stage2_and_3_lower_their_loss(stage, single_thread):
    torch.manual_seed(0)
    net, cue = tiny_net("working").train(), tiny_cue()
    cue_before = {k: v.clone() for k, v in cue.state_dict().items()}
    vi, ir = images(1, 16, 20)
    if stage == 2:
        batch = {"vi": vi, "ir": ir, "label": torch.randint(0, 9, (1, 16, 20))}
        fn = lambda: stage2_step(net, cue, batch)  # noqa: E731
    else:
        batch = {"vi": vi * 0.3, "vi_gt": vi, "ir": ir}
        fn = lambda: stage3_step(net, cue, batch)  # noqa: E731
    # the dehaze expert's 8.4M-weight fc1 is left out of the optimiser only to keep the test quick
    params = [p for n, p in net.named_parameters() if "dehazenet.fc1" not in n]
    losses, terms = _train(fn, params, steps=8, lr=5e-4)
    assert losses[-1] < 0.95 * losses[0]
    assert {"fusion", "L_max", "L_color", "L_grad"} <= set(terms)
    assert ("ce" in terms) == (stage == 2)
    assert all(torch.equal(v, cue.state_dict()[k]) for k, v in cue_before.items())  # the cue stays frozen


def test_missing_batch_key():
    with pytest.raises(KeyError, match="vi_gt"):
        stage3_step(tiny_net("release"), tiny_cue(lora=False), {"vi": torch.rand(1, 3, 8, 8), "ir": torch.rand(1, 1, 8, 8)})
