"""The training data of SGAFusion's three stages, as the batches of training/sgafusion_steps.py expects
(docs/sgafusion.md, "Training").

- stage 1 (`cue`): {image (3, H, W) degraded visible RGB, label () degradation class} from
  data/degraded_pairs.py: synthesised on the fly from a folder of clean pairs (DegradedPairSet) or read
  from scripts/make_degraded.py's labelled output (LabelledPairSet, `data.labels`).
- stage 2 (`joint`): {vi (3, H, W) clean RGB, ir (1, H, W), label (H, W) int64} from a folder with
  Ir/, Vis/ and Label/ (index maps, e.g. FMB's); pixels of `ignore_label` become -100 (ignored).
- stage 3 (`finetune`): {vi degraded RGB, vi_gt clean RGB, ir (degraded when the class degrades the IR),
  ir_gt clean IR} from the same degraded-pair sets as stage 1.

Every item's randomness (class, strength, crop, flip) comes from (seed, epoch, index), so a resumed run
sees the same items as an uninterrupted one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data.dataset import labelled_pairs
from data.degraded_pairs import DegradedPairSet, LabelledPairSet
from data.imageio import ImageReadError, read_index_map, read_ir, read_rgb
from data.seeded import EpochSeededSet
from semantic.classes import check_label_range

IGNORE_INDEX = -100  # the segmentation loss's ignore index (losses/sgafusion.py)


class SegPairSet(EpochSeededSet):
    """Clean RGB/IR pairs with class-index maps: items {vi (3,H,W), ir (1,H,W), label (H,W) int64}.

    Args:
        root: folder with Ir/ (Inf, ir, IR), Vis/ (Vi, vi, VIS) and Label/ (label, Labels, labels).
        num_classes: classes of the segmentation head; a label value >= num_classes (other than
            ignore_label) is an error naming the file.
        crop_size: (H, W) of the crops (uniform random position).
        seed: base seed for crops and flips.
        hflip: probability of a horizontal flip.
        ignore_label: label value not trained on (FMB: 0, unlabelled), or None.
    """

    def __init__(self, root: str | Path, num_classes: int, crop_size: Sequence[int] = (192, 256), seed: int = 0,
                 hflip: float = 0.5, ignore_label: Optional[int] = None):
        _, items = labelled_pairs(root, label_hint="stage 2 (joint segmentation + fusion) needs class-index maps "
                                                   "in Label/")
        super().__init__(items, crop_size, seed, hflip)
        self.num_classes, self.ignore_label = int(num_classes), ignore_label

    def _label(self, path: Path) -> np.ndarray:
        label = read_index_map(path)  # class indices, never negative
        ignore = -1 if self.ignore_label is None else self.ignore_label
        check_label_range(label, self.num_classes, ignore, str(path), "set model.num_classes or data.ignore_label",
                          error=ImageReadError)
        return np.where(label == ignore, IGNORE_INDEX, label)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        name, ir_path, vis_path, label_path = self.items[index]
        rng = self.rng(index)
        ir, vis, label = read_ir(ir_path), read_rgb(vis_path), self._label(label_path)
        h, w = ir.shape
        for arr, path in ((vis, vis_path), (label, label_path)):
            if arr.shape[:2] != (h, w):
                raise ImageReadError(f"{path}: size {arr.shape[1]}x{arr.shape[0]} differs from {ir_path.name} ({w}x{h})")
        top, left, flip = self.draw_crop(rng, (h, w), ir_path)
        out = self.cut({"vi": vis, "ir": ir}, top, left, flip)
        label = label[top:top + self.crop[0], left:left + self.crop[1]]
        out["label"] = torch.from_numpy(np.ascontiguousarray(label[:, ::-1] if flip else label, dtype=np.int64))
        return out


class StageView(Dataset):
    """A degraded-pair set (DegradedPairSet / LabelledPairSet) with its items renamed for one stage.

    stage "cue": {image, label}; stage "finetune": {vi, vi_gt, ir, ir_gt}.
    """

    KEYS = {"cue": {"image": "vis", "label": "label"},
            "finetune": {"vi": "vis", "vi_gt": "vis_clean", "ir": "ir", "ir_gt": "ir_clean"}}

    def __init__(self, base: Dataset, stage: str):
        if stage not in self.KEYS:
            raise ValueError(f"training/sgafusion_data.py: no degraded-pair view for stage {stage!r}")
        self.base, self.keys = base, self.KEYS[stage]

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        item = self.base[index]
        return {new: item[old] for new, old in self.keys.items()}


def degraded_set(root: str | Path, labels: Optional[str], classes: Sequence[str], crop_size: Sequence[int],
                 seed: int, hflip: float, strength_range: Sequence[float]) -> Dataset:
    """DegradedPairSet on `root` (synthesised on the fly), or LabelledPairSet of the CSV `labels`."""
    if labels:
        return LabelledPairSet(labels, classes=classes, crop_size=crop_size, seed=seed, hflip=hflip)
    return DegradedPairSet(root, classes=classes, crop_size=crop_size, seed=seed, hflip=hflip,
                           strength_range=strength_range)
