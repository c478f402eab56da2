"""The teacher's semantic term (docs/sage.md#semantic-term): cross-entropy of a frozen judge on the colourised fusion.

F (B,1,H,W) is colourised with the batch's Cr/Cb, clamped to [0, 1], resized to the judge's resolution
and normalised its way; the judge's logits over the label classes are bilinear-resized back to the label
size and scored with cross-entropy against integer labels. Ignored pixels: the ignore index, the classes
in `ignore_classes` (FMB background by default) and classes the judge cannot predict (no source class).
The loss is returned unweighted; train.py multiplies it by semantic.weight (0.3).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.colour import colourise

from .classes import check_label_range
from .judge import SegmenterJudge


def masked_cross_entropy(logits: torch.Tensor, label: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not `ignore_index`; 0 (with a graph) when there are none.

    logits (B, T, H, W), label (B, H, W) int64.
    """
    total = F.cross_entropy(logits.float(), label, ignore_index=ignore_index, reduction="sum")
    count = (label != ignore_index).sum().clamp_min(1)
    return total / count


def judged_cross_entropy(logits_of: Callable[[torch.Tensor], torch.Tensor],
                         targets_of: Callable[[torch.Tensor], torch.Tensor], fused_y: torch.Tensor,
                         crcb: torch.Tensor, label: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """The semantic term of any judge: check shapes, colourise, judge, resize logits to the label, masked CE.

    fused_y (B,1,H,W), crcb (B,2,H,W) = (Cr, Cb) in [0,1], label (B,h,w) int64 -> scalar loss.
    `logits_of`: rgb (B,3,H,W) in [0,1] -> (B,T,h',w') logits; `targets_of`: label -> the (B,h,w) int64
    targets to score (ignored pixels set to `ignore_index`).
    """
    if fused_y.dim() != 4 or fused_y.shape[1] != 1:
        raise ValueError(f"semantic loss: fused_y must be (B, 1, H, W), got {tuple(fused_y.shape)}")
    if crcb.shape != (fused_y.shape[0], 2, *fused_y.shape[2:]):
        raise ValueError(f"semantic loss: crcb must be (B, 2, H, W) = {(fused_y.shape[0], 2, *fused_y.shape[2:])},"
                         f" got {tuple(crcb.shape)}")
    if label.dim() != 3 or label.shape[0] != fused_y.shape[0]:
        raise ValueError(f"semantic loss: label must be (B, H, W) with B={fused_y.shape[0]}, got {tuple(label.shape)}")
    logits = F.interpolate(logits_of(colourise(fused_y, crcb)), size=label.shape[-2:], mode="bilinear",
                           align_corners=False)
    return masked_cross_entropy(logits, targets_of(label), ignore_index)


def labels_for_loss(label: torch.Tensor, num_classes: int, ignore_index: int, ignored: Sequence[int]) -> torch.Tensor:
    """Check the label values and send the ignored classes to `ignore_index`. (B, H, W) int64 -> same."""
    check_label_range(label, num_classes, ignore_index, "semantic loss",
                      "check semantic.class_names / num_classes for this dataset")
    if not ignored:
        return label
    drop = torch.isin(label, torch.tensor(list(ignored), device=label.device, dtype=label.dtype))
    return label.masked_fill(drop, ignore_index)


class SemanticLoss(nn.Module):
    """Unweighted semantic cross-entropy through a frozen judge.

    The judge is held outside the module's registry: `.parameters()` and `.state_dict()` are empty, so
    neither an optimiser nor a checkpoint of the caller ever sees its weights; `.to()` still moves it and
    `.train()` leaves it in eval mode.

    Args:
        judge: the frozen segmenter mapped onto the label classes.
        ignore_index: label value that is never scored.
        ignore_classes: label classes scored as ignored (FMB background by default in the builder).
    """

    def __init__(self, judge: SegmenterJudge, ignore_index: int = 255, ignore_classes: Sequence[int] = ()):
        super().__init__()
        self.__dict__["judge"] = judge  # not a submodule on purpose (see the class docstring)
        self.ignore_index = int(ignore_index)
        self.num_classes = judge.num_classes
        self.ignored = sorted(set(int(k) for k in ignore_classes) | set(judge.mapping.unmapped_targets))

    def forward(self, fused_y: torch.Tensor, crcb: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """fused_y (B,1,H,W), crcb (B,2,H,W) = (Cr, Cb) in [0,1], label (B,h,w) int64 -> scalar loss."""
        return judged_cross_entropy(
            self.judge.logits, lambda label: labels_for_loss(label.long(), self.num_classes, self.ignore_index,
                                                             self.ignored),
            fused_y, crcb, label, self.ignore_index)

    def train(self, mode: bool = True) -> "SemanticLoss":
        super().train(mode)
        self.judge.model.eval()  # the judge is frozen: dropout off, BatchNorm statistics fixed
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.judge.model._apply(fn)
        return self

    def extra_repr(self) -> str:
        m = self.judge.mapping
        return (f"judge={type(self.judge.model).__name__}({m.num_source} classes -> {m.num_target}), "
                f"input_size={self.judge.input_size}, ignore_index={self.ignore_index}, ignored={self.ignored}")
