"""X-Decoder's masked-attention decoder (segmentation task) with its class-token query.

Q learnable queries (the last is the class token) attend to three pixel-decoder levels in turn, each
cross-attention restricted to the query's own predicted mask. After every layer a shared head predicts
class logits against the cached class text embeddings and mask logits against the stride-4 mask
features. The maths is written out in docs/xdecoder.md.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .language import LanguageEncoder
from .position import sine_position


def self_attn_mask_pattern(num_queries: int, context_length: int) -> torch.Tensor:
    """(1, S, S) bool, S = num_queries + context_length, True = blocked.

    Object queries (0..Q-2) see only object queries, the class query (Q-1) only itself, and the caption
    tokens that follow see everything before them (causal). Only the top-left Q x Q block is used here.
    """
    q, s = num_queries, num_queries + context_length
    mask = torch.ones(s, s, dtype=torch.bool).triu_(1)
    mask[:q - 1, q - 1:] = True
    mask[q - 1, :] = True
    mask[q - 1, q - 1] = False
    return mask[None]


class CrossAttentionLayer(nn.Module):
    """output <- LN(output + MHA(output + query_pos, memory + pos, memory, mask)). Args: dim, heads."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, output, memory, mask, pos, query_pos):
        """output (Q, B, D), memory/pos (N, B, D), mask (B*heads, Q, N) bool -> (Q, B, D)."""
        att = self.multihead_attn(output + query_pos, memory + pos, memory, attn_mask=mask, need_weights=False)[0]
        return self.norm(output + att)


class SelfAttentionLayer(nn.Module):
    """output <- LN(output + MHA(output + query_pos, output + query_pos, output, mask)). Args: dim, heads."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, output, mask, query_pos):
        """output (Q, B, D), mask (B*heads, Q, Q) bool -> (Q, B, D)."""
        q = output + query_pos
        return self.norm(output + self.self_attn(q, q, output, attn_mask=mask, need_weights=False)[0])


class FFNLayer(nn.Module):
    """output <- LN(output + W2 ReLU(W1 output)). Args: dim, hidden."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, output):
        """output (..., D) -> (..., D)."""
        return self.norm(output + self.linear2(F.relu(self.linear1(output))))


class MLP(nn.Module):
    """Linear layers with ReLU between (X-Decoder's mask_embed). Args: dims = [in, hidden..., out]."""

    def __init__(self, dims: List[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskedDecoder(nn.Module):
    """X-Decoder's predictor (`sem_seg_head.predictor`), segmentation path.

    Args:
        hidden_dim: query width (= pixel-decoder width).
        num_queries: queries including the final class-token query.
        nheads: attention heads.
        dim_feedforward: FFN width.
        dec_layers: transformer layers + 1.
        mask_dim: mask-feature channels.
        dim_proj: joint vision-language width.
        language: the language encoder (its logit_scale is used here; its text part only at conversion).
        context_length: caption length (sizes the unused captioning weights and the self-attention buffer).
        with_unused: build the captioning weights (caping_embed, pos_embed_caping), which this path never runs.
    """

    num_levels = 3

    def __init__(self, hidden_dim: int = 512, num_queries: int = 201, nheads: int = 8, dim_feedforward: int = 2048,
                 dec_layers: int = 10, mask_dim: int = 512, dim_proj: int = 512,
                 language: Optional[LanguageEncoder] = None, context_length: int = 77, with_unused: bool = True):
        super().__init__()
        self.num_heads = nheads
        self.num_queries = num_queries
        self.num_layers = dec_layers - 1
        self.class_embed = nn.Parameter(torch.empty(hidden_dim, dim_proj))
        nn.init.trunc_normal_(self.class_embed, std=0.02)
        if with_unused:
            self.caping_embed = nn.Parameter(torch.empty(hidden_dim, dim_proj))  # captioning: unused here
            nn.init.trunc_normal_(self.caping_embed, std=0.02)
        self.register_buffer("self_attn_mask", self_attn_mask_pattern(num_queries, context_length))
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads) for _ in range(self.num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads) for _ in range(self.num_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward)
                                                    for _ in range(self.num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(self.num_levels, hidden_dim)
        self.lang_encoder = language if language is not None else LanguageEncoder(dim_proj=dim_proj)
        self.mask_embed = MLP([hidden_dim, hidden_dim, hidden_dim, mask_dim])
        if with_unused:
            self.pos_embed_caping = nn.Embedding(context_length, hidden_dim)  # captioning: unused here
        # class text embeddings (C, dim_proj), unit norm; filled from the cache, never saved with the weights
        self.register_buffer("text_embeddings", torch.zeros(0, dim_proj), persistent=False)

    def head(self, output: torch.Tensor, mask_features: torch.Tensor, target_size: Tuple[int, int],
             text: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """output (Q, B, D), text (C, P) -> (class logits (B, Q, C), mask logits (B, Q, h4, w4),
        blocked (B*heads, Q, target h*w) bool, detached) for the next layer's level of size target_size."""
        d = self.decoder_norm(output).transpose(0, 1)
        objects, cls = d[:, :-1], d[:, -1:]
        n_obj = objects / (objects.norm(dim=-1, keepdim=True) + 1e-7)
        n_cls = cls / (cls.norm(dim=-1, keepdim=True) + 1e-7)
        weights = torch.softmax(n_cls @ n_obj.transpose(1, 2), dim=-1)  # (B, 1, Q-1)
        d = torch.cat([objects, weights @ objects], dim=1)
        e = d @ self.class_embed
        e = e / (e.norm(dim=-1, keepdim=True) + 1e-7)
        logits = self.lang_encoder.logit_scale.exp() * (e @ text.t())
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(d), mask_features)
        resized = F.interpolate(masks, size=target_size, mode="bicubic", align_corners=False, antialias=True)
        blocked = resized.sigmoid().flatten(2) < 0.5
        blocked = blocked[:, None].expand(-1, self.num_heads, -1, -1).flatten(0, 1).detach()
        return logits, masks, blocked

    def forward(self, multi_scale: List[torch.Tensor], mask_features: torch.Tensor,
                taps: Optional[Dict[str, list]] = None,
                text_embeddings: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """multi_scale: 3 maps (B, D, h_l, w_l) coarse to fine; mask_features (B, mask_dim, H/4, W/4) ->
        (class logits (B, Q, C), mask logits (B, Q, H/4, W/4)) of the last layer.

        text_embeddings (C, P): the classes to score (default: the ones set on the model).

        `taps`, when given, collects per layer: pred_logits, pred_masks, attn_masks, attn_mask_reset_rows,
        query_states.
        """
        text = self.text_embeddings if text_embeddings is None else text_embeddings
        if text.numel() == 0:
            raise RuntimeError("X-Decoder: no class text embeddings set (set_text_embeddings / the converted file)")
        b = mask_features.shape[0]
        src, pos, sizes = [], [], []
        for lvl, feat in enumerate(multi_scale):
            sizes.append(tuple(feat.shape[-2:]))
            pos.append(sine_position(feat, feat.shape[1] // 2).flatten(2).permute(2, 0, 1))
            src.append((feat.flatten(2) + self.level_embed.weight[lvl][None, :, None]).permute(2, 0, 1))
        query_pos = self.query_embed.weight[:, None].expand(-1, b, -1)
        output = self.query_feat.weight[:, None].expand(-1, b, -1)
        q = self.num_queries
        self_mask = self.self_attn_mask[:, :q, :q].expand(b * self.num_heads, -1, -1)
        logits, masks, blocked = self.head(output, mask_features, sizes[0], text)
        if taps is not None:
            for key in ("pred_logits", "pred_masks", "attn_masks", "attn_mask_reset_rows", "query_states"):
                taps[key] = []
            taps["pred_logits"].append(logits)
            taps["pred_masks"].append(masks)
        for i in range(self.num_layers):
            lvl = i % self.num_levels
            full = blocked.all(dim=-1, keepdim=True)
            blocked = blocked & ~full  # a fully blocked row attends everywhere instead (else its softmax is NaN)
            if taps is not None:
                taps["attn_masks"].append(blocked.reshape(b, self.num_heads, q, -1)[:, 0])
                taps["attn_mask_reset_rows"].append(
                    [torch.nonzero(r).flatten().tolist() for r in full.reshape(b, self.num_heads, q)[:, 0]])
            output = self.transformer_cross_attention_layers[i](output, src[lvl], blocked, pos[lvl], query_pos)
            output = self.transformer_self_attention_layers[i](output, self_mask, query_pos)
            output = self.transformer_ffn_layers[i](output)
            logits, masks, blocked = self.head(output, mask_features, sizes[(i + 1) % self.num_levels], text)
            if taps is not None:
                taps["query_states"].append(output.transpose(0, 1))
                taps["pred_logits"].append(logits)
                taps["pred_masks"].append(masks)
        return logits, masks
