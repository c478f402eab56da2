"""data/degradation.py and data/degraded_pairs.py: seeded, bounded, graded degradations and the dataset."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from data.degradation import (DEFAULT_CLASSES, DEGRADATIONS, HAZE_BETA_MAX, HAZE_NEAR, DegradationError, degrade,
                              degrade_pair, get_degradation, level_to_strength, pair_seed, parse_kinds)
from data.degraded_pairs import DegradedPairSet, read_pair_float, read_rgb

KINDS = list(DEGRADATIONS)


def scene(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A textured RGB test image in [0.1, 0.9]: smooth gradients, a bright box and fine texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.3 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    img = np.stack([base, 0.5 + 0.2 * np.cos(xx / 9.0), 0.4 + 0.1 * np.sin(yy / 4.0)], axis=2)
    img[10:25, 20:40] += 0.3
    img += 0.05 * rng.standard_normal(img.shape).astype(np.float32)
    return np.clip(img, 0.1, 0.9).astype(np.float32)


def ir_scene(h: int = 48, w: int = 64) -> np.ndarray:
    return scene(h, w, seed=1).mean(axis=2)


def contrast(x: np.ndarray) -> float:
    return float(x.std())


def gradient_energy(x: np.ndarray) -> float:
    g = x.mean(axis=2) if x.ndim == 3 else x
    return float((np.diff(g, axis=0) ** 2).mean() + (np.diff(g, axis=1) ** 2).mean())


def test_default_classes_are_nine_registered_names_with_clean_first():
    assert len(DEFAULT_CLASSES) == 9 and DEFAULT_CLASSES[0] == "clean"
    assert all(k in DEGRADATIONS for k in DEFAULT_CLASSES)
    assert parse_kinds("haze, blur") == ["haze", "blur"]
    with pytest.raises(DegradationError, match="unknown degradation 'fog'"):
        parse_kinds("haze,fog")
    with pytest.raises(DegradationError, match="twice"):
        parse_kinds(["haze", "haze"])


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_bounded_and_layout_preserved(kind):
    vis, ir = scene(), ir_scene()
    a = degrade_pair(vis, ir, kind, 0.7, seed=5)
    b = degrade_pair(vis, ir, kind, 0.7, seed=5)
    for x, y, src in zip(a, b, (vis, ir)):
        assert x.shape == src.shape and x.dtype == src.dtype
        assert np.array_equal(x, y)
        assert x.min() >= 0.0 and x.max() <= 1.0
    # extreme inputs stay bounded too
    for value in (0.0, 1.0):
        out = degrade(np.full((16, 20, 3), value, np.float32), kind, 1.0, seed=1)
        assert out.min() >= 0.0 and out.max() <= 1.0
    # strength 0 is the identity
    v0, i0 = degrade_pair(vis, ir, kind, 0.0, seed=5)
    assert np.array_equal(v0, vis) and np.array_equal(i0, ir)


@pytest.mark.parametrize("kind", ["rain", "low_light", "blur", "noise", "ir_noise", "ir_stripe"])
def test_random_degradations_depend_on_the_seed(kind):
    img = scene() if get_degradation(kind).target == "vis" else ir_scene()
    assert not np.array_equal(degrade(img, kind, 0.8, seed=1), degrade(img, kind, 0.8, seed=2))


def test_degrade_pair_touches_only_the_target_image():
    vis, ir = scene(), ir_scene()
    v, i = degrade_pair(vis, ir, "haze", 0.5, seed=0)
    assert not np.array_equal(v, vis) and np.array_equal(i, ir)
    v, i = degrade_pair(vis, ir, "ir_low_contrast", 0.5, seed=0)
    assert np.array_equal(v, vis) and not np.array_equal(i, ir)


def test_torch_tensors_and_grey_images_keep_their_form():
    vis = torch.from_numpy(scene().transpose(2, 0, 1)).double()
    ir = torch.from_numpy(ir_scene())
    v, i = degrade_pair(vis, ir, "low_light", 0.6, seed=3)
    assert v.shape == vis.shape and v.dtype == torch.float64 and i.shape == ir.shape
    ref, _ = degrade_pair(scene(), ir_scene(), "low_light", 0.6, seed=3)
    assert np.allclose(v.numpy().transpose(1, 2, 0), ref, atol=1e-6)  # same numbers as the numpy path
    grey = scene().mean(axis=2)
    out = degrade(grey, "haze", 0.5, seed=0)
    assert out.shape == grey.shape
    out = degrade(torch.from_numpy(grey)[None], "rain", 0.5, seed=0)
    assert tuple(out.shape) == (1,) + grey.shape


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(DegradationError, match="strength 1.5 outside"):
        degrade(scene(), "haze", 1.5)
    with pytest.raises(DegradationError, match="float array"):
        degrade((scene() * 255).astype(np.uint8), "haze", 0.5)
    with pytest.raises(DegradationError, match=r"in \[0, 1\]"):
        degrade(scene() * 2, "haze", 0.5)
    with pytest.raises(DegradationError, match="unknown degradation"):
        degrade(scene(), "smoke", 0.5)
    assert level_to_strength(3, 5) == 0.6
    with pytest.raises(DegradationError):
        level_to_strength(6, 5)


def test_haze_follows_the_scattering_model_with_far_rows_at_the_top():
    # With J = 0 and J = 1 (same seed, so the same airlight and depth): I1 - I0 = t, the transmission.
    h, w, s = 40, 30, 0.8
    i0 = degrade(np.zeros((h, w, 3), np.float32), "haze", s, seed=9)
    i1 = degrade(np.ones((h, w, 3), np.float32), "haze", s, seed=9)
    t = (i1 - i0)[:, :, 0]
    depth = -np.log(t) / (HAZE_BETA_MAX * s)
    # a uniform image has no luminance cue: depth grows linearly towards the top row, nearest = HAZE_NEAR
    assert np.allclose(depth[-1], HAZE_NEAR, atol=1e-4)
    assert np.all(np.diff(depth[:, 0]) < 0)
    assert depth.max() <= 1.0 + 1e-4
    # I0 = A (1 - t): the same airlight A everywhere in a channel
    airlight = i0[:, :, 0] / (1 - t + 1e-12)
    assert np.ptp(airlight[:-1]) < 1e-3 and 0.75 < airlight.mean() <= 1.0


def measure(kind: str, strengths, fn):
    vis, ir = scene(), ir_scene()
    out = []
    for s in strengths:
        v, i = degrade_pair(vis, ir, kind, s, seed=11)
        out.append(fn(v if get_degradation(kind).target == "vis" else i, vis if get_degradation(kind).target == "vis" else ir))
    return out


STRENGTHS = [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("kind,fn,direction", [
    ("haze", lambda d, c: contrast(d), -1),                                  # more haze -> lower contrast
    ("low_light", lambda d, c: float(d.mean()), -1),                         # darker
    ("over_exposure", lambda d, c: float(d.mean()), +1),                     # brighter
    ("blur", lambda d, c: gradient_energy(d), -1),                           # fewer edges
    ("noise", lambda d, c: float(((d - c) ** 2).mean()), +1),                # larger error
    ("rain", lambda d, c: float(((d - c) ** 2).mean()), +1),
    ("ir_noise", lambda d, c: float(((d - c) ** 2).mean()), +1),
    ("ir_stripe", lambda d, c: float((d - c).mean(axis=0).std()), +1),       # stronger column pattern
    ("ir_low_contrast", lambda d, c: contrast(d), -1),
])
def test_strength_is_monotonic(kind, fn, direction):
    values = np.array(measure(kind, STRENGTHS, fn))
    steps = np.diff(values) * direction
    assert np.all(steps > 0), f"{kind}: {values}"


def test_pair_seed_is_stable_and_distinguishes_names_and_kinds():
    assert pair_seed(0, "a", "haze") == pair_seed(0, "a", "haze")
    assert len({pair_seed(0, "a", "haze"), pair_seed(0, "b", "haze"), pair_seed(0, "a", "rain"),
                pair_seed(1, "a", "haze")}) == 4


# ---- dataset


@pytest.fixture()
def pair_folder(tmp_path):
    (tmp_path / "Ir").mkdir()
    (tmp_path / "Vis").mkdir()
    for i in range(3):
        vis = (scene(40, 52, seed=i) * 255).round().astype(np.uint8)
        cv2.imwrite(str(tmp_path / "Vis" / f"p{i}.png"), vis[:, :, ::-1])
        cv2.imwrite(str(tmp_path / "Ir" / f"p{i}.png"), (ir_scene(40, 52) * 255).round().astype(np.uint8))
    return tmp_path


def test_readers_give_rgb_in_unit_range(pair_folder):
    rgb = read_rgb(pair_folder / "Vis" / "p0.png")
    expected = (scene(40, 52, seed=0) * 255).round() / 255
    assert rgb.shape == (40, 52, 3) and np.allclose(rgb, expected, atol=1e-6)
    vis, ir, vdt, idt = read_pair_float(pair_folder / "Ir" / "p0.png", pair_folder / "Vis" / "p0.png")
    assert np.array_equal(vis, rgb) and ir.shape == (40, 52) and vdt == np.uint8 and idt == np.uint8


def test_dataset_items_labels_and_reproducibility(pair_folder):
    ds = DegradedPairSet(pair_folder, classes=["clean", "haze", "ir_noise"], crop_size=(32, 48), seed=4,
                         strength_range=(0.5, 1.0))
    assert len(ds) == 3 and ds.names() == ["p0", "p1", "p2"]
    seen = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["vis"].shape == item["vis_clean"].shape == (3, 32, 48)
            assert item["ir"].shape == item["ir_clean"].shape == (1, 32, 48)
            for key in ("vis", "ir", "vis_clean", "ir_clean"):
                assert item[key].dtype == torch.float32 and 0 <= item[key].min() and item[key].max() <= 1
            label = int(item["label"])
            kind = ds.classes[label]
            seen.add(kind)
            same_vis = torch.equal(item["vis"], item["vis_clean"])
            same_ir = torch.equal(item["ir"], item["ir_clean"])
            if kind == "clean":
                assert same_vis and same_ir and float(item["strength"]) == 0.0
            elif kind == "haze":
                assert not same_vis and same_ir and 0.5 <= float(item["strength"]) <= 1.0
            else:
                assert same_vis and not same_ir
    assert seen == {"clean", "haze", "ir_noise"}
    ds.set_epoch(2)
    a, b = ds[1], ds[1]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ds2 = DegradedPairSet(pair_folder, classes=["clean", "haze", "ir_noise"], crop_size=(32, 48), seed=4,
                          strength_range=(0.5, 1.0))
    ds2.set_epoch(2)
    assert all(torch.equal(a[k], ds2[1][k]) for k in a)


def test_dataset_class_weights_and_argument_errors(pair_folder):
    ds = DegradedPairSet(pair_folder, classes=["clean", "blur"], crop_size=(16, 16), class_weights=[0, 1])
    assert all(int(ds[i]["label"]) == 1 for i in range(3))
    with pytest.raises(DegradationError, match="unknown degradation"):
        DegradedPairSet(pair_folder, classes=["clean", "snow"])
    with pytest.raises(DegradationError, match="strength_range"):
        DegradedPairSet(pair_folder, strength_range=(0.8, 0.2))
    with pytest.raises(DegradationError, match="class_weights"):
        DegradedPairSet(pair_folder, classes=["clean", "blur"], class_weights=[1])
    big = DegradedPairSet(pair_folder, crop_size=(64, 64))
    with pytest.raises(Exception, match="smaller than the crop"):
        big[0]


def test_untouched_images_are_exact_copies_even_in_float64():
    vis = scene().astype(np.float64) * 0.999
    ir = torch.from_numpy(ir_scene().astype(np.float64))
    v, i = degrade_pair(vis, ir, "haze", 0.5, seed=0)
    assert torch.equal(i, ir) and i is not ir and i.dtype == torch.float64
    v0, _ = degrade_pair(vis, ir, "haze", 0.0, seed=0)
    assert np.array_equal(v0, vis) and v0 is not vis


def test_labelled_set_reads_a_made_degraded_set(pair_folder, tmp_path):
    from data.degraded_pairs import LabelledPairSet
    from scripts import make_degraded
    out = tmp_path / "made"
    assert make_degraded.main(["--img_dir", str(pair_folder), "--out", str(out), "--classes", "clean,haze,ir_noise",
                               "--strengths", "0.5,1", "--seed", "2"]) == 0
    ds = LabelledPairSet(out / "labels.csv", classes=["clean", "haze", "ir_noise"], crop_size=(32, 48), hflip=0.0)
    assert len(ds) == 3 * (1 + 2 * 2)
    labels = sorted(int(ds[i]["label"]) for i in range(len(ds)))
    assert labels == [0] * 3 + [1] * 6 + [2] * 6
    i = next(k for k, it in enumerate(ds.items) if it[0] == "p1" and it[1] == 1 and it[2] == 1.0)
    item = ds[i]
    assert float(item["strength"]) == 1.0 and item["vis"].shape == (3, 32, 48)
    # the crop of the written haze image equals the same crop of degrade_pair's output (8-bit rounded)
    vis, ir, _, _ = read_pair_float(pair_folder / "Ir" / "p1.png", pair_folder / "Vis" / "p1.png")
    vd, _ = degrade_pair(vis, ir, "haze", 1.0, seed=pair_seed(2, "p1", "haze"))
    full = torch.from_numpy((np.round(vd * 255) / 255).astype(np.float32).transpose(2, 0, 1))
    found = any(torch.allclose(item["vis"], full[:, t:t + 32, l:l + 48], atol=1e-6)
                for t in range(40 - 32 + 1) for l in range(52 - 48 + 1))
    assert found and torch.equal(item["ir"], item["ir_clean"])
    assert len(LabelledPairSet(out / "labels.csv", classes=["clean", "haze", "ir_noise"], include_clean=False)) == 12
    with pytest.raises(DegradationError, match="not in the class list"):
        LabelledPairSet(out / "labels.csv", classes=["clean", "haze"])
