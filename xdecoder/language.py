"""X-Decoder's language encoder: a CLIP-style causal text transformer and its projection.

It turns tokenised prompts into unit-norm embeddings in the joint vision-language space. Only the class
embeddings are needed on the image path, and they are computed once (docs/xdecoder.md: conversion caches
them), so nothing here runs during training.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm with eps 1e-12, computed in float32."""

    def __init__(self, dim: int):
        super().__init__(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).to(x.dtype)


class TextBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)) with the causal mask, then x + MLP(ln_2(x)) (QuickGELU).

    Args:
        width: token width.
        heads: attention heads.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNorm32(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = LayerNorm32(width)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """x (T, N, width), causal (T, T) additive -> (T, N, width)."""
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, attn_mask=causal, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    """Token + position embedding, causal pre-LN blocks, final LayerNorm.

    Args:
        vocab_size: BPE vocabulary size.
        context_length: tokens per prompt.
        width: token width.
        heads: attention heads.
        layers: blocks.
    """

    def __init__(self, vocab_size: int = 49408, context_length: int = 77, width: int = 512, heads: int = 8,
                 layers: int = 12):
        super().__init__()
        self.context_length = context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        nn.init.normal_(self.positional_embedding, std=0.01)
        self.resblocks = nn.ModuleList(TextBlock(width, heads) for _ in range(layers))
        self.ln_final = LayerNorm32(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (N, T) int64 -> (N, T, width) hidden states after ln_final."""
        t = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:t]
        causal = torch.full((t, t), float("-inf"), device=ids.device, dtype=x.dtype).triu_(1)
        x = x.permute(1, 0, 2)
        for block in self.resblocks:
            x = block(x, causal)
        return self.ln_final(x.permute(1, 0, 2))


class LanguageEncoder(nn.Module):
    """Text transformer, projection `lang_proj` (width x dim_proj) and the similarity scale `logit_scale`.

    Args:
        vocab_size, context_length, width, heads, layers: the text transformer's sizes.
        dim_proj: joint vision-language width.
        with_text: build the text transformer and lang_proj (False: only logit_scale, for a model whose
            class embeddings are cached).
    """

    def __init__(self, vocab_size: int = 49408, context_length: int = 77, width: int = 512, heads: int = 8,
                 layers: int = 12, dim_proj: int = 512, with_text: bool = True):
        super().__init__()
        if with_text:
            self.lang_encoder = TextTransformer(vocab_size, context_length, width, heads, layers)
            self.lang_proj = nn.Parameter(torch.empty(width, dim_proj))
            nn.init.trunc_normal_(self.lang_proj, std=0.02)
        self.logit_scale = nn.Parameter(torch.ones([]))

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (N, T) -> (N, dim_proj): the hidden state at the first end-of-text token (argmax id), projected,
        divided by (norm + 1e-7)."""
        x = self.lang_encoder(ids)
        x = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)] @ self.lang_proj
        return x / (x.norm(dim=-1, keepdim=True) + 1e-7)

    @torch.no_grad()
    def class_embeddings(self, ids: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (C, K, T) for C classes x K templates -> (per-prompt (C, K, P), per-class (C, P)).

        A class embedding is the mean of its K prompt embeddings divided by its norm.
        """
        c, k, t = ids.shape
        if not hasattr(self, "lang_encoder"):
            raise RuntimeError("this language encoder was built without its text transformer (cached embeddings only)")
        # the causal mask makes tokens after the first end token irrelevant to the pooled state: trim them
        t = int(ids.argmax(dim=-1).max()) + 1
        flat = ids[..., :t].reshape(c * k, t)
        prompt = torch.cat([self.encode(flat[i:i + chunk]) for i in range(0, c * k, chunk)]).reshape(c, k, -1)
        mean = prompt.mean(dim=1)
        return prompt, mean / mean.norm(dim=-1, keepdim=True)
