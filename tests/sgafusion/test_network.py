"""SGAFusionNet: release names and size, the working variant's cue really steering gates and output."""
from __future__ import annotations

import pytest
import torch

from models.sgafusion.network import SGAFusionNet

from .tiny import CUE_DIM, images, spread_init, tiny_net

N_TOKENS = 5


def _cue(seed, b=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, CUE_DIM, generator=g), torch.rand(b, N_TOKENS, CUE_DIM, generator=g)


def test_release_names_and_parameter_count():
    net = SGAFusionNet("release")
    sd = net.state_dict()
    assert len(sd) == 96
    assert sum(p.numel() for p in net.parameters()) == 9_211_131
    assert list(sd)[:2] == ["resnet.conv1.conv.weight", "resnet.conv1.conv.bias"]
    assert list(sd)[-1] == "cross.cross_attention.out_proj.bias"
    assert tuple(sd["resnet.moe1.dehazenet.fc1.weight"].shape) == (256, 32768)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        SGAFusionNet("fancy")


@pytest.mark.parametrize("variant", ["release", "working"])
def test_any_size_and_shapes(variant, single_thread):
    net = tiny_net(variant).eval()
    vi, ir = images(2, 17, 29)
    cue, tokens = _cue(0, 2)
    with torch.no_grad():
        seg, fused = net(vi, ir, cue, tokens)
    assert seg.shape == (2, 9, 17, 29) and fused.shape == (2, 3, 17, 29)
    assert torch.isfinite(fused).all()


def _run(net, cue, tokens):
    vi, ir = images(1, 24, 40)
    trace = {}
    with torch.no_grad():
        _, fused = net(vi, ir, cue, tokens, trace=trace)
    return fused, trace


def test_working_cue_changes_gates_and_output_non_uniformly(single_thread):
    net = spread_init(tiny_net("working")).eval()
    fa, ta = _run(net, *_cue(1))
    fb, tb = _run(net, *_cue(2))
    for gate in ("gates.vi.moe1", "gates.vi.moe2", "gates.ir.moe4", "gates.block4", "gates.block5"):
        d = (ta[gate] - tb[gate]).abs()
        assert d.mean() > 1e-2, gate
        # not one shift everywhere: the change differs between pixels
        assert d.flatten(2).std(dim=2).max() > 0.1 * d.mean(), gate
    # the attention term itself varies over the image (many key tokens), unlike the release
    attn = ta["cross.attn"]
    assert (attn - attn[:, :, :1, :1]).abs().max() > 0.1
    w = ta["cross.attn_weights"]
    assert w.shape[-1] == 1 + N_TOKENS and (w.max(-1).values < 1).all()
    dfused = (fa - fb).abs()
    assert dfused.mean() > 1e-2
    assert dfused.std() > 0.2 * dfused.mean()


def test_release_cue_is_a_constant_bias_and_reaches_no_gate(single_thread):
    net = spread_init(tiny_net("release")).eval()
    fa, ta = _run(net, _cue(1)[0], None)
    fb, tb = _run(net, _cue(2)[0], None)
    attn = ta["cross.attn"]
    assert (attn - attn[:, :, :1, :1]).abs().max() < 1e-5      # same vector at every pixel
    assert torch.equal(ta["cross.attn_weights"], torch.ones_like(ta["cross.attn_weights"]))
    for gate in ("gates.vi.moe1", "gates.vi.moe2", "gates.ir.moe4"):
        assert torch.equal(ta[gate], tb[gate])                   # the encoder never sees the cue
    assert not torch.equal(fa, fb)


def test_working_needs_tokens():
    net = tiny_net("working").eval()
    vi, ir = images()
    with pytest.raises(ValueError, match="patch tokens"):
        net(vi, ir, _cue(0)[0], None)


def test_gradients_reach_cue_paths(single_thread):
    net = tiny_net("working")
    vi, ir = images(1, 16, 16)
    cue, tokens = _cue(3)
    _, fused = net(vi, ir, cue, tokens)
    fused.square().mean().backward()
    for name in ("resnet.moe1.cue_gate.weight", "conv_block5.2.cue_gate.weight", "cross.fc2.weight",
                 "cross.cross_attention.in_proj_weight"):
        g = dict(net.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
