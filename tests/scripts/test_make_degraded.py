"""scripts/make_degraded.py: layout, labels, bit depth, resume without overwriting, conflicting settings."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.degradation import degrade_pair, pair_seed
from scripts import make_degraded


@pytest.fixture()
def pairs(tmp_path) -> Path:
    root = tmp_path / "clean"
    rng = np.random.default_rng(0)
    for sub in ("Ir", "Vis"):
        (root / sub).mkdir(parents=True)
    for name in ("a", "b"):
        cv2.imwrite(str(root / "Vis" / f"{name}.png"), rng.integers(30, 220, (24, 32, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "Ir" / f"{name}.png"), rng.integers(30, 220, (24, 32), dtype=np.uint8))
    return root


def labels(out: Path):
    with (out / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


ARGS = ["--classes", "clean,haze,ir_noise", "--strengths", "0.5,1", "--seed", "3"]


def test_layout_labels_and_content(pairs, tmp_path):
    out = tmp_path / "out"
    assert make_degraded.main(["--img_dir", str(pairs), "--out", str(out), *ARGS]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    expected = [f"clean/{d}/{n}.png" for d in ("Ir", "Vis") for n in "ab"]
    expected += [f"{k}/{s}/{d}/{n}.png" for k in ("haze", "ir_noise") for s in ("s0.50", "s1.00")
                 for d in ("Ir", "Vis") for n in "ab"]
    assert files == sorted(expected)
    rows = labels(out)
    assert len(rows) == 2 * (1 + 2 * 2)
    assert {(r["kind"], r["label"]) for r in rows} == {("clean", "0"), ("haze", "1"), ("ir_noise", "2")}
    row = next(r for r in rows if (r["name"], r["kind"], r["strength"]) == ("a", "haze", "1"))
    assert row["seed"] == str(pair_seed(3, "a", "haze")) and row["clean_vis"] == "clean/Vis/a.png"
    # the written haze image is degrade_pair's output rounded to 8 bits; the IR image is the clean one
    vis = cv2.imread(str(pairs / "Vis" / "a.png"))[:, :, ::-1].astype(np.float32) / 255
    ir = cv2.imread(str(pairs / "Ir" / "a.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    vd, _ = degrade_pair(vis, ir, "haze", 1.0, seed=int(row["seed"]))
    written = cv2.imread(str(out / row["vis"]))[:, :, ::-1]
    assert np.array_equal(written, np.round(vd * 255).astype(np.uint8))
    assert np.array_equal(cv2.imread(str(out / row["ir"]), cv2.IMREAD_UNCHANGED),
                          cv2.imread(str(pairs / "Ir" / "a.png"), cv2.IMREAD_UNCHANGED))


def test_resume_keeps_files_and_refuses_other_settings(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    assert make_degraded.main(["--img_dir", str(pairs), "--out", str(out), *ARGS]) == 0
    target = out / "haze" / "s1.00" / "Vis" / "a.png"
    target.write_bytes(b"user's file")  # whatever is there is kept
    before = (out / "labels.csv").read_text()
    assert make_degraded.main(["--img_dir", str(pairs), "--out", str(out), *ARGS]) == 0
    assert target.read_bytes() == b"user's file"
    assert (out / "labels.csv").read_text() == before
    assert "wrote 0 image(s)" in capsys.readouterr().out
    # more strengths extend labels.csv; another seed is refused before anything is written
    assert make_degraded.main(["--img_dir", str(pairs), "--out", str(out), "--classes", "clean,haze,ir_noise",
                               "--strengths", "0.25", "--seed", "3", "--kinds", "haze"]) == 0
    assert len(labels(out)) == 10 + 2
    assert make_degraded.main(["--img_dir", str(pairs), "--out", str(out), *ARGS[:-1], "4"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert make_degraded.main(["--img_dir", str(pairs), "--out", str(out), "--kinds", "rain", *ARGS]) == 2
    assert "not in the class list" in capsys.readouterr().err


def test_sixteen_bit_and_grey_inputs_keep_their_form(tmp_path):
    root = tmp_path / "in"
    for sub in ("Ir", "Vis"):
        (root / sub).mkdir(parents=True)
    cv2.imwrite(str(root / "Vis" / "g.png"), np.full((16, 16), 30000, np.uint16))
    cv2.imwrite(str(root / "Ir" / "g.png"), np.full((16, 16), 120, np.uint8))
    cv2.imwrite(str(root / "Vis" / "bad.png"), np.zeros((16, 16), np.uint8))
    (root / "Ir" / "bad.png").write_bytes(b"broken")
    out = tmp_path / "out"
    assert make_degraded.main(["--img_dir", str(root), "--out", str(out), "--classes", "clean,haze",
                               "--strengths", "1"]) == 1  # the broken pair fails, the other is written
    vis = cv2.imread(str(out / "haze" / "s1.00" / "Vis" / "g.png"), cv2.IMREAD_UNCHANGED)
    assert vis.dtype == np.uint16 and vis.shape == (16, 16) and vis.mean() > 30000
    assert {r["name"] for r in labels(out)} == {"g"}
