"""SegPairSet (SGAFusion stage 2 data): labelled pairs, ignore_label -> -100, out-of-range labels refused."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from data.imageio import ImageReadError
from data.pairs import PairingError
from training.sgafusion_data import IGNORE_INDEX, SegPairSet


def make(root, label_value: int, with_label: bool = True):
    for sub in ("Ir", "Vis", "Label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / "Ir" / "a.png"), rng.integers(0, 255, (20, 24), dtype=np.uint8))
    cv2.imwrite(str(root / "Vis" / "a.png"), rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
    if with_label:
        label = np.zeros((20, 24), np.uint8)
        label[5:10, 5:10] = label_value
        cv2.imwrite(str(root / "Label" / "a.png"), label)
    return root


def test_items_and_ignored_label(tmp_path):
    ds = SegPairSet(make(tmp_path, 3), num_classes=4, crop_size=(16, 16), hflip=0.0, ignore_label=0)
    item = ds[0]
    assert item["vi"].shape == (3, 16, 16) and item["ir"].shape == (1, 16, 16) and item["label"].shape == (16, 16)
    assert set(np.unique(item["label"].numpy())) <= {IGNORE_INDEX, 3} and (item["label"] == IGNORE_INDEX).any()


def test_out_of_range_label_names_the_file(tmp_path):
    ds = SegPairSet(make(tmp_path, 9), num_classes=4, crop_size=(16, 16), ignore_label=0)
    with pytest.raises(ImageReadError, match=r"a\.png: label values \[9\] are outside the class list 0\.\.3"):
        ds[0]


def test_a_missing_label_is_an_error(tmp_path):
    make(tmp_path, 1, with_label=False)
    (tmp_path / "Label" / "b.png").write_bytes(b"")
    with pytest.raises(PairingError, match="no label for pair 'a'"):
        SegPairSet(tmp_path, num_classes=4)
