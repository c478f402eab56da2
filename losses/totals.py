"""The student's and the teacher's total losses (docs/sage.md#losses), and the non-finite guard.

Both return (total, terms): `total` carries the graph; `terms` maps names to detached scalars for
logging, `total` included. The teacher's semantic term is added by train.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

import torch

from .contrast import FeatureExtractor
from .cosine import cosine_distill_loss
from .fusion import Terms, cal_loss, teacher_base_loss
from .weights import LossWeights


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; training must stop."""


def _detached(taps: Sequence[torch.Tensor]) -> list:
    return [t.detach() for t in taps]


@dataclass(frozen=True)
class SegmentPrior:
    """What the SAM-feature triplet (contrast) term needs: the segment images and the frozen extractor.

    vm, im: (B, K, H, W) VIS and IR segment images; extractor: SAM features (losses.contrast);
    contrast_mask: "image" (release: segment images as weights) or "binary" with vm_masks/im_masks.
    """
    vm: torch.Tensor
    im: torch.Tensor
    extractor: Optional[FeatureExtractor]
    contrast_mask: str = "image"
    vm_masks: Optional[torch.Tensor] = None
    im_masks: Optional[torch.Tensor] = None


def _cal(out: torch.Tensor, y: torch.Tensor, ir: torch.Tensor, ref: Optional[torch.Tensor],
         prior: Optional[SegmentPrior], w: LossWeights) -> Tuple[torch.Tensor, Terms]:
    if prior is None:
        return cal_loss(out, y, ir, ref, None, None, None, w)
    return cal_loss(out, y, ir, ref, prior.vm, prior.im, prior.extractor, w, prior.contrast_mask, prior.vm_masks,
                    prior.im_masks)


def student_loss(out: torch.Tensor, taps_s: Sequence[torch.Tensor], y: torch.Tensor, ir: torch.Tensor,
                 ref: Optional[torch.Tensor] = None, taps_t: Optional[Sequence[torch.Tensor]] = None,
                 prior: Optional[SegmentPrior] = None, weights: Optional[LossWeights] = None
                 ) -> Tuple[torch.Tensor, Terms]:
    """Student loss: cal(F_s, Y, IR, ref=F_t, VM, IM) + 0.3 Cos(student taps, teacher taps).

    Args:
        out: (B, 1, H, W) student output F_s; taps_s: its five maps [x1..x5] (B, 32, .., ..).
        y, ir: (B, 1, H, W) sources.
        ref: (B, 1, H, W) teacher output F_t (detached here), or None without a teacher.
        taps_t: the teacher's five taps of the same shapes as taps_s (detached here), or None.
        prior: segment images and SAM features for the triplet term (None: no triplet term possible).
        weights: LossWeights (release defaults when None).
    Returns:
        (total, terms): terms fuse, grad, contrast, cal, cos, total and the parts mse_y, mse_ir,
        mse_ref, g_src, g_ref, cr (those needing the teacher only when it is given).
    """
    w = weights or LossWeights()
    total, terms = _cal(out, y, ir, ref, prior, w)
    if taps_t is not None and w.w_cos != 0:
        cos = cosine_distill_loss(taps_s, _detached(taps_t))
        total = total + w.w_cos * cos
        terms["cos"] = cos.detach()
    terms["total"] = total.detach()
    return total, terms


def teacher_loss(out_t: torch.Tensor, taps_t: Sequence[torch.Tensor], y: torch.Tensor, ir: torch.Tensor,
                 ref_s: Optional[torch.Tensor] = None, taps_s: Optional[Sequence[torch.Tensor]] = None,
                 prior: Optional[SegmentPrior] = None, mutual: bool = False, weights: Optional[LossWeights] = None
                 ) -> Tuple[torch.Tensor, Terms]:
    """Teacher loss without the semantic term: base [+ 0.1 cal(F_t, .., ref=F_s) + 0.01 Cos(taps_t, taps_s)].

    Args:
        out_t: (B, 1, H, W) teacher output F_t; taps_t its five taps.
        y, ir: (B, 1, H, W) sources.
        ref_s, taps_s: the student's output and maps (detached here); needed when mutual.
        prior: segment images and SAM features for the triplet term inside cal (mutual only).
        mutual: add the mutual term (the release does from epoch `student_epoch` on).
        weights: LossWeights (release defaults when None).
    Returns:
        (total, terms): mse_y, mse_ir, g_src, base, total and, when mutual, the cal terms prefixed
        with "mutual_" (mutual_fuse, mutual_grad, mutual_contrast, mutual_cal, ...) and mutual_cos.
    """
    w = weights or LossWeights()
    total, terms = teacher_base_loss(out_t, y, ir, w)
    if mutual:
        if ref_s is None or taps_s is None:
            raise ValueError("losses/totals.py: teacher_loss(mutual=True) needs the student's output ref_s and taps_s")
        cal, cal_terms = _cal(out_t, y, ir, ref_s, prior, w)
        cos = cosine_distill_loss(taps_t, _detached(taps_s))
        total = total + w.mutual * cal + w.mutual_cos * cos
        terms.update({f"mutual_{k}": v for k, v in cal_terms.items()})
        terms["mutual_cos"] = cos.detach()
    terms["total"] = total.detach()
    return total, terms


def check_finite(terms: Mapping[str, torch.Tensor], step: int) -> None:
    """Raise NonFiniteLossError naming the first NaN/inf term and the step; one device sync in the good case."""
    if not terms:
        return
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
    if bool(torch.isfinite(values).all()):
        return
    for name, v in terms.items():
        if not bool(torch.isfinite(v).all()):
            raise NonFiniteLossError(
                f"step {step}: loss term '{name}' is {float(v)} - training stopped "
                "(lower the learning rate, or check the inputs and the last checkpoint)"
            )
