"""SGAFusion's three training stages as plain loss functions (docs/sgafusion.md, "Training").

Each takes the networks, one batch (a dict of tensors on the networks' device) and the loss settings,
and returns (loss, terms) where terms are detached scalars for logging. The training loop owns the
optimiser, AMP (autocast + GradScaler), clipping (training/sgafusion_schedule.clip_gradients) and the
learning-rate schedule.

- stage 1 (`stage1_step`): the cue encoder's head and LoRA learn the degradation class of a degraded
  visible image (cross-entropy). Batch: image (B, 3, H, W) in [0, 1], label (B,) int64.
- stage 2 (`stage2_step`): joint segmentation + fusion on clean pairs. Batch: vi (B, 3, H, W),
  ir (B, 1, H, W), label (B, H, W) int64 (ignore_index for unlabelled pixels), optional vi_gt
  (default: vi, as in the release). Loss = seg_weight * CE + fusion loss.
- stage 3 (`stage3_step`): fusion fine-tune on degraded/clean pairs. Batch: vi (degraded), vi_gt
  (clean), ir. Loss = fusion loss against the clean visible image.

In stages 2 and 3 the cue comes from the (possibly degraded) visible input through the frozen cue
encoder, without gradients, exactly as at test time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

import torch

from losses.sgafusion import FusionLossWeights, cue_classification_loss, fusion_loss, segmentation_loss
from models.sgafusion.cue import ClipCueEncoder, Cue
from models.sgafusion.network import SGAFusionNet

Terms = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class LossSettings:
    """Loss weights of stages 2 and 3 (the release's values by default)."""
    fusion: FusionLossWeights = field(default_factory=FusionLossWeights)
    seg_weight: float = 1.0
    ignore_index: int = -100


def _need(batch: Mapping[str, torch.Tensor], *keys: str) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"training/sgafusion_steps.py: batch lacks {missing} (has {sorted(batch)})")


def frozen_cue(cue_encoder: ClipCueEncoder, vi: torch.Tensor) -> Cue:
    """The cue of visible images (B, 3, H, W) from the encoder in eval mode, without gradients."""
    was_training = cue_encoder.training
    cue_encoder.eval()
    with torch.no_grad():
        cue = cue_encoder(vi)
    cue_encoder.train(was_training)
    return cue


def stage1_step(cue_encoder: ClipCueEncoder, batch: Mapping[str, torch.Tensor]) -> Tuple[torch.Tensor, Terms]:
    """Degradation classification: CE(logits, label); terms: ce, accuracy."""
    _need(batch, "image", "label")
    out = cue_encoder(batch["image"])
    loss = cue_classification_loss(out.logits, batch["label"])
    accuracy = (out.logits.argmax(dim=1) == batch["label"]).float().mean()
    return loss, {"ce": loss.detach(), "accuracy": accuracy.detach()}


def _fuse(net: SGAFusionNet, cue_encoder: ClipCueEncoder, batch: Mapping[str, torch.Tensor]):
    cue = frozen_cue(cue_encoder, batch["vi"])
    tokens = cue.tokens if net.uses_tokens else None
    return net(batch["vi"], batch["ir"], cue.feature, tokens)


def _fusion_terms(settings: LossSettings, batch, fused) -> Tuple[torch.Tensor, Terms]:
    gt = batch.get("vi_gt", batch["vi"])
    total, terms = fusion_loss(gt, batch["ir"], fused, settings.fusion)
    return total, {k: v.detach() for k, v in terms.items()}


def stage2_step(net: SGAFusionNet, cue_encoder: ClipCueEncoder, batch: Mapping[str, torch.Tensor],
                settings: LossSettings = LossSettings()) -> Tuple[torch.Tensor, Terms]:
    """Joint segmentation + fusion; terms: ce, fusion, L_max, L_color, L_grad[, ...]."""
    _need(batch, "vi", "ir", "label")
    seg, fused = _fuse(net, cue_encoder, batch)
    fusion, terms = _fusion_terms(settings, batch, fused)
    ce = segmentation_loss(seg, batch["label"], settings.ignore_index)
    loss = settings.seg_weight * ce + fusion
    return loss, {"ce": ce.detach(), "fusion": fusion.detach(), **terms}


def stage3_step(net: SGAFusionNet, cue_encoder: ClipCueEncoder, batch: Mapping[str, torch.Tensor],
                settings: LossSettings = LossSettings()) -> Tuple[torch.Tensor, Terms]:
    """Fusion fine-tune on degraded input vs clean target; terms: fusion, L_max, L_color, L_grad[, ...]."""
    _need(batch, "vi", "vi_gt", "ir")
    _, fused = _fuse(net, cue_encoder, batch)
    fusion, terms = _fusion_terms(settings, batch, fused)
    return fusion, {"fusion": fusion.detach(), **terms}
