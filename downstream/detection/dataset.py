"""Images and their box files, paired by base name, for training and scoring detectors.

An image folder (fused, IR or VIS images) and a label folder (.txt YOLO or .xml VOC files with the
same base names) are paired file by file; `DetectionPairing.problems()` lists every mismatch (an image
without a label file, a label file without an image, two label files for one image) one line each.
Images are read as RGB in [0, 1] (a grayscale image gives three equal channels). docs/downstream.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from data.imageio import read_rgb
from data.pairs import PairingError, list_images, scan_files
from data.seeded import EpochSeededSet

from .labels import LABEL_EXTENSIONS, Boxes, LabelError, read_labels, xml_image_size, read_yolo


@dataclass
class DetectionPairing:
    """Pairs (name, image, label file) and the files that found no partner."""

    pairs: List[Tuple[str, Path, Path]] = field(default_factory=list)
    images_without_labels: List[Path] = field(default_factory=list)
    labels_without_images: List[Path] = field(default_factory=list)
    duplicate_labels: List[Path] = field(default_factory=list)  # ignored: another label file has the same name

    def problems(self) -> List[str]:
        """One line per mismatched file."""
        out = [f"{p}: image has no label file" for p in self.images_without_labels]
        out += [f"{p}: label file has no image" for p in self.labels_without_images]
        out += [f"{p}: ignored, another label file has the same base name" for p in self.duplicate_labels]
        return out


def list_label_files(folder: str | os.PathLike) -> Tuple[Dict[str, Path], List[Path]]:
    """(base name -> .txt/.xml file, files shadowed by an earlier file of the same base name)."""
    return scan_files(folder, LABEL_EXTENSIONS)


def pair_images_labels(image_dir: str | os.PathLike, label_dir: str | os.PathLike) -> DetectionPairing:
    """Pair images and label files by base name (an error only when a folder is missing or nothing pairs)."""
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for d, what in ((image_dir, "image"), (label_dir, "label")):
        if not d.is_dir():
            raise PairingError(f"{d}: no such {what} directory")
    images = list_images(image_dir)
    labels, shadowed = list_label_files(label_dir)
    if not images:
        raise PairingError(f"{image_dir}: no images")
    pairing = DetectionPairing(
        pairs=[(n, images[n], labels[n]) for n in sorted(images) if n in labels],
        images_without_labels=[images[n] for n in sorted(set(images) - set(labels))],
        labels_without_images=[labels[n] for n in sorted(set(labels) - set(images))],
        duplicate_labels=shadowed)
    if not pairing.pairs:
        raise PairingError(f"{image_dir} and {label_dir}: no image/label pairs with matching names "
                           f"({len(images)} images, {len(labels)} label files)")
    return pairing


def checked_pairs(pairing: DetectionPairing, label_dir: str | os.PathLike, allow_missing: bool = False,
                  report: Callable[[str], None] = print) -> List[Tuple[str, Path, Path]]:
    """Report every mismatch (one line each); images without labels are an error unless `allow_missing`."""
    for line in pairing.problems():
        report(f"warning: {line}")
    missing = pairing.images_without_labels
    if missing and not allow_missing:
        raise PairingError(f"{label_dir}: no label file for {len(missing)} image(s) (e.g. {missing[0].name}; "
                           f"every mismatch is listed above)")
    return pairing.pairs


def validate_label_files(pairs: Sequence[Tuple[str, Path, Path]], class_names: Sequence[str]) -> int:
    """Parse every label file once (LabelError naming the file and line on the first malformed one).

    Run before a long training so a broken file stops it at the start, not hours in; the image sizes
    (and the clipping they need) are checked when each image is loaded. Returns the number of boxes.
    """
    import warnings

    from .labels import read_voc

    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping against a placeholder size means nothing here
        for _, _, lab in pairs:
            lab = Path(lab)
            boxes = (read_voc(lab, class_names, 1 << 30, 1 << 30) if lab.suffix.lower() == ".xml"
                     else read_yolo(lab, len(class_names), 1 << 30, 1 << 30))
            total += len(boxes)
    return total


def read_rgb_image(path: str | os.PathLike) -> np.ndarray:
    """(3, H, W) float32 RGB in [0, 1] from any 8/16-bit gray or colour image file."""
    return np.ascontiguousarray(read_rgb(path).transpose(2, 0, 1))


def load_ground_truth(label_path: Path, class_names: Sequence[str], width: int, height: int,
                      image_path: Optional[Path] = None) -> Boxes:
    """Boxes of one image; a VOC file whose <size> disagrees with the image is an error."""
    if label_path.suffix.lower() == ".xml":
        size = xml_image_size(label_path)
        if size is not None and size != (width, height):
            raise LabelError(f"{label_path}: <size> says {size[0]}x{size[1]} but the image "
                             f"{image_path or ''} is {width}x{height}")
    return read_labels(label_path, class_names, width, height)


class DetectionSet(EpochSeededSet):
    """Image / box pairs as detector inputs.

    Args:
        pairs: (name, image path, label path) triples (see pair_images_labels / checked_pairs).
        class_names: the class list (label files use its indices or names).
        hflip: probability of a horizontal flip (0 for evaluation).
        seed: the flip is drawn from (seed, epoch, index), so epochs are reproducible.
    """

    def __init__(self, pairs: Sequence[Tuple[str, Path, Path]], class_names: Sequence[str], hflip: float = 0.0,
                 seed: int = 0):
        super().__init__(list(pairs), None, seed, hflip)  # whole images: no crop
        self.pairs = self.items
        self.class_names = list(class_names)

    def load(self, index: int) -> Tuple[np.ndarray, Boxes]:
        """(image (3, H, W) float32, its ground truth in pixels)."""
        name, img_path, lab_path = self.pairs[index]
        rgb = read_rgb_image(img_path)
        h, w = rgb.shape[1:]
        return rgb, load_ground_truth(Path(lab_path), self.class_names, w, h, Path(img_path))

    def __getitem__(self, index: int):
        """(image tensor (3, H, W), {'boxes': (N, 4) float32 xyxy, 'labels': (N,) int64}, index)."""
        rgb, boxes = self.load(index)
        xyxy = boxes.xyxy.copy()
        if self.hflip > 0 and self.rng(index).uniform() < self.hflip:
            w = rgb.shape[2]
            rgb = np.ascontiguousarray(rgb[:, :, ::-1])
            xyxy[:, [0, 2]] = w - xyxy[:, [2, 0]]
        target = {"boxes": torch.as_tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
                  "labels": torch.as_tensor(boxes.labels, dtype=torch.int64)}
        return torch.from_numpy(rgb), target, index


def collate(batch):
    """A list of (image, target, index) -> (images list, targets list, indices list) (sizes may differ)."""
    images, targets, indices = zip(*batch)
    return list(images), list(targets), list(indices)


def read_predictions(pred_dir: str | os.PathLike, names_sizes: Sequence[Tuple[str, int, int]], num_classes: int,
                     report: Callable[[str], None] = print) -> List[Boxes]:
    """YOLO prediction files (`class cx cy w h conf`) for (name, width, height) images, in that order.

    A missing file means "no detections" (detectors write none for an empty image); the count is
    reported, and every prediction file without a matching image is reported by name.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise PairingError(f"{pred_dir}: no such predictions directory")
    files = {p.stem: p for p in sorted(pred_dir.iterdir()) if p.is_file() and p.suffix.lower() == ".txt"}
    wanted = {n for n, _, _ in names_sizes}
    for stem in sorted(set(files) - wanted):
        report(f"warning: {files[stem]}: prediction file has no image/label pair")
    missing = [n for n, _, _ in names_sizes if n not in files]
    if len(missing) == len(names_sizes):
        raise PairingError(f"{pred_dir}: no prediction file matches any image (e.g. expected {missing[0]}.txt)")
    if missing:
        report(f"note: {len(missing)} image(s) have no prediction file and count as 'no detections' "
               f"(e.g. {missing[0]}.txt)")
    out = []
    for n, w, h in names_sizes:
        out.append(read_yolo(files[n], num_classes, w, h, with_conf=True) if n in files
                   else Boxes(np.zeros((0, 4)), np.zeros((0,), np.int64), np.zeros((0,))))
    return out


__all__ = ["DetectionPairing", "DetectionSet", "pair_images_labels", "checked_pairs", "validate_label_files",
           "read_rgb_image",
           "load_ground_truth", "collate", "read_predictions"]
