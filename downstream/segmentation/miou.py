"""Segmentation metrics from a confusion matrix accumulated over a whole split.

IoU_c = TP_c / (TP_c + FP_c + FN_c) with the counts summed over every image of the split (not averaged
per image); mIoU is the mean over the evaluated classes that occur (in the labels or the predictions).
Pixels whose label is the ignore index or an ignored class are not counted at all. A prediction equal
to the ignore index (or any excluded value) on a counted pixel is a miss for the true class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from semantic.classes import check_label_range


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(pred, label, num_classes: int, ignore_index: int = 255,
                     ignored_classes: Sequence[int] = (), name: str = "label") -> np.ndarray:
    """(C, C + 1) int64 counts: row = true class, column = predicted class, last column = no valid prediction.

    pred, label: integer maps of the same shape (numpy or torch). Label values other than 0..C-1 and the
    ignore index raise ValueError naming `name`; so do prediction values other than 0..C-1 and the ignore index.
    """
    pred, label = _as_numpy(pred).astype(np.int64), _as_numpy(label).astype(np.int64)
    if pred.shape != label.shape:
        raise ValueError(f"{name}: prediction shape {pred.shape} differs from label shape {label.shape}")
    c = int(num_classes)
    check_label_range(label, c, ignore_index, name, "check --num_classes / the class list")
    bad = (pred != ignore_index) & ((pred < 0) | (pred >= c))
    if bad.any():
        raise ValueError(f"{name}: predicted values {np.unique(pred[bad])[:8].tolist()} are outside 0..{c - 1}")
    keep = label != ignore_index
    for k in ignored_classes:
        keep &= label != k
    t = label[keep]
    p = pred[keep]
    p = np.where(p == ignore_index, c, p)  # the "no prediction" column
    return np.bincount(t * (c + 1) + p, minlength=c * (c + 1)).reshape(c, c + 1)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """(C,) float64 IoU from a (C, C+1) or (C, C) confusion matrix; NaN where a class is absent and never predicted."""
    cm = np.asarray(cm, dtype=np.float64)
    c = cm.shape[0]
    tp = np.diag(cm[:, :c])
    gt = cm.sum(axis=1)
    pred = cm[:, :c].sum(axis=0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(iou: np.ndarray, classes: Optional[Sequence[int]] = None) -> float:
    """Mean over `classes` (all by default) of the IoUs that are not NaN; NaN when none is defined."""
    vals = np.asarray(iou, dtype=np.float64)
    if classes is not None:
        vals = vals[list(classes)]
    vals = vals[~np.isnan(vals)]
    return float(vals.mean()) if vals.size else float("nan")


@dataclass
class SegmentationScore:
    """Accumulates the confusion matrix image by image and reports per-class IoU and mIoU."""

    class_names: List[str]
    ignore_index: int = 255
    ignored_classes: List[int] = field(default_factory=list)
    cm: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        c = len(self.class_names)
        self.cm = np.zeros((c, c + 1), np.int64)

    @property
    def evaluated(self) -> List[int]:
        return [k for k in range(len(self.class_names)) if k not in self.ignored_classes]

    def update(self, pred, label, name: str = "label") -> None:
        self.cm += confusion_matrix(pred, label, len(self.class_names), self.ignore_index, self.ignored_classes, name)

    def iou(self) -> np.ndarray:
        return iou_per_class(self.cm)

    def miou(self) -> float:
        return mean_iou(self.iou(), self.evaluated)

    def pixel_accuracy(self) -> float:
        total = self.cm.sum()
        return float(np.trace(self.cm[:, :len(self.class_names)]) / total) if total else float("nan")

    def summary(self) -> Dict[str, object]:
        """JSON-ready: per-class IoU (None for undefined or ignored classes), mIoU, pixel accuracy, counts."""
        iou = self.iou()
        c = len(self.class_names)
        per_class = {}
        for k, n in enumerate(self.class_names):
            v = None if (k in self.ignored_classes or np.isnan(iou[k])) else float(iou[k])
            per_class[n] = {"iou": v, "gt_pixels": int(self.cm[k].sum()), "pred_pixels": int(self.cm[:, k].sum()),
                            "evaluated": k not in self.ignored_classes}
        return {"mIoU": self.miou(), "pixel_accuracy": self.pixel_accuracy(), "num_classes": c,
                "evaluated_classes": [self.class_names[k] for k in self.evaluated],
                "ignore_index": self.ignore_index, "per_class": per_class}
