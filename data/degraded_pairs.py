"""Degraded/clean IR-VIS training pairs with class labels (docs/degradation.md): synthesised on the fly from a
clean folder (DegradedPairSet), or read from an already degraded set with a labels CSV (LabelledPairSet).

DegradedPairSet draws a degradation class and a strength per item, degrades the whole image pair with
data/degradation.py and then crops. All randomness comes from a generator seeded by (seed, epoch, index),
so an epoch is reproducible and a resumed run sees the same items.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .degradation import DEFAULT_CLASSES, DegradationError, degrade_pair, parse_kinds
from .imageio import ImageReadError, read_ir, read_raw, read_rgb
from .pairs import IR_DIR_NAMES, VIS_DIR_NAMES, PairingError, find_subdir, pair_folders
from .seeded import EpochSeededSet


def read_pair_float(ir_path: str | os.PathLike, vis_path: str | os.PathLike
                    ) -> Tuple[np.ndarray, np.ndarray, np.dtype, np.dtype]:
    """(vis, ir, vis file dtype, ir file dtype): vis float32 RGB (H, W, 3), or (H, W) for a grey file, and ir
    float32 (H, W) (a colour IR file converted with BGR2GRAY), both in [0, 1]. ImageReadError if unusable."""
    vis_raw, ir_raw = read_raw(vis_path), read_raw(ir_path)
    if ir_raw.ndim == 3:
        ir_raw = cv2.cvtColor(ir_raw, cv2.COLOR_BGR2GRAY)
    if vis_raw.shape[:2] != ir_raw.shape:
        raise ImageReadError(f"{vis_path}: size {vis_raw.shape[1]}x{vis_raw.shape[0]} differs from its IR image "
                             f"({ir_raw.shape[1]}x{ir_raw.shape[0]})")
    vis = np.ascontiguousarray(vis_raw[:, :, ::-1]) if vis_raw.ndim == 3 else vis_raw
    return (vis.astype(np.float32) / float(np.iinfo(vis.dtype).max),
            ir_raw.astype(np.float32) / float(np.iinfo(ir_raw.dtype).max), vis_raw.dtype, ir_raw.dtype)


class DegradedPairSet(EpochSeededSet):
    """Items {vis, ir, vis_clean, ir_clean, label, strength, index} from a folder of clean pairs.

    vis, vis_clean: (3, H, W) float32 RGB in [0, 1]; ir, ir_clean: (1, H, W) float32 in [0, 1];
    label: int64 index of the degradation in `classes`; strength: float32 in [0, 1] (0 for 'clean').
    H, W = crop_size. Images are degraded whole, then cropped (so depth cues see the full frame).

    Args:
        root: folder with Ir/ (Inf, ir, IR) and Vis/ (Vi, vi, VIS); pairs share a base name.
        classes: degradation names (data/degradation.py registry); the label is the index in this list.
        crop_size: (H, W) of the crops.
        seed: base seed for class, strength, degradation, crop and flip.
        strength_range: (low, high): strengths are drawn uniformly from it for the degraded classes.
        class_weights: relative frequency of each class (None: uniform).
        hflip: probability of a horizontal flip.
    """

    def __init__(self, root: str | Path, classes: Sequence[str] = DEFAULT_CLASSES,
                 crop_size: Sequence[int] = (192, 256), seed: int = 0,
                 strength_range: Sequence[float] = (0.2, 1.0), class_weights: Optional[Sequence[float]] = None,
                 hflip: float = 0.5):
        root = Path(root)
        pairing = pair_folders(find_subdir(root, IR_DIR_NAMES, "infrared"), find_subdir(root, VIS_DIR_NAMES, "visible"))
        if not pairing.pairs:
            raise PairingError(f"{root}: no IR/VIS pairs with matching names")
        self.items: List[Tuple[str, Path, Path]] = pairing.pairs
        self.classes = parse_kinds(list(classes))
        lo, hi = (float(v) for v in strength_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise DegradationError(f"strength_range {list(strength_range)}: need 0 <= low <= high <= 1")
        self.strength_range = (lo, hi)
        if class_weights is None:
            self.class_p = np.full(len(self.classes), 1.0 / len(self.classes))
        else:
            w = np.asarray(class_weights, dtype=np.float64)
            if w.shape != (len(self.classes),) or (w < 0).any() or w.sum() <= 0:
                raise DegradationError(f"class_weights: need {len(self.classes)} non-negative weights, not all 0")
            self.class_p = w / w.sum()
        super().__init__(self.items, crop_size, seed, hflip)

    def names(self) -> List[str]:
        return [it[0] for it in self.items]

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        name, ir_path, vis_path = self.items[index]
        rng = self.rng(index)
        label = int(rng.choice(len(self.classes), p=self.class_p))
        kind = self.classes[label]
        strength = 0.0 if kind == "clean" else float(rng.uniform(*self.strength_range))
        deg_seed = int(rng.integers(2 ** 63))
        ir = read_ir(ir_path)
        vis = read_rgb(vis_path)
        h, w = ir.shape
        if vis.shape[:2] != (h, w):
            raise ImageReadError(f"{vis_path}: size {vis.shape[1]}x{vis.shape[0]} differs from its IR image ({w}x{h})")
        top, left, flip = self.draw_crop(rng, (h, w), ir_path)
        vis_d, ir_d = degrade_pair(vis, ir, kind, strength, seed=deg_seed)
        out = self.cut({"vis": vis_d, "ir": ir_d, "vis_clean": vis, "ir_clean": ir}, top, left, flip)
        out["label"] = torch.tensor(label, dtype=torch.int64)
        out["strength"] = torch.tensor(strength, dtype=torch.float32)
        out["index"] = torch.tensor(index)
        return out


class LabelledPairSet(EpochSeededSet):
    """The items of DegradedPairSet read from an already degraded set: a labels CSV such as
    scripts/make_degraded.py writes (columns name, kind, strength, vis, ir, clean_vis, clean_ir; paths
    relative to the CSV's folder), for real degraded/clean pairs or a fixed synthetic set.

    Every row other than kind 'clean' is one item; 'clean' rows are items too when `include_clean`.
    The label is the index of the row's kind in `classes` (a kind outside the list is an error).
    Crop and flip are drawn from a generator seeded by (seed, epoch, index).

    Args:
        labels: the CSV file.
        classes: the class list (config value); must contain every kind used.
        crop_size: (H, W) of the crops.
        seed: base seed for crops and flips.
        hflip: probability of a horizontal flip.
        include_clean: also yield the rows of kind 'clean' (label of 'clean', strength 0).
    """

    COLUMNS = ("name", "kind", "strength", "vis", "ir", "clean_vis", "clean_ir")

    def __init__(self, labels: str | Path, classes: Sequence[str] = DEFAULT_CLASSES,
                 crop_size: Sequence[int] = (192, 256), seed: int = 0, hflip: float = 0.5,
                 include_clean: bool = True):
        labels = Path(labels)
        if not labels.is_file():
            raise PairingError(f"{labels}: no such labels file")
        with labels.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in self.COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise PairingError(f"{labels}: not a labels file (missing columns {', '.join(missing)})")
            rows = list(reader)
        self.classes = parse_kinds(list(classes))
        base = labels.parent
        self.items: List[Tuple[str, int, float, Path, Path, Path, Path]] = []
        for line, r in enumerate(rows, start=2):
            if r["kind"] == "clean" and not include_clean:
                continue
            if r["kind"] not in self.classes:
                raise DegradationError(f"{labels}: line {line}: kind '{r['kind']}' is not in the class list "
                                       f"({', '.join(self.classes)})")
            if not r["clean_vis"] or not r["clean_ir"]:
                raise PairingError(f"{labels}: line {line}: no clean pair for {r['name']} (clean_vis/clean_ir empty)")
            try:
                strength = float(r["strength"])
            except ValueError:
                raise PairingError(f"{labels}: line {line}: strength '{r['strength']}' is not a number") from None
            self.items.append((r["name"], self.classes.index(r["kind"]), strength, base / r["vis"], base / r["ir"],
                               base / r["clean_vis"], base / r["clean_ir"]))
        if not self.items:
            raise PairingError(f"{labels}: no rows to train on")
        super().__init__(self.items, crop_size, seed, hflip)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        name, label, strength, vis_p, ir_p, cvis_p, cir_p = self.items[index]
        rng = self.rng(index)
        planes = {"vis": read_rgb(vis_p), "ir": read_ir(ir_p), "vis_clean": read_rgb(cvis_p), "ir_clean": read_ir(cir_p)}
        h, w = planes["ir"].shape
        for key, path in (("vis", vis_p), ("vis_clean", cvis_p), ("ir_clean", cir_p)):
            if planes[key].shape[:2] != (h, w):
                raise ImageReadError(f"{path}: size {planes[key].shape[1]}x{planes[key].shape[0]} differs from "
                                     f"{ir_p.name} ({w}x{h})")
        top, left, flip = self.draw_crop(rng, (h, w), ir_p)
        out = self.cut(planes, top, left, flip)
        out["label"] = torch.tensor(label, dtype=torch.int64)
        out["strength"] = torch.tensor(strength, dtype=torch.float32)
        out["index"] = torch.tensor(index)
        return out
