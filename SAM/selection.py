"""Which SAM masks are kept, and how they become segment images (docs/sage.md#sam-prior).

Cache time (`select_for_cache`): sort each modality's masks by area, largest first (ties keep SAM's
order), and keep the first n = min(cache_mask_num, #IR, #VIS) of BOTH lists, as the release does.
Use time (`segment_images`): take the first `use_mask_num` pairs (vis_k, ir_k) in which neither mask is
all-empty; the segment image is the source with pixels outside the mask set to 0. Slots left over are
filled with the whole source image and an all-ones mask (the release's fill rule).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np


def sort_by_area(masks: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Masks ordered by pixel count, largest first; equal areas keep their input order (stable)."""
    areas = np.array([int(np.count_nonzero(m)) for m in masks], dtype=np.int64)
    order = np.argsort(-areas, kind="stable")
    return [masks[i] for i in order]


def select_for_cache(ir_masks: Sequence[np.ndarray], vis_masks: Sequence[np.ndarray],
                     cache_mask_num: int = 20) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """(ir, vis): each sorted by area, both cut to n = min(cache_mask_num, #IR, #VIS). Masks as bool (H, W)."""
    n = min(int(cache_mask_num), len(ir_masks), len(vis_masks))
    ir = [np.asarray(m, dtype=bool) for m in sort_by_area(ir_masks)[:n]]
    vis = [np.asarray(m, dtype=bool) for m in sort_by_area(vis_masks)[:n]]
    return ir, vis


def usable_pairs(ir_masks: Sequence[np.ndarray], vis_masks: Sequence[np.ndarray], use_mask_num: int
                 ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The first `use_mask_num` pairs (vis_k, ir_k) in which both masks have at least one pixel."""
    out: List[Tuple[np.ndarray, np.ndarray]] = []
    for vis, ir in zip(vis_masks, ir_masks):
        if len(out) == use_mask_num:
            break
        if vis.any() and ir.any():
            out.append((vis, ir))
    return out


def segment_images(ir: np.ndarray, y: np.ndarray, ir_masks: Sequence[np.ndarray],
                   vis_masks: Sequence[np.ndarray], use_mask_num: int = 4
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segment images of one image pair.

    Args:
        ir, y: (H, W) float sources (IR gray, VIS luminance Y), values in [0, 1].
        ir_masks, vis_masks: cached masks (bool (H, W)), already sorted and cut (select_for_cache).
        use_mask_num: K, the number of slots.
    Returns:
        vm, im, vm_mask, im_mask: float32 (K, H, W); vm = y * mask, im = ir * mask, masks 0/1.
        Slots without a usable pair hold the whole source and an all-ones mask.
    """
    h, w = ir.shape
    if y.shape != (h, w):
        raise ValueError(f"IR is {w}x{h} but Y is {y.shape[1]}x{y.shape[0]}")
    k = int(use_mask_num)
    vm_mask = np.ones((k, h, w), np.float32)
    im_mask = np.ones((k, h, w), np.float32)
    for i, (vis, irm) in enumerate(usable_pairs(ir_masks, vis_masks, k)):
        if vis.shape != (h, w) or irm.shape != (h, w):
            raise ValueError(f"cached mask is {vis.shape[1]}x{vis.shape[0]} but the image is {w}x{h}")
        vm_mask[i] = vis
        im_mask[i] = irm
    vm = y.astype(np.float32)[None] * vm_mask
    im = ir.astype(np.float32)[None] * im_mask
    return vm, im, vm_mask, im_mask
