"""The fusion losses of docs/sage.md#losses: the release's Losses.cal and the teacher's base loss.

Each returns (total, terms): `total` carries the graph, `terms` maps names to detached scalars for
logging.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .contrast import FeatureExtractor, contrast_parts
from .gradient import gradient_loss
from .weights import LossWeights

Terms = Dict[str, torch.Tensor]


def cal_loss(
    out: torch.Tensor,
    y: torch.Tensor,
    ir: torch.Tensor,
    ref: Optional[torch.Tensor],
    vm: Optional[torch.Tensor] = None,
    im: Optional[torch.Tensor] = None,
    extractor: Optional[FeatureExtractor] = None,
    weights: Optional[LossWeights] = None,
    contrast_mask: str = "image",
    vm_masks: Optional[torch.Tensor] = None,
    im_masks: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Terms]:
    """Losses.cal(out, Y, IR, ref, VM, IM) of the release: w_fuse fuse + w_grad grad + w_contrast contrast.

    fuse = 3 MSE(out,Y) + 2 MSE(out,IR) + 4 MSE(out,ref); grad = 9 G(out;Y,IR) + 3 G(out;ref,ref);
    contrast = CR(out,Y,IR,ref,VM,IM) / 3000 (default weights, see LossWeights).

    Args:
        out: (B, 1, H, W) the output being trained.
        y, ir: (B, 1, H, W) sources.
        ref: (B, 1, H, W) the other network's output, detached here; None (no teacher, e.g.
            train.student_only) drops every term that needs it: MSE(out,ref), G(out;ref,ref) and CR.
        vm, im: (B, K, H, W) segment images, needed for CR.
        extractor: the SAM feature extractor for CR (losses/contrast.py); required unless
            weights.w_contrast == 0 or ref is None.
        weights: LossWeights (defaults: the release's).
        contrast_mask, vm_masks, im_masks: see losses.contrast.contrast_loss.
    Returns:
        (total scalar, terms) with terms mse_y, mse_ir, g_src, fuse, grad, cal and, with ref,
        mse_ref, g_ref, cr (= cr_vis + cr_ir, the release's DH3 + DH4), contrast.
    """
    w = weights or LossWeights()
    terms: Terms = {"mse_y": F.mse_loss(out, y), "mse_ir": F.mse_loss(out, ir), "g_src": gradient_loss(out, y, ir)}
    fuse = w.fuse_y * terms["mse_y"] + w.fuse_ir * terms["mse_ir"]
    grad = w.grad_src * terms["g_src"]
    total_extra = out.new_zeros(())
    if ref is not None:
        ref = ref.detach()
        terms["mse_ref"] = F.mse_loss(out, ref)
        terms["g_ref"] = gradient_loss(out, ref, ref)
        fuse = fuse + w.fuse_ref * terms["mse_ref"]
        grad = grad + w.grad_ref * terms["g_ref"]
        if w.w_contrast != 0:
            if extractor is None or vm is None or im is None:
                raise ValueError("losses/fusion.py: the triplet loss needs vm, im and a feature extractor "
                                 "(SAM.features.build_sam_feature_extractor); set loss.w_contrast: 0 to drop it")
            terms["cr_vis"], terms["cr_ir"] = contrast_parts(out, y, ir, ref, vm, im, extractor, contrast_mask,
                                                             vm_masks, im_masks)
            terms["cr"] = terms["cr_vis"] + terms["cr_ir"]
            terms["contrast"] = terms["cr"] / w.contrast_div
            total_extra = w.w_contrast * terms["contrast"]
    terms["fuse"], terms["grad"] = fuse, grad
    total = w.w_fuse * fuse + w.w_grad * grad + total_extra
    terms["cal"] = total
    return total, {k: v.detach() for k, v in terms.items()}


def teacher_base_loss(out: torch.Tensor, y: torch.Tensor, ir: torch.Tensor, weights: Optional[LossWeights] = None
                      ) -> Tuple[torch.Tensor, Terms]:
    """MSE(F_t,Y) + MSE(F_t,IR) + 2 G(F_t;Y,IR) (default weights). All (B, 1, H, W).

    Returns (total scalar, terms mse_y, mse_ir, g_src, base).
    """
    w = weights or LossWeights()
    terms: Terms = {"mse_y": F.mse_loss(out, y), "mse_ir": F.mse_loss(out, ir), "g_src": gradient_loss(out, y, ir)}
    total = w.teacher_y * terms["mse_y"] + w.teacher_ir * terms["mse_ir"] + w.teacher_grad * terms["g_src"]
    terms["base"] = total
    return total, {k: v.detach() for k, v in terms.items()}
