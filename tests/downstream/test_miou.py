"""mIoU from a confusion matrix accumulated over the split, on hand-made label maps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from downstream.segmentation.miou import SegmentationScore, confusion_matrix, iou_per_class, mean_iou


def test_known_ious_three_classes():
    label = np.array([[0, 0, 1, 1],
                      [2, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 1],
                     [2, 2, 0, 2]])
    cm = confusion_matrix(pred, label, 3)
    # class 0: TP 1, FP 1 (pixel of 2), FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 3, FN 1 -> 3/4
    assert np.allclose(iou_per_class(cm), [1 / 3, 2 / 3, 3 / 4])
    assert mean_iou(iou_per_class(cm)) == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)


def test_ignore_index_and_ignored_background():
    label = np.array([[255, 0, 1, 1],
                      [2, 2, 0, 255]])
    pred = np.array([[1, 1, 1, 0],
                     [2, 1, 2, 2]])
    s = SegmentationScore(["background", "a", "b"], ignore_index=255, ignored_classes=[0])
    s.update(pred, label)
    # counted pixels: label 1 at (0,2) pred 1, (0,3) pred 0; label 2 at (1,0) pred 2, (1,1) pred 1
    # class a: TP 1, FN 1, FP 1 -> 1/3 ; class b: TP 1, FN 1, FP 0 -> 1/2 ; background not evaluated
    iou = s.iou()
    assert iou[1] == pytest.approx(1 / 3) and iou[2] == pytest.approx(1 / 2)
    assert s.miou() == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert s.cm.sum() == 4
    assert s.summary()["per_class"]["background"]["iou"] is None


def test_predicted_ignore_index_is_a_miss():
    cm = confusion_matrix(np.array([255, 1]), np.array([1, 1]), 2)
    assert iou_per_class(cm)[1] == pytest.approx(0.5)


def test_absent_class_is_left_out_of_the_mean():
    label = np.array([0, 0, 1])
    iou = iou_per_class(confusion_matrix(label, label, 4))
    assert iou[0] == 1 and iou[1] == 1 and math.isnan(iou[2]) and math.isnan(iou[3])
    assert mean_iou(iou) == 1.0


def test_accumulated_over_split_not_averaged_per_image():
    s = SegmentationScore(["a", "b"])
    s.update(np.zeros((1, 10), int), np.zeros((1, 10), int))            # image 1: class a perfect (10 px)
    s.update(np.array([[1, 1]]), np.array([[0, 1]]))                     # image 2: a: 0/1, b: 1/2
    iou = s.iou()
    assert iou[0] == pytest.approx(10 / 11)      # TP 10, FN 1
    assert iou[1] == pytest.approx(1 / 2)        # TP 1, FP 1
    per_image = np.mean([1.0, np.mean([0.0, 0.5])])
    assert s.miou() == pytest.approx((10 / 11 + 0.5) / 2) and s.miou() != pytest.approx(per_image)


def test_torch_inputs_and_bad_values():
    cm = confusion_matrix(torch.tensor([[1, 0]]), torch.tensor([[1, 0]]), 2)
    assert cm.sum() == 2 and np.trace(cm[:, :2]) == 2
    with pytest.raises(ValueError, match=r"label values \[7\] are outside the class list 0..2"):
        confusion_matrix(np.array([0]), np.array([7]), 3, name="lab.png")
    with pytest.raises(ValueError, match=r"predicted values \[5\]"):
        confusion_matrix(np.array([5]), np.array([0]), 3)
    with pytest.raises(ValueError, match="differs from label shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
