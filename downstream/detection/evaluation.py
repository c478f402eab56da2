"""COCO-style detection scores (mAP@0.5, mAP@0.5:0.95, per-class AP) through an established COCO evaluator.

The matching, the 101-point interpolated precision and the averaging over IoU thresholds 0.50:0.05:0.95
are the COCO evaluator's (faster-coco-eval when installed, else pycocotools); this module only turns
pixel boxes into COCO records and reads the evaluator's results. Per-class AP is the mean of the
evaluator's precision array over recall points (and IoU thresholds), area "all", 100 detections per
image, as COCO's own summary does for all classes together. Details: docs/downstream.md.
"""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .labels import Boxes


@dataclass
class DetectionScores:
    """mAP50 / mAP50_95 over the classes that have ground truth (fractions 0..1, NaN when none has)."""

    mAP50: float
    mAP50_95: float
    per_class: Dict[str, Dict[str, float]] = field(default_factory=dict)  # name -> {AP50, AP50_95, gt, det}
    images: int = 0
    backend: str = ""


def _coco_backend():
    """(COCO, COCOeval, name): faster-coco-eval when installed, else pycocotools."""
    try:
        from faster_coco_eval import COCO, COCOeval_faster
        return COCO, COCOeval_faster, "faster-coco-eval"
    except ImportError:
        try:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
            return COCO, COCOeval, "pycocotools"
        except ImportError:
            raise ImportError("COCO evaluation needs faster-coco-eval (pip install faster-coco-eval) or "
                              "pycocotools") from None


def _xywh(xyxy: np.ndarray) -> List[float]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_records(ground_truth: Sequence[Boxes], predictions: Sequence[Boxes], sizes: Sequence[Tuple[int, int]],
                 class_names: Sequence[str]) -> Tuple[dict, List[dict]]:
    """(COCO ground-truth dataset dict, detection list) for images 1..N; categories 1..C in class order."""
    images, anns, dets = [], [], []
    for i, ((w, h), gt, pred) in enumerate(zip(sizes, ground_truth, predictions), start=1):
        images.append({"id": i, "width": int(w), "height": int(h), "file_name": str(i)})
        for k in range(len(gt)):
            bbox = _xywh(gt.xyxy[k])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(gt.labels[k]) + 1, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0})
        if len(pred) and pred.scores is None:
            raise ValueError(f"image {i}: predictions need confidence scores")
        for k in range(len(pred)):
            dets.append({"image_id": i, "category_id": int(pred.labels[k]) + 1, "bbox": _xywh(pred.xyxy[k]),
                         "score": float(pred.scores[k])})
    cats = [{"id": c + 1, "name": n, "supercategory": "object"} for c, n in enumerate(class_names)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def evaluate_detections(ground_truth: Sequence[Boxes], predictions: Sequence[Boxes],
                        sizes: Sequence[Tuple[int, int]], class_names: Sequence[str]) -> DetectionScores:
    """Score per-image predictions (boxes with scores) against ground truth; sizes are (width, height)."""
    if not (len(ground_truth) == len(predictions) == len(sizes)):
        raise ValueError(f"{len(ground_truth)} ground truths, {len(predictions)} predictions, {len(sizes)} sizes")
    COCO, COCOeval, backend = _coco_backend()
    gt_dict, dets = coco_records(ground_truth, predictions, sizes, class_names)
    n_gt = np.bincount([a["category_id"] - 1 for a in gt_dict["annotations"]], minlength=len(class_names))
    n_det = np.bincount([d["category_id"] - 1 for d in dets], minlength=len(class_names))
    per_class: Dict[str, Dict[str, float]] = {}
    quiet = contextlib.redirect_stdout(io.StringIO())
    if dets and gt_dict["annotations"]:
        with quiet:
            gt = COCO(gt_dict) if backend == "faster-coco-eval" else _pycoco_from_dict(COCO, gt_dict)
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        precision = np.asarray(ev.eval["precision"])  # (T IoU thresholds, R recall points, K, A areas, M maxDets)
        iou_thr = np.asarray(ev.params.iouThrs)
        t50 = int(np.argmin(np.abs(iou_thr - 0.5)))
        cat_ids = list(ev.params.catIds)
        for c, name in enumerate(class_names):
            k = cat_ids.index(c + 1)
            p = precision[:, :, k, 0, -1]  # area "all", the largest maxDets (100)
            ap = float(np.mean(p[p > -1])) if np.any(p > -1) else math.nan
            p50 = p[t50]
            ap50 = float(np.mean(p50[p50 > -1])) if np.any(p50 > -1) else math.nan
            per_class[name] = {"AP50": ap50, "AP50_95": ap}
        mAP50_95, mAP50 = float(ev.stats[0]), float(ev.stats[1])
        if mAP50_95 < 0:  # the evaluator's "no ground truth" marker
            mAP50_95 = mAP50 = math.nan
    else:
        # Nothing to match: every class with ground truth has AP 0 (no detection), the others have none.
        for c, name in enumerate(class_names):
            v = 0.0 if n_gt[c] else math.nan
            per_class[name] = {"AP50": v, "AP50_95": v}
        mAP50 = mAP50_95 = 0.0 if n_gt.sum() else math.nan
    for c, name in enumerate(class_names):
        per_class[name].update(gt=int(n_gt[c]), det=int(n_det[c]))
    return DetectionScores(mAP50, mAP50_95, per_class, len(sizes), backend)


def _pycoco_from_dict(COCO, gt_dict: dict):
    coco = COCO()
    coco.dataset = gt_dict
    coco.createIndex()
    return coco


def pct(v: Optional[float]) -> str:
    """A fraction as percent with 2 decimals ('n/a' for NaN / None)."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def format_table(rows: Dict[str, DetectionScores], class_names: Sequence[str], per_class: str = "AP50"
                 ) -> List[List[str]]:
    """Header + one row per method: method, mAP50, mAP50-95, then `per_class` (AP50 or AP50_95) of each
    class, in percent with 2 decimals ('n/a': the class has no ground truth)."""
    header = ["method", "mAP50", "mAP50-95"] + [f"{n} {per_class.replace('_', '-')}" for n in class_names]
    out = [header]
    for method, s in rows.items():
        out.append([method, pct(s.mAP50), pct(s.mAP50_95)] +
                   [pct(s.per_class.get(n, {}).get(per_class, math.nan)) for n in class_names])
    return out


def markdown(table: List[List[str]]) -> str:
    """A Markdown table from format_table's rows."""
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(table[0]) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
    return "\n".join(lines) + "\n"


__all__ = ["DetectionScores", "evaluate_detections", "coco_records", "format_table", "markdown", "pct"]
