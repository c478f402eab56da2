"""LoRA adapters on the CLIP image tower that really train (docs/sgafusion.md, "LoRA").

In every residual block `transformer.resblocks.<i>` the adapters wrap:

- `attn` (an nn.MultiheadAttention) as a whole: `LoRAMultiheadAttention` adds low-rank deltas to the
  packed q/k/v projection and to `out_proj` and runs the functional attention with the summed
  weights. Wrapping `attn.out_proj` alone would never run: nn.MultiheadAttention reads
  `out_proj.weight` directly and never calls the submodule (the release's LoRA, and a peft config
  targeting `out_proj`, fall into this);
- `mlp.c_fc` and `mlp.c_proj` (nn.Linear): `LoRALinear`, y = W x + b + (alpha / r) B A x.

A is Kaiming-uniform and B is zero, so at the start the adapted tower computes exactly the pretrained
one. The base weights are frozen and never written (peft's MultiheadAttention layer merges the deltas
into the frozen weights in place and subtracts them again, which leaves round-off drift in them).
"""
from __future__ import annotations

import math
from typing import Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

LORA_TARGETS = ("attn", "mlp.c_fc", "mlp.c_proj")


class LoRAError(ValueError):
    """A LoRA configuration that cannot be applied."""


def _pair(out_features: int, in_features: int, r: int) -> Tuple[nn.Parameter, nn.Parameter]:
    a = torch.empty(r, in_features)
    nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    return nn.Parameter(a), nn.Parameter(torch.zeros(out_features, r))


class LoRALinear(nn.Module):
    """base(x) + (alpha / r) * B (A dropout(x)); `base` is frozen."""

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 1.0, dropout: float = 0.0):
        """base: the pretrained layer; r: rank; alpha: scale numerator; dropout: on the adapter's input."""
        super().__init__()
        self.base = base
        self.lora_A, self.lora_B = _pair(base.out_features, base.in_features, r)
        self.scale = alpha / r
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    @property
    def weight(self) -> torch.Tensor:  # open_clip asks the MLP's c_fc for its dtype through .weight
        return self.base.weight

    @property
    def bias(self) -> Optional[torch.Tensor]:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out)."""
        delta = F.linear(F.linear(self.dropout(x), self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype))
        return self.base(x) + self.scale * delta


class LoRAMultiheadAttention(nn.Module):
    """nn.MultiheadAttention with W_qkv + s B_in A_in and W_out + s B_out A_out; `base` is frozen."""

    def __init__(self, base: nn.MultiheadAttention, r: int = 4, alpha: float = 1.0):
        """base: the pretrained attention (packed q/k/v weights); r: rank; alpha: scale numerator."""
        super().__init__()
        if not base._qkv_same_embed_dim or base.in_proj_weight is None:
            raise LoRAError("models/sgafusion/lora.py: LoRA on attention needs packed q/k/v weights (kdim = vdim = embed_dim)")
        self.base = base
        e = base.embed_dim
        self.in_lora_A, self.in_lora_B = _pair(3 * e, e, r)
        self.out_lora_A, self.out_lora_B = _pair(e, e, r)
        self.scale = alpha / r

    @property
    def batch_first(self) -> bool:
        return self.base.batch_first

    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    @property
    def num_heads(self) -> int:
        return self.base.num_heads

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None, need_weights: bool = True,
                attn_mask: Optional[torch.Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Same call and result shapes as nn.MultiheadAttention.forward."""
        b = self.base
        w_in = b.in_proj_weight + self.scale * (self.in_lora_B @ self.in_lora_A)
        w_out = b.out_proj.weight + self.scale * (self.out_lora_B @ self.out_lora_A)
        if b.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        out, weights = F.multi_head_attention_forward(
            query, key, value, b.embed_dim, b.num_heads, w_in.to(query.dtype), b.in_proj_bias,
            b.bias_k, b.bias_v, b.add_zero_attn, b.dropout, w_out.to(query.dtype), b.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)
        if b.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def _wrap(module: nn.Module, r: int, alpha: float, dropout: float) -> nn.Module:
    if isinstance(module, nn.MultiheadAttention):
        return LoRAMultiheadAttention(module, r, alpha)
    if isinstance(module, nn.Linear):
        return LoRALinear(module, r, alpha, dropout)
    raise LoRAError(f"models/sgafusion/lora.py: cannot put LoRA on a {type(module).__name__}")


def add_lora(visual: nn.Module, r: int = 4, alpha: float = 1.0, dropout: float = 0.0,
             targets: Iterable[str] = LORA_TARGETS) -> nn.Module:
    """Freeze `visual` and replace each `transformer.resblocks.<i>.<target>` by its LoRA wrapper, in place.

    Raises LoRAError for a rank < 1, an `out_proj` target (see above) or targets that match nothing.
    """
    targets = tuple(targets)
    trapped = [t for t in targets if t.endswith("out_proj")]
    if trapped:
        raise LoRAError(f"models/sgafusion/lora.py: LoRA target {trapped[0]!r} would never run (nn.MultiheadAttention "
                        "uses out_proj.weight without calling the module); target 'attn' instead")
    if r < 1:
        raise LoRAError(f"models/sgafusion/lora.py: LoRA rank must be at least 1, got {r}")
    for p in visual.parameters():
        p.requires_grad_(False)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise LoRAError("models/sgafusion/lora.py: the CLIP tower has no transformer.resblocks (not a ViT?)")
    count = 0
    for block in blocks:
        for target in targets:
            *path, leaf = target.split(".")
            parent = block
            for part in path:
                parent = getattr(parent, part, None)
            if parent is None or not isinstance(getattr(parent, leaf, None), nn.Module):
                continue
            setattr(parent, leaf, _wrap(getattr(parent, leaf), r, alpha, dropout))
            count += 1
    if count == 0:
        raise LoRAError(f"models/sgafusion/lora.py: no CLIP module matches LoRA targets {targets}")
    return visual


def is_lora_name(name: str) -> bool:
    """True for the parameter / state_dict names of LoRA tensors."""
    return "lora_" in name.rsplit(".", 1)[-1]


def lora_parameters(module: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """(name, parameter) of every LoRA tensor in `module`."""
    return [(n, p) for n, p in module.named_parameters() if is_lora_name(n)]


def base_parameters(module: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """(name, parameter) of every non-LoRA tensor in `module`."""
    return [(n, p) for n, p in module.named_parameters() if not is_lora_name(n)]


def has_lora(module: nn.Module) -> bool:
    return any(is_lora_name(n) for n, _ in module.named_parameters())


@torch.no_grad()
def lora_delta_norm(module: nn.Module) -> float:
    """Sum over adapters of ||B A||: 0 at initialisation, > 0 once training has moved the adapters."""
    total = 0.0
    for m in module.modules():
        if isinstance(m, LoRALinear):
            total += float((m.lora_B @ m.lora_A).norm())
        elif isinstance(m, LoRAMultiheadAttention):
            total += float((m.in_lora_B @ m.in_lora_A).norm()) + float((m.out_lora_B @ m.out_lora_A).norm())
    return total
