"""COCO-style AP through the COCO evaluator on hand-made cases whose AP is known by hand.

COCO's AP is the mean, over 101 recall points r = 0, 0.01, ..., 1, of the interpolated precision
max{precision at recall >= r} (0 where that recall is never reached); mAP50-95 averages it over IoU
thresholds 0.50, 0.55, ..., 0.95 (a detection matches at threshold t when IoU >= t).
"""
from __future__ import annotations

import math

import pytest

from downstream.detection.evaluation import evaluate_detections, format_table, markdown
from downstream.detection.labels import make_boxes

CLASSES = ["People", "Car"]
SIZE = (200, 200)
A, B, C = [10, 10, 60, 60], [100, 100, 150, 150], [120, 20, 190, 60]


def score(gts, preds):
    return evaluate_detections(gts, preds, [SIZE] * len(gts), CLASSES)


def test_perfect_detections_score_one():
    s = score([make_boxes([A, B], [0, 1])], [make_boxes([A, B], [0, 1], [0.9, 0.8])])
    assert s.mAP50 == pytest.approx(1.0) and s.mAP50_95 == pytest.approx(1.0)
    assert s.per_class["People"]["AP50"] == pytest.approx(1.0) and s.per_class["Car"]["AP50_95"] == pytest.approx(1.0)


def test_one_miss_halves_recall():
    # 2 objects, 1 found: precision 1 up to recall 0.5 (51 of the 101 points), nothing beyond
    s = score([make_boxes([A, B], [0, 0])], [make_boxes([A], [0], [0.9])])
    assert s.mAP50 == pytest.approx(51 / 101)
    assert s.mAP50_95 == pytest.approx(51 / 101)


def test_false_positive_ranked_below_every_hit_costs_nothing():
    s = score([make_boxes([A], [0])], [make_boxes([A, C], [0, 0], [0.9, 0.3])])
    assert s.mAP50 == pytest.approx(1.0)


def test_false_positive_ranked_first_halves_precision():
    # ranking: FP (0.9), TP (0.8): recall 1 is reached at precision 1/2
    s = score([make_boxes([A], [0])], [make_boxes([C, A], [0, 0], [0.9, 0.8])])
    assert s.mAP50 == pytest.approx(0.5)


def test_duplicate_detection_is_a_false_positive():
    # A (0.9, TP), A again (0.8, duplicate: FP), B (0.7, TP): P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1
    # interpolated: 1 for r <= 0.5 (51 points), 2/3 for r in 0.51..1 (50 points)
    s = score([make_boxes([A, B], [0, 0])], [make_boxes([A, A, B], [0, 0, 0], [0.9, 0.8, 0.7])])
    assert s.mAP50 == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_two_classes_average_their_aps():
    gts = [make_boxes([A, B], [0, 0]), make_boxes([C], [1])]
    preds = [make_boxes([A], [0], [0.9]), make_boxes([C], [1], [0.7])]
    s = score(gts, preds)
    assert s.per_class["People"]["AP50"] == pytest.approx(51 / 101)
    assert s.per_class["Car"]["AP50"] == pytest.approx(1.0)
    assert s.mAP50 == pytest.approx((51 / 101 + 1.0) / 2)
    assert s.per_class["People"]["gt"] == 2 and s.per_class["Car"]["det"] == 1


def test_wrong_class_is_no_match():
    s = score([make_boxes([A], [0])], [make_boxes([A], [1], [0.9])])
    assert s.per_class["People"]["AP50"] == pytest.approx(0.0)
    assert math.isnan(s.per_class["Car"]["AP50"])  # no ground truth: not part of the mean
    assert s.mAP50 == pytest.approx(0.0)


def test_iou_072_counts_at_five_of_ten_thresholds():
    # [10,10,60,46] inside A: IoU = 50*36 / (50*50) = 0.72 -> a match at 0.50 ... 0.70, not from 0.75
    s = score([make_boxes([A], [0])], [make_boxes([[10, 10, 60, 46]], [0], [0.9])])
    assert s.mAP50 == pytest.approx(1.0)
    assert s.mAP50_95 == pytest.approx(0.5)


def test_no_detections_at_all_and_no_ground_truth():
    s = score([make_boxes([A], [0]), make_boxes([], [])], [make_boxes([], [], []), make_boxes([], [], [])])
    assert s.mAP50 == 0.0 and s.per_class["People"]["AP50"] == 0.0
    s = score([make_boxes([], [])], [make_boxes([A], [0], [0.5])])
    assert math.isnan(s.mAP50)


def test_table_in_percent():
    s = score([make_boxes([A, B], [0, 0])], [make_boxes([A], [0], [0.9])])
    table = format_table({"sage": s}, CLASSES)
    assert table == [["method", "mAP50", "mAP50-95", "People AP50", "Car AP50"], ["sage", "50.50", "50.50", "50.50", "n/a"]]
    assert markdown(table).splitlines()[2] == "| sage | 50.50 | 50.50 | 50.50 | n/a |"


def test_pycocotools_fallback_agrees(monkeypatch):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from downstream.detection import evaluation

    gts = [make_boxes([A, B], [0, 0]), make_boxes([C], [1])]
    preds = [make_boxes([A, A, [10, 10, 60, 46]], [0, 0, 0], [0.9, 0.8, 0.7]), make_boxes([C, B], [1, 1], [0.7, 0.6])]
    fast = score(gts, preds)
    monkeypatch.setattr(evaluation, "_coco_backend", lambda: (COCO, COCOeval, "pycocotools"))
    slow = score(gts, preds)
    assert fast.backend == "faster-coco-eval" and slow.backend == "pycocotools"
    assert slow.mAP50 == pytest.approx(fast.mAP50) and slow.mAP50_95 == pytest.approx(fast.mAP50_95)
    for name in CLASSES:
        assert slow.per_class[name]["AP50_95"] == pytest.approx(fast.per_class[name]["AP50_95"])
