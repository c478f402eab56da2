"""SGAFusion loss terms: the fixture's values, and behaviour on simple inputs."""
from __future__ import annotations

import torch

from losses import sgafusion as L


def test_fixture_terms(shared_dir):
    fx = torch.load(str(shared_dir / "fixtures" / "sgafusion_release" / "loss.pt"), weights_only=True)
    v, i, f = fx["inputs"]["vis_gt"], fx["inputs"]["ir"], fx["inputs"]["fused"]
    ours = {"L_max": L.max_loss(v, i, f), "L_color": L.color_loss(v, f), "L_grad": L.gradient_loss(v, i, f),
            "L_ssim_vis": L.ssim_loss(v, f), "L_ssim_ir": L.ssim_loss(i, L.gray(f)),
            "L_consist": L.consistency_loss(v, i, f)}
    for name, ref in fx["terms"].items():
        assert torch.allclose(ours[name], ref, rtol=1e-6, atol=0), name
    total, terms = L.fusion_loss(v, i, f)
    assert set(terms) == {"L_max", "L_color", "L_grad"}
    assert torch.allclose(total, fx["total"], rtol=1e-6, atol=0)
    ce = fx["seg_ce"]
    assert torch.allclose(L.segmentation_loss(ce["logits"], ce["labels_with_ignore"]), ce["loss_with_ignore"], rtol=1e-6)


def test_terms_vanish_on_their_targets():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(1, 3, 20, 24, generator=g)
    i = torch.rand(1, 1, 20, 24, generator=g)
    _, target = L.max_target(v, i)
    assert L.max_loss(v, i, target) == 0
    assert L.color_loss(v, v) == 0
    assert L.ssim_loss(v, v).abs() < 1e-6
    assert L.ssim_loss(v, 1 - v) > 0.1


def test_optional_terms_are_added_with_weights():
    g = torch.Generator().manual_seed(1)
    v, i, f = torch.rand(1, 3, 20, 24, generator=g), torch.rand(1, 1, 20, 24, generator=g), torch.rand(1, 3, 20, 24, generator=g)
    base, _ = L.fusion_loss(v, i, f)
    w = L.FusionLossWeights(ssim=1.0, ssim_ir=1.0, consist=2.0)
    total, terms = L.fusion_loss(v, i, f, w)
    expected = base + terms["L_ssim_vis"] + terms["L_ssim_ir"] + 2 * terms["L_consist"]
    assert torch.allclose(total, expected)


def test_loss_falls_when_fitting(single_thread):
    g = torch.Generator().manual_seed(2)
    v, i = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 1, 16, 16, generator=g)
    f = torch.rand(1, 3, 16, 16, generator=g).requires_grad_()
    opt = torch.optim.Adam([f], lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss, _ = L.fusion_loss(v, i, f)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first
