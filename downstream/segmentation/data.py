"""Images and label maps for training and evaluating a segmenter (visible or fused images).

Every image is read the way the judge sees the fusion during teacher training: data.imageio.read_vis
(OpenCV YCrCb) and back to RGB with the release's constants, clamped to [0, 1] (data.colour.colourise). A fused PNG written by test.py therefore comes back as (almost exactly) the RGB that was written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from data.colour import colourise
from data.imageio import ImageReadError, read_index_map, read_vis
from data.pairs import PairingError, list_images
from semantic.classes import check_label_range


def read_rgb(path: str | Path) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1]; a grayscale file gives three equal channels."""
    ycrcb, _ = read_vis(path)
    t = torch.from_numpy(ycrcb)[None]
    rgb = colourise(t[:, 0:1], t[:, 1:3])
    return rgb[0].numpy()


def read_checked_label(path: str | Path, num_classes: int, ignore_index: int) -> np.ndarray:
    """(H, W) int64 label map whose values are classes 0..C-1 or the ignore index (else ImageReadError)."""
    lab = read_index_map(path)
    check_label_range(lab, num_classes, ignore_index, str(path), "check the class list / --num_classes",
                      error=ImageReadError)
    return lab


def pair_images_labels(image_dir: str | Path, label_dir: str | Path, need_all_labels: bool = True
                       ) -> List[Tuple[str, Path, Path]]:
    """(name, image, label) for files sharing a base name; an image without a label is an error."""
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for d, what in ((image_dir, "image"), (label_dir, "label")):
        if not d.is_dir():
            raise PairingError(f"{d}: no such {what} directory")
    images, labels = list_images(image_dir), list_images(label_dir)
    if not images:
        raise PairingError(f"{image_dir}: no images")
    missing = sorted(set(images) - set(labels))
    if missing and need_all_labels:
        raise PairingError(f"{label_dir}: no label for {len(missing)} image(s) of {image_dir} (e.g. '{missing[0]}')")
    out = [(n, images[n], labels[n]) for n in sorted(images) if n in labels]
    if not out:
        raise PairingError(f"{image_dir} and {label_dir}: no image/label pairs with matching names")
    return out


class SegmentationSet(Dataset):
    """Image/label pairs; in training mode with SegFormer's augmentation (random scale, crop, flip).

    Args:
        pairs: (name, image path, label path) triples (see pair_images_labels).
        num_classes: labels must hold 0..num_classes-1 or ignore_index.
        crop: (H, W) training crop, or None for whole images (evaluation).
        scale_range: random rescaling of image and label before cropping (training only).
        hflip: flip probability (training only).
        seed: randomness is drawn from (seed, epoch, index), so epochs are reproducible.
    """

    def __init__(self, pairs: Sequence[Tuple[str, Path, Path]], num_classes: int, ignore_index: int = 255,
                 crop: Optional[Tuple[int, int]] = (384, 384), scale_range: Tuple[float, float] = (0.5, 2.0),
                 hflip: float = 0.5, seed: int = 0):
        self.pairs = list(pairs)
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.scale_range, self.hflip, self.seed = scale_range, float(hflip), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        name, img_path, lab_path = self.pairs[index]
        rgb = read_rgb(img_path)
        lab = read_checked_label(lab_path, self.num_classes, self.ignore_index)
        if lab.shape != rgb.shape[1:]:
            raise ImageReadError(f"{lab_path}: label size {lab.shape[1]}x{lab.shape[0]} differs from its image "
                                 f"{img_path} ({rgb.shape[2]}x{rgb.shape[1]})")
        return rgb, lab

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        rgb, lab = self.load(index)
        if self.crop is not None:
            rgb, lab = self._augment(rgb, lab, np.random.default_rng((self.seed, self.epoch, index)))
        return {"rgb": torch.from_numpy(np.ascontiguousarray(rgb)),
                "label": torch.from_numpy(np.ascontiguousarray(lab)), "index": torch.tensor(index)}

    def _augment(self, rgb: np.ndarray, lab: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        ch, cw = self.crop  # type: ignore[misc]
        s = float(rng.uniform(*self.scale_range))
        h, w = lab.shape
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        img = cv2.resize(rgb.transpose(1, 2, 0), (nw, nh), interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab.astype(np.int32), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(np.int64)
        ph, pw = max(0, ch - nh), max(0, cw - nw)
        if ph or pw:
            img = np.pad(img, ((0, ph), (0, pw), (0, 0)))
            lab = np.pad(lab, ((0, ph), (0, pw)), constant_values=self.ignore_index)
        top = int(rng.integers(0, img.shape[0] - ch + 1))
        left = int(rng.integers(0, img.shape[1] - cw + 1))
        img, lab = img[top:top + ch, left:left + cw], lab[top:top + ch, left:left + cw]
        if rng.uniform() < self.hflip:
            img, lab = img[:, ::-1], lab[:, ::-1]
        return img.transpose(2, 0, 1).astype(np.float32), lab
