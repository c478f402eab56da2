"""data/dataset.py: the segmentation-aware crop, the shared flip, the label quirk switch, reproducibility."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from data.dataset import FusionTrainSet, label_bbox_crop
from data.imageio import ImageReadError


def test_crop_stays_inside_the_grown_label_box():
    label = np.zeros((100, 120), np.int64)
    label[40:50, 60:70] = 5  # a 10x10 object; crop 20x30 -> box grown around it
    for seed in range(50):
        top, left = label_bbox_crop(label, (20, 30), np.random.default_rng(seed))
        assert 0 <= top and top + 20 <= 100 and 0 <= left and left + 30 <= 120
        # the crop always covers part of the object, and lies in the box grown about its centre
        assert 30 <= top <= 40 and 50 <= left <= 60
    # next to the border, the box is shifted inside the image
    edge = np.zeros((100, 120), np.int64)
    edge[0:4, 0:4] = 1
    for seed in range(20):
        top, left = label_bbox_crop(edge, (20, 30), np.random.default_rng(seed))
        assert (top, left) == (0, 0)


def test_no_labelled_pixel_gives_a_plain_random_crop():
    label = np.zeros((60, 80), np.int64)
    corners = {label_bbox_crop(label, (20, 20), np.random.default_rng(s)) for s in range(200)}
    tops = {t for t, _ in corners}
    lefts = {l for _, l in corners}
    assert min(tops) == 0 and max(tops) == 40 and min(lefts) == 0 and max(lefts) == 60


def write_triplet(root: Path, name: str, h: int = 40, w: int = 56, label_value: int = 3):
    for sub in ("Ir", "Vis", "Label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    xs = np.tile(np.arange(w, dtype=np.uint8) * 4, (h, 1))  # left-right ramp: a flip is visible
    cv2.imwrite(str(root / "Ir" / f"{name}.png"), xs)
    cv2.imwrite(str(root / "Vis" / f"{name}.png"), np.dstack([xs, xs, xs]))
    lab = np.zeros((h, w), np.uint8)
    lab[10:30, 5:25] = label_value
    cv2.imwrite(str(root / "Label" / f"{name}.png"), lab)


def segments_from_ramp(name, ir, y):
    """A stand-in segment provider: K = 2 planes that are functions of the image columns."""
    vm = np.stack([y, 1 - y]).astype(np.float32)
    im = np.stack([ir, ir * 0.5]).astype(np.float32)
    return vm, im, (vm > 0.5).astype(np.float32), (im > 0.25).astype(np.float32)


def test_same_crop_and_flip_for_every_plane(tmp_path):
    write_triplet(tmp_path, "a")
    ds = FusionTrainSet(tmp_path, crop_size=(16, 24), seed=0, hflip=0.5, segments=segments_from_ramp)
    flips = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        ir, y, lab = item["ir"][0].numpy(), item["y"][0].numpy(), item["label"].numpy()
        assert ir.shape == (16, 24) and item["vm"].shape == (2, 16, 24) and lab.dtype == np.int64
        np.testing.assert_allclose(y, ir, atol=1 / 255)  # gray VIS == IR everywhere: same window
        np.testing.assert_allclose(item["vm"][0].numpy(), y, atol=1e-6)
        np.testing.assert_allclose(item["im"][1].numpy(), ir * 0.5, atol=1e-6)
        flipped = ir[0, 0] > ir[0, -1]  # the ramp runs right-to-left after a flip
        flips.add(bool(flipped))
        # the label went through the same window and flip: its object pixels match the known rectangle
        assert set(np.unique(lab)) <= {0, 3} and (lab == 3).any()
    assert flips == {True, False}


def test_epoch_and_index_fix_the_crop(tmp_path):
    for n in ("a", "b"):
        write_triplet(tmp_path, n)
    ds = FusionTrainSet(tmp_path, crop_size=(16, 24), seed=7)
    ds.set_epoch(3)
    first = [ds[i]["ir"].clone() for i in range(2)]
    ds.set_epoch(4)
    ds[0]
    ds.set_epoch(3)
    again = [ds[i]["ir"] for i in range(2)]
    assert all((a == b).all() for a, b in zip(first, again))


def test_official_label_scaling_reproduces_the_release_bug(tmp_path):
    write_triplet(tmp_path, "a", label_value=14)
    fixed = FusionTrainSet(tmp_path, crop_size=(16, 24), seed=1)[0]["label"]
    quirk = FusionTrainSet(tmp_path, crop_size=(16, 24), seed=1, official_label_scaling=True)[0]["label"]
    assert fixed.max() == 14
    assert quirk.abs().sum() == 0  # k/255 -> long() is 0 for every class


def test_image_smaller_than_the_crop_names_the_file(tmp_path):
    write_triplet(tmp_path, "a", h=10, w=12)
    ds = FusionTrainSet(tmp_path, crop_size=(16, 24))
    with pytest.raises(ImageReadError, match=r"a\.png: image 12x10 is smaller than the crop 24x16"):
        ds[0]


def test_colour_visualisation_label_is_refused(tmp_path):
    write_triplet(tmp_path, "a")
    vis_label = np.zeros((40, 56, 3), np.uint8)
    vis_label[10:30, 5:25] = (128, 64, 0)  # a palette colour, not a class index
    cv2.imwrite(str(tmp_path / "Label" / "a.png"), vis_label)
    ds = FusionTrainSet(tmp_path, crop_size=(16, 24))
    with pytest.raises(ImageReadError, match=r"a\.png: a colour image, not a map of class indices"):
        ds[0]


def test_crop_switch_uniform_ignores_the_label(tmp_path):
    """data.crop: uniform (the release in effect) reaches every position; label_box stays near the object."""
    write_triplet(tmp_path, "a", h=40, w=56)  # object at rows 10:30, cols 5:25
    corners = {}
    for mode in ("uniform", "label_box"):
        ds = FusionTrainSet(tmp_path, crop_size=(8, 8), seed=3, hflip=0.0, crop=mode)
        seen = set()
        for epoch in range(150):
            ds.set_epoch(epoch)
            item = ds[0]
            left = int(round(float(item["ir"][0, 0, 0]) * 255 / 4))  # the ramp gives the column
            seen.add(left)
            assert item["ir"].shape == (1, 8, 8)
        corners[mode] = seen
    assert max(corners["label_box"]) <= 25 - 8 and min(corners["label_box"]) >= 5
    assert max(corners["uniform"]) > 40 and min(corners["uniform"]) < 5
    with pytest.raises(ValueError, match="data.crop"):
        FusionTrainSet(tmp_path, crop_size=(8, 8), crop="centre")


def test_uniform_crop_covers_the_whole_image():
    from data.dataset import uniform_crop
    corners = {uniform_crop((30, 40), (10, 10), np.random.default_rng(s)) for s in range(400)}
    assert {t for t, _ in corners} == set(range(21)) and {l for _, l in corners} == set(range(31))
