"""The SAGE transformer: SpatialTransformer with key/value context passing (docs/sage.md#transformer).

A SpatialTransformer turns a (B, C, H, W) map into H*W tokens, runs one BasicTransformerBlock
(self-attention, cross-attention, GEGLU feed-forward) and adds the result back to its input.
The SPA idea lives in the cross-attention: it returns the keys and values it projected, and
another transformer can take them as its context, projecting them once more with its own W_k, W_v.

Attention is computed by torch.nn.functional.scaled_dot_product_attention ("sdpa"), which on CPU
and GPU dispatches to memory-efficient kernels that never hold the (N, N) attention matrix; the
release's explicit softmax(QK^T)V ("explicit") is kept for equivalence tests and benchmarks.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTN_IMPLS = ("sdpa", "explicit")

# Keys and values (B, M, inner) as projected by a CrossAttention, before the head split.
Context = Tuple[torch.Tensor, torch.Tensor]


def _check_impl(attn_impl: str) -> str:
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f"models/attention.py: attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
    return attn_impl


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, attn_impl: str = "sdpa") -> torch.Tensor:
    """softmax(q k^T * scale) v per head.

    Args:
        q: (B, heads, N, d); k, v: (B, heads, M, d).
        scale: multiplies the logits (1/sqrt(d) in SAGE), passed explicitly to SDPA.
        attn_impl: "sdpa" (fused kernel, memory O(N)) or "explicit" (materialises (B, heads, N, M)).
    Returns:
        (B, heads, N, d).
    """
    if attn_impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    _check_impl(attn_impl)
    return torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1) @ v


class CrossAttention(nn.Module):
    """Multi-head attention whose keys/values come from the input or from another module's context.

    Args:
        dim: token width (query and output), 64 in SAGE.
        heads: number of heads (2).
        dim_head: width of one head (32); inner width = heads * dim_head (64).
        attn_impl: "sdpa" or "explicit" (see attention()); may be changed later via the attribute.

    forward(x (B, N, dim), context=None) -> (out (B, N, dim), (k, v) each (B, M, inner)).
    Without context, keys and values are W_k(x), W_v(x) (self-attention, M = N). With a context
    (k0, v0) from another CrossAttention, they are W_k(k0), W_v(v0) with this module's own weights.
    """

    def __init__(self, dim: int = 64, heads: int = 2, dim_head: int = 32, attn_impl: str = "sdpa"):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.scale = 1.0 / math.sqrt(dim_head)
        self.attn_impl = _check_impl(attn_impl)
        self.to_q = nn.Linear(dim, inner, bias=False)
        # A context is another module's projected keys/values (width inner), so inner must equal dim.
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        # Sequential(Linear, Identity): the release's to_out is Sequential(Linear, Dropout(p=0)), so its
        # weights are named to_out.0.*; the Identity keeps that numbering (docs/release_differences.md).
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Identity())

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, self.dim_head).transpose(1, 2)  # (B, heads, n, d)

    def forward(self, x: torch.Tensor, context: Optional[Context] = None) -> Tuple[torch.Tensor, Context]:
        if context is None:
            k_in = v_in = x
        else:
            k_in, v_in = context
            # In SPA the context always comes from a map of the same spatial size; a mismatch means
            # the caller paired the wrong tensors, which attention itself would not notice.
            assert k_in.shape == v_in.shape == x.shape, (
                f"context keys {tuple(k_in.shape)} / values {tuple(v_in.shape)} must match the tokens {tuple(x.shape)}"
            )
        q, k, v = self.to_q(x), self.to_k(k_in), self.to_v(v_in)
        out = attention(self._split(q), self._split(k), self._split(v), self.scale, self.attn_impl)
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(out), (k, v)


class GEGLU(nn.Module):
    """Linear(dim -> 2*hidden) split into value and gate; returns value * GELU(gate). (.., dim) -> (.., hidden)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU(dim -> mult*dim) -> Linear(mult*dim -> dim). (.., dim) -> (.., dim).

    net = Sequential(GEGLU, Identity, Linear): the release has Dropout(p=0) in the middle, so its
    Linear is net.2; the Identity keeps the release's state_dict names.
    """

    def __init__(self, dim: int = 64, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """x + SelfAttn(LN1 x); x + CrossAttn(LN2 x, context); x + FF(LN3 x).

    Args:
        dim: token width (64).
        heads, dim_head: attention heads and their width (2, 32).
        attn_impl: "sdpa" or "explicit".

    forward(x (B, N, dim), context=None) -> (x (B, N, dim), ctx) where ctx = the cross-attention's
    projected (keys, values), each (B, N, heads*dim_head), for the next transformer.
    """

    def __init__(self, dim: int = 64, heads: int = 2, dim_head: int = 32, attn_impl: str = "sdpa"):
        super().__init__()
        # Registered in the release's order (attn1, ff, attn2, norms) so state_dicts list keys alike.
        self.attn1 = CrossAttention(dim, heads, dim_head, attn_impl)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, dim_head, attn_impl)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: Optional[Context] = None) -> Tuple[torch.Tensor, Context]:
        x = x + self.attn1(self.norm1(x))[0]
        h, ctx = self.attn2(self.norm2(x), context)
        x = x + h
        x = x + self.ff(self.norm3(x))
        return x, ctx


class SpatialTransformer(nn.Module):
    """GroupNorm -> Conv1x1 -> tokens -> BasicTransformerBlock -> Conv1x1 (zero init) -> + input.

    Args:
        channels: input/output channels (64).
        heads, dim_head: attention heads and their width (2, 32); heads*dim_head must equal channels.
        groups: GroupNorm groups (4, eps 1e-6, affine).
        attn_impl: "sdpa" or "explicit".

    forward(x (B, C, H, W), context=None) -> (x + T(x) of shape (B, C, H, W), ctx) with ctx the
    block's cross-attention keys/values (each (B, H*W, C)); a context passed in must come from a
    map of the same H, W (asserted).
    """

    def __init__(self, channels: int = 64, heads: int = 2, dim_head: int = 32, groups: int = 4,
                 attn_impl: str = "sdpa"):
        super().__init__()
        if heads * dim_head != channels:
            raise ValueError(f"models/attention.py: heads*dim_head = {heads * dim_head} must equal channels = {channels}")
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        # A list of depth 1, as the release holds it: its weights are named transformer_blocks.0.*
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, dim_head, attn_impl)])
        self.proj_out = nn.Conv2d(channels, channels, 1)
        # Zero-initialised output projection: the transformer starts as the identity.
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: Optional[Context] = None) -> Tuple[torch.Tensor, Context]:
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # (B, HW, C)
        t, ctx = self.transformer_blocks[0](t, context)
        t = t.transpose(1, 2).reshape(b, c, h, w)
        return self.proj_out(t) + x, ctx


def set_attn_impl(module: nn.Module, attn_impl: str) -> nn.Module:
    """Switch every CrossAttention inside `module` to "sdpa" or "explicit"; returns the module."""
    _check_impl(attn_impl)
    for m in module.modules():
        if isinstance(m, CrossAttention):
            m.attn_impl = attn_impl
    return module
