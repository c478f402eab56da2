"""scripts/make_demo_data.py reproduces the committed data/demo and makes scenes with the intended content."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
PERSON, CAR, SKY = 8, 9, 7


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_demo_data", ROOT / "scripts" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("demo")
    assert module.main(["--out", str(out)]) == 0
    return out


def files(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_layout(generated):
    expected = [f"test/{d}/test_{i:03d}.png" for d in ("Ir", "Vis") for i in range(3)]
    expected += [f"train/{d}/train_{i:03d}.png" for d in ("Ir", "Label", "Vis") for i in range(6)]
    expected += [f"{s}/Boxes/{s}_{i:03d}.txt" for s, n in (("train", 6), ("test", 3)) for i in range(n)]
    assert files(generated) == sorted(expected)


def test_reproduces_the_committed_demo_pixel_for_pixel(generated):
    assert files(DEMO) == files(generated)
    for rel in files(DEMO):
        if rel.endswith(".txt"):  # box files: byte for byte
            assert (generated / rel).read_bytes() == (DEMO / rel).read_bytes(), rel
            continue
        ours, committed = read(generated / rel), read(DEMO / rel)
        assert ours.dtype == committed.dtype and ours.shape == committed.shape, rel
        assert np.array_equal(ours, committed), rel


def test_two_runs_are_identical(generated, tmp_path):
    spec = importlib.util.spec_from_file_location("make_demo_data2", ROOT / "scripts" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--train", "1", "--test", "0"]) == 0
    assert (tmp_path / "train" / "Vis" / "train_000.png").read_bytes() == \
        (generated / "train" / "Vis" / "train_000.png").read_bytes()


def test_images_and_labels_have_the_intended_content(generated):
    for i in range(6):
        name = f"train_{i:03d}.png"
        ir, vis, lab = (read(generated / "train" / d / name) for d in ("Ir", "Vis", "Label"))
        assert ir.shape == lab.shape == (192, 256) and vis.shape == (192, 256, 3)
        assert ir.dtype == vis.dtype == lab.dtype == np.uint8
        assert set(np.unique(lab)) <= set(range(15)) and len(np.unique(lab)) >= 6  # FMB's 15 classes
        people = lab == PERSON
        assert people.sum() > 50
        y = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY).astype(float)
        irf = ir.astype(float)
        # warm people stand out from their surroundings in IR (grey levels), far less in dark/foggy VIS
        ring = (cv2.dilate(people.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0) & ~people
        ir_contrast = irf[people].mean() - irf[ring].mean()
        vis_contrast = abs(y[people].mean() - y[ring].mean())
        assert ir_contrast > 60 and ir_contrast > 3 * vis_contrast, (name, ir_contrast, vis_contrast)
        # colour exists only in VIS (IR is one channel); texture: windows give VIS buildings fine detail
        assert np.abs(vis[..., 0].astype(int) - vis[..., 2].astype(int)).mean() > 2
        building = cv2.erode((lab == 3).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        lap_vis = np.abs(cv2.Laplacian(y, cv2.CV_64F))[building].mean()
        lap_ir = np.abs(cv2.Laplacian(irf, cv2.CV_64F))[building].mean()
        assert lap_vis > 2 * lap_ir, (name, lap_vis, lap_ir)

def test_night_and_fog_alternate(generated):
    y = [cv2.cvtColor(read(generated / "train" / "Vis" / f"train_{i:03d}.png"), cv2.COLOR_BGR2GRAY).mean()
         for i in range(6)]
    night, fog = y[0::2], y[1::2]
    assert max(night) < 60 < 100 < min(fog)
