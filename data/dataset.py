"""The training dataset of docs/sage.md#data-and-schedule: root/{Ir, Vis, Label} (+ the segment cache).

Each item is a dict of float32 tensors cropped to `crop_size` (H, W):
    ir (1,H,W), y (1,H,W), crcb (2,H,W), label (H,W) int64, and, with segments,
    vm (K,H,W), im (K,H,W) segment images (and vm_mask, im_mask (K,H,W) binary masks).
Randomness (crop position, flip) is drawn from a generator seeded by (seed, epoch, index), so an epoch
is reproducible and a resumed run sees exactly the crops an uninterrupted one would.

Crops (`crop`, config data.crop): "label_box" (default) draws the crop inside the bounding box of the
label's non-zero pixels, grown to the crop size, which is what the release's code intends; "uniform" is
what the release does in effect: its box test runs on labels already scaled to k/255, finds no pixel,
and every crop is a plain uniform random crop (docs/release_differences.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .imageio import ImageReadError, read_index_map, read_ir, read_vis
from .pairs import IR_DIR_NAMES, VIS_DIR_NAMES, PairingError, find_subdir, list_images, pair_folders
from .seeded import EpochSeededSet

LABEL_DIR_NAMES = ("Label", "label", "Labels", "labels")
CROP_MODES = ("label_box", "uniform")


def uniform_crop(shape: Tuple[int, int], crop: Tuple[int, int], rng: np.random.Generator) -> Tuple[int, int]:
    """Top-left corner of a crop drawn uniformly over every position inside an image of `shape` (H, W)."""
    (h, w), (ch, cw) = shape, crop
    return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))


def label_bbox_crop(label: np.ndarray, crop: Tuple[int, int], rng: np.random.Generator) -> Tuple[int, int]:
    """Top-left corner of a random crop inside the bounding box of the label's non-zero pixels.

    The box is grown (about its centre, kept inside the image) to at least the crop size; with no
    labelled pixel this is a plain random crop over the whole image.
    """
    h, w = label.shape
    ch, cw = crop
    ys, xs = np.nonzero(label)
    if ys.size == 0:
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1

    def grow(lo: int, hi: int, size: int, limit: int) -> Tuple[int, int]:
        if hi - lo >= size:
            return lo, hi
        extra = size - (hi - lo)
        lo = max(0, lo - extra // 2)
        hi = min(limit, lo + size)
        return hi - size, hi

    y0, y1 = grow(y0, y1, ch, h)
    x0, x1 = grow(x0, x1, cw, w)
    top = int(rng.integers(y0, y1 - ch + 1))
    left = int(rng.integers(x0, x1 - cw + 1))
    return top, left


def labelled_pairs(root: str | Path, require_labels: bool = True, label_hint: Optional[str] = None
                   ) -> Tuple[Optional[Path], List[Tuple[str, Path, Path, Optional[Path]]]]:
    """(label folder or None, [(name, ir, vis, label or None)]) of a training folder with Ir/, Vis/ and Label/.

    No pair, or a pair without its label, is a PairingError naming the folder; a missing Label/ is one only
    when `require_labels` (`label_hint` is added to that message).
    """
    root = Path(root)
    pairing = pair_folders(find_subdir(root, IR_DIR_NAMES, "infrared"), find_subdir(root, VIS_DIR_NAMES, "visible"))
    if not pairing.pairs:
        raise PairingError(f"{root}: no IR/VIS pairs with matching names")
    label_dir: Optional[Path] = None
    try:
        label_dir = find_subdir(root, LABEL_DIR_NAMES, "label", hint=label_hint)
    except PairingError:
        if require_labels:
            raise
    labels = list_images(label_dir) if label_dir else {}
    items = []
    for name, ir, vis in pairing.pairs:
        if label_dir is not None and name not in labels:
            raise PairingError(f"{label_dir}: no label for pair '{name}'")
        items.append((name, ir, vis, labels.get(name)))
    return label_dir, items


class FusionTrainSet(EpochSeededSet):
    """IR/VIS/label triples with shared crop and flip, and optionally the SAM segment images.

    Args:
        root: folder with Ir/ (Inf, ir, IR), Vis/ (Vi, vi, VIS) and Label/; pairs share a base name.
        crop_size: (H, W) of the training crops (release: 192 x 256).
        seed: base seed for crops and flips.
        hflip: probability of a horizontal flip.
        segments: None, or a callable (name, ir (H,W), y (H,W)) -> (vm, im, vm_mask, im_mask), each
            (K, H, W) float32 numpy; it is given the full image and cropped here like the images.
        official_label_scaling: reproduce the release's ToTensor label bug (class k -> k/255 -> long
            -> 0 for every pixel). Off by default.
        require_labels: without labels, crops are plain random crops and the label is all zeros.
        crop: "label_box" (default: inside the grown bounding box of the labelled pixels, the
            release's intent) or "uniform" (anywhere in the image, what the release does in effect).
    """

    def __init__(self, root: str | Path, crop_size: Sequence[int] = (192, 256), seed: int = 0,
                 hflip: float = 0.5, segments: Optional[Callable] = None,
                 official_label_scaling: bool = False, require_labels: bool = True, crop: str = "label_box"):
        if crop not in CROP_MODES:
            raise ValueError(f"data.crop={crop!r}: expected one of {', '.join(CROP_MODES)}")
        self.label_dir, self.items = labelled_pairs(root, require_labels)
        super().__init__(self.items, crop_size, seed, hflip)
        self.crop_mode, self.segments = crop, segments
        self.official_label_scaling = bool(official_label_scaling)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        name, ir_path, vis_path, label_path = self.items[index]
        rng = self.rng(index)
        ir = read_ir(ir_path)
        vis, _ = read_vis(vis_path)
        h, w = ir.shape
        if vis.shape[1:] != (h, w):
            raise ImageReadError(f"{vis_path}: size {vis.shape[2]}x{vis.shape[1]} differs from its IR image ({w}x{h})")
        label = read_index_map(label_path) if label_path else np.zeros((h, w), np.int64)
        if label.shape != (h, w):
            raise ImageReadError(f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from the images ({w}x{h})")
        ch, cw = self.crop
        if h < ch or w < cw:
            raise ImageReadError(f"{ir_path}: image {w}x{h} is smaller than the crop {cw}x{ch} (lower data.crop_size)")
        if self.crop_mode == "uniform":
            top, left = uniform_crop((h, w), self.crop, rng)
        else:
            top, left = label_bbox_crop(label, self.crop, rng)
        flip = rng.uniform() < self.hflip
        planes = {"ir": ir[None], "y": vis[0:1], "crcb": vis[1:3]}
        if self.segments is not None:
            vm, im, vm_mask, im_mask = self.segments(name, ir, vis[0])
            planes.update(vm=vm, im=im, vm_mask=vm_mask, im_mask=im_mask)
        out: Dict[str, torch.Tensor] = {}
        for key, arr in planes.items():
            arr = arr[:, top:top + ch, left:left + cw]
            if flip:
                arr = arr[:, :, ::-1]
            out[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        lab = label[top:top + ch, left:left + cw]
        if flip:
            lab = lab[:, ::-1]
        lab = torch.from_numpy(np.ascontiguousarray(lab))
        if self.official_label_scaling:
            # Quirk of the release (data.official_label_scaling): ToTensor scales k to k/255; .long() gives 0.
            lab = (lab.float() / 255.0).long()
        out["label"] = lab
        out["index"] = torch.tensor(index)
        return out
