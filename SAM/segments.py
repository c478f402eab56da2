"""Segment images for training, read from the segment cache (the `segments=` callable of FusionTrainSet)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from .model import checkpoint_id
from .selection import segment_images
from .settings import diff_settings, is_random_checkpoint, recorded_settings, resolve_settings
from .store import CacheError, CacheMismatchError, CacheMissingError, MANIFEST, read_entry, read_manifest

log = logging.getLogger(__name__)


class SegmentProvider:
    """(name, ir, y) -> (vm, im, vm_mask, im_mask), each float32 (K, H, W), K = use_mask_num.

    vm = y * mask (VIS segment images on the luminance), im = ir * mask, masks 0/1; slots without a
    usable mask hold the whole source and an all-ones mask (the release's fill rule, SAM/selection.py).

    Args:
        cache_dir: the Mask_cache folder (manifest.json + one .npz per image).
        use_mask_num: K.
        expected_settings: the `sam` settings the caller trains with (partial mapping, see
            SAM/settings.py); a cache recorded with other generator settings raises CacheMismatchError.
            None = accept the cache's own settings.
        allow_fill_missing: an image missing from the cache (or a cache made with other settings, or
            no cache at all) gets whole-image slots, with a warning, instead of an error. Stale masks
            are never used.
        expected_checkpoint: the SAM checkpoint path (or "none" for random weights) whose masks are
            wanted; checked against the cache's recorded hash. None = not checked.
    """

    def __init__(self, cache_dir: str | os.PathLike, use_mask_num: int = 4,
                 expected_settings: Optional[Mapping[str, Any]] = None, allow_fill_missing: bool = False,
                 expected_checkpoint: Optional[str] = None):
        self.cache_dir = Path(cache_dir)
        self.use_mask_num = int(use_mask_num)
        self.allow_fill_missing = bool(allow_fill_missing)
        self.digest: Optional[str] = None  # None -> every image gets whole-image slots
        self._warned = False
        try:
            manifest = read_manifest(self.cache_dir)
            if manifest is None:
                raise CacheMissingError(f"{self.cache_dir / MANIFEST}: no segment cache here; build it with "
                                        f"scripts/build_mask_cache.py --root_dir {self.cache_dir.parent}")
            if expected_settings is not None:
                s = resolve_settings(expected_settings)
                diff = diff_settings(manifest.settings, recorded_settings(s))
                if diff:
                    what = ", ".join(f"{k}: cache {a!r} vs config {b!r}" for k, (a, b) in diff.items())
                    raise CacheMismatchError(f"{self.cache_dir}: segment cache made with other SAM settings ({what}); "
                                             "rebuild it with scripts/build_mask_cache.py --rebuild or change the config")
                seed = s["seed"]
            else:
                seed = 0
            if expected_checkpoint is not None:
                ckpt = None if is_random_checkpoint(expected_checkpoint) else expected_checkpoint
                cid = checkpoint_id(ckpt, seed)
                if cid != manifest.checkpoint:
                    raise CacheMismatchError(f"{self.cache_dir}: segment cache made with other SAM weights "
                                             f"({manifest.checkpoint}, expected {cid}); rebuild it")
            self.digest = manifest.digest
        except CacheError as exc:
            if not self.allow_fill_missing:
                raise
            log.warning("%s -> every image gets whole-image segment slots (sam.allow_fill_missing)", exc)

    def masks(self, name: str) -> Tuple[list, list]:
        """(ir_masks, vis_masks) of one image; ([], []) for a missing image when filling is allowed."""
        if self.digest is None:
            return [], []
        try:
            entry = read_entry(self.cache_dir, name, digest=self.digest)
        except CacheMissingError:
            if not self.allow_fill_missing:
                raise
            if not self._warned:
                log.warning("%s: image '%s' (and maybe others) not in the segment cache; whole-image slots used "
                            "(sam.allow_fill_missing)", self.cache_dir, name)
                self._warned = True
            return [], []
        return entry.ir_masks, entry.vis_masks

    def __call__(self, name: str, ir: np.ndarray, y: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ir, y: (H, W) float32 in [0, 1] -> (vm, im, vm_mask, im_mask), float32 (K, H, W)."""
        ir_masks, vis_masks = self.masks(name)
        if ir_masks and ir_masks[0].shape != ir.shape:
            raise CacheMismatchError(f"{self.cache_dir}/{name}.npz: masks are {ir_masks[0].shape[1]}x{ir_masks[0].shape[0]} "
                                     f"but the image is {ir.shape[1]}x{ir.shape[0]} (cache made from other images); rebuild it")
        return segment_images(ir, y, ir_masks, vis_masks, self.use_mask_num)
