"""LoRA adapters on the CLIP image tower that really train (peft; docs/sgafusion.md, "LoRA").

Targets in every residual block `transformer.resblocks.<i>`: the whole `attn` module (an
nn.MultiheadAttention: peft's MultiheadAttention layer adapts its packed q/k/v projection and its
`out_proj`, merging the deltas into the weights the functional attention call actually uses) and the
MLP's `mlp.c_fc` and `mlp.c_proj` (plain nn.Linear). Targeting `attn.out_proj` alone would leave it
untrained: nn.MultiheadAttention reads `out_proj.weight` directly and never calls the module.

peft initialises B to zero (A Kaiming-uniform), so at the start the adapted tower computes exactly
the pretrained one. Every base weight is frozen; only the LoRA tensors require gradients.
"""
from __future__ import annotations

from typing import Iterable, List, Tuple

import torch
import torch.nn as nn

LORA_TARGETS = ("attn", "mlp.c_fc", "mlp.c_proj")


class LoRAError(ValueError):
    """A LoRA configuration that cannot be applied."""


def target_pattern(targets: Iterable[str] = LORA_TARGETS) -> str:
    """A full-match regex for peft over module names `transformer.resblocks.<i>.<target>`."""
    alternatives = "|".join(t.replace(".", r"\.") for t in targets)
    return rf"(.*\.)?transformer\.resblocks\.\d+\.({alternatives})"


def add_lora(visual: nn.Module, r: int = 4, alpha: float = 1.0, dropout: float = 0.0,
             targets: Iterable[str] = LORA_TARGETS) -> nn.Module:
    """Freeze `visual` and inject LoRA (rank r, scale alpha / r) in place; returns the same module.

    Raises LoRAError when no module matches `targets`.
    """
    import peft

    targets = tuple(targets)
    if r <= 0:
        raise LoRAError(f"models/sgafusion/lora.py: LoRA rank must be positive, got {r}")
    for p in visual.parameters():
        p.requires_grad_(False)
    config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_pattern(targets),
                             init_lora_weights=True, bias="none")
    try:
        peft.inject_adapter_in_model(config, visual)
    except ValueError as exc:
        raise LoRAError(f"models/sgafusion/lora.py: no CLIP module matches LoRA targets {targets} ({exc})") from None
    if not lora_parameters(visual):
        raise LoRAError(f"models/sgafusion/lora.py: no CLIP module matches LoRA targets {targets}")
    return visual


def is_lora_name(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name or name.startswith(("lora_A.", "lora_B."))


def lora_parameters(module: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """(name, parameter) of every LoRA tensor in `module`."""
    return [(n, p) for n, p in module.named_parameters() if is_lora_name(n)]


def base_parameters(module: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """(name, parameter) of every non-LoRA tensor in `module`."""
    return [(n, p) for n, p in module.named_parameters() if not is_lora_name(n)]


def lora_state_dict(module: nn.Module) -> dict:
    """Only the LoRA tensors of `module`'s state_dict (detached, on the CPU)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items() if is_lora_name(k)}


def has_lora(module: nn.Module) -> bool:
    return any(is_lora_name(n) for n, _ in module.named_parameters())


@torch.no_grad()
def lora_delta_norm(module: nn.Module) -> float:
    """Sum over adapters of ||B A||: 0 at initialisation, > 0 once training has moved the adapters."""
    total = 0.0
    names = dict(module.named_parameters())
    for name, b in names.items():
        if ".lora_B." in name:
            a = names[name.replace(".lora_B.", ".lora_A.")]
            total += float((b @ a).norm())
    return total
