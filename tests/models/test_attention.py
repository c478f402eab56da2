"""models/attention.py: SDPA against the explicit form, context passing, zero-initialised output."""
from __future__ import annotations

import math

import pytest
import torch

from models.attention import (BasicTransformerBlock, CrossAttention, SpatialTransformer, attention,
                              set_attn_impl)


def manual_attention(attn: CrossAttention, x: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor) -> torch.Tensor:
    """Attention written out head by head from the module's weights, as the release describes it."""
    q, k, v = x @ attn.to_q.weight.T, k_in @ attn.to_k.weight.T, v_in @ attn.to_v.weight.T
    d = attn.dim_head
    heads = []
    for h in range(attn.heads):
        sl = slice(h * d, (h + 1) * d)
        logits = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(32)
        heads.append(torch.softmax(logits, dim=-1) @ v[..., sl])
    return torch.cat(heads, -1) @ attn.to_out[0].weight.T + attn.to_out[0].bias


def test_cross_attention_shapes_and_sizes():
    attn = CrossAttention()
    assert attn.heads == 2 and attn.dim_head == 32 and attn.scale == pytest.approx(1 / math.sqrt(32))
    for lin in (attn.to_q, attn.to_k, attn.to_v):
        assert lin.bias is None and tuple(lin.weight.shape) == (64, 64)
    assert attn.to_out[0].bias is not None and tuple(attn.to_out[0].weight.shape) == (64, 64)


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_self_attention_matches_manual_formula(impl):
    torch.manual_seed(0)
    attn = CrossAttention(attn_impl=impl)
    x = torch.randn(2, 30, 64)
    out, (k, v) = attn(x)
    torch.testing.assert_close(out, manual_attention(attn, x, x, x), atol=1e-5, rtol=1e-5)
    # Without context, the returned context is the module's own projection of its input.
    torch.testing.assert_close(k, x @ attn.to_k.weight.T)
    torch.testing.assert_close(v, x @ attn.to_v.weight.T)


def test_context_is_projected_again_by_the_receiver():
    torch.manual_seed(1)
    sender, receiver = CrossAttention(), CrossAttention()
    a, b = torch.randn(2, 20, 64), torch.randn(2, 20, 64)
    _, (k0, v0) = sender(a)
    out, (k, v) = receiver(b, (k0, v0))
    torch.testing.assert_close(k, k0 @ receiver.to_k.weight.T)
    torch.testing.assert_close(v, v0 @ receiver.to_v.weight.T)
    torch.testing.assert_close(out, manual_attention(receiver, b, k0, v0), atol=1e-5, rtol=1e-5)
    # The context changes the result: it is not plain self-attention on b.
    assert (out - receiver(b)[0]).abs().max() > 1e-3


def test_context_of_another_size_is_refused():
    attn = CrossAttention()
    ctx = (torch.randn(1, 12, 64), torch.randn(1, 12, 64))
    with pytest.raises(AssertionError, match="context"):
        attn(torch.randn(1, 16, 64), ctx)


def test_sdpa_equals_explicit_for_block_and_transformer():
    torch.manual_seed(2)
    st = SpatialTransformer(64)
    torch.nn.init.normal_(st.proj_out.weight, std=0.2)  # zero-init would hide the block
    x, y = torch.randn(2, 64, 6, 10), torch.randn(2, 64, 6, 10)
    _, ctx = st(y)
    out_s, ctx_s = st(x, ctx)
    set_attn_impl(st, "explicit")
    assert all(m.attn_impl == "explicit" for m in st.modules() if isinstance(m, CrossAttention))
    out_e, ctx_e = st(x, ctx)
    torch.testing.assert_close(out_s, out_e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ctx_s[0], ctx_e[0])
    assert (out_s - x).abs().max() > 1e-2


def test_attention_function_rejects_unknown_impl():
    q = torch.randn(1, 2, 4, 32)
    with pytest.raises(ValueError, match="attn_impl"):
        attention(q, q, q, 0.1, "flash3")
    with pytest.raises(ValueError, match="attn_impl"):
        set_attn_impl(CrossAttention(), "fast")


def test_block_order_and_feedforward():
    torch.manual_seed(3)
    block = BasicTransformerBlock()
    x = torch.randn(1, 8, 64)
    ctx = (torch.randn(1, 8, 64), torch.randn(1, 8, 64))
    out, ctx_out = block(x, ctx)
    h = x + block.attn1(block.norm1(x))[0]
    h = h + block.attn2(block.norm2(h), ctx)[0]
    value, gate = block.ff.net[0].proj(block.norm3(h)).chunk(2, -1)
    h = h + block.ff.net[2](value * torch.nn.functional.gelu(gate))
    torch.testing.assert_close(out, h)
    assert tuple(ctx_out[0].shape) == (1, 8, 64)
    assert tuple(block.ff.net[0].proj.weight.shape) == (512, 64)


def test_spatial_transformer_starts_as_identity_and_counts_parameters():
    st = SpatialTransformer(64)
    assert st.norm.num_groups == 4 and st.norm.eps == 1e-6 and st.norm.affine
    x = torch.randn(2, 64, 5, 7)
    out, (k, v) = st(x)
    torch.testing.assert_close(out, x)
    assert tuple(k.shape) == tuple(v.shape) == (2, 35, 64)
    # GN 128 + 2 x conv1x1 4160 + LN 3x128 + 2 x attn 16448 + GEGLU 33280 + Linear 16448
    assert sum(p.numel() for p in st.parameters()) == 91_456


def test_state_dict_names_are_the_releases():
    """The release's transformer: transformer_blocks.0, to_out.0 (Linear before a p=0 Dropout), ff.net.2."""
    keys = list(SpatialTransformer(64).state_dict())
    assert keys[:4] == ["norm.weight", "norm.bias", "proj_in.weight", "proj_in.bias"]
    assert keys[-2:] == ["proj_out.weight", "proj_out.bias"]
    block = [k[len("transformer_blocks.0."):] for k in keys[4:-2]]
    assert block == ["attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight", "attn1.to_out.0.weight",
                     "attn1.to_out.0.bias", "ff.net.0.proj.weight", "ff.net.0.proj.bias", "ff.net.2.weight",
                     "ff.net.2.bias", "attn2.to_q.weight", "attn2.to_k.weight", "attn2.to_v.weight",
                     "attn2.to_out.0.weight", "attn2.to_out.0.bias", "norm1.weight", "norm1.bias",
                     "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"]
