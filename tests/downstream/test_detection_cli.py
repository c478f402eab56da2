"""scripts/eval_detection.py: scores existing predictions, a trained detector, several methods; its last line."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from downstream.detection.labels import make_boxes, read_yolo, write_yolo
from downstream.detection.model import build_detector, save_checkpoint
from scripts import eval_detection

ROOT = Path(__file__).resolve().parents[2]
TEST_IMAGES, TEST_BOXES = ROOT / "data/demo/test/Ir", ROOT / "data/demo/test/Boxes"


def copy_predictions(src: Path, dst: Path, drop_a_person_of: str = "") -> None:
    """Ground truth of the demo test set as predictions (confidence 0.9), optionally one person missing."""
    dst.mkdir()
    for f in sorted(src.glob("*.txt")):
        b = read_yolo(f, 6, 256, 192)
        if f.stem == drop_a_person_of:
            keep = np.ones(len(b), bool)
            keep[np.flatnonzero(b.labels == 0)[0]] = False
            b = make_boxes(b.xyxy[keep], b.labels[keep])
        b.scores = np.full(len(b), 0.9)
        write_yolo(dst / f.name, b, 256, 192)


def test_perfect_predictions_last_line(tmp_path, capsys):
    copy_predictions(TEST_BOXES, tmp_path / "pred")
    assert eval_detection.cli(["--images", str(TEST_IMAGES), "--labels", str(TEST_BOXES), "--predictions",
                               str(tmp_path / "pred"), "--out_dir", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "mAP50 100.00 mAP50-95 100.00"
    rows = list(csv.DictReader(open(tmp_path / "o" / "detection.csv")))
    assert rows[0]["People_AP50"] == "100.00" and rows[0]["Lamp_AP50"] == "n/a"
    assert (tmp_path / "o" / "detection.md").read_text().startswith("| method | mAP50 | mAP50-95 | People AP50 |")


def test_one_missed_person_lowers_people_ap(tmp_path, capsys):
    copy_predictions(TEST_BOXES, tmp_path / "pred", drop_a_person_of="test_002")
    rows = eval_detection.main(["--images", str(TEST_IMAGES), "--labels", str(TEST_BOXES), "--predictions",
                                str(tmp_path / "pred"), "--out_dir", str(tmp_path / "o")])
    people = rows["predictions"].per_class["People"]
    n = people["gt"]
    # all hits share one score, so the evaluator ranks them together: AP = points with recall <= (n-1)/n
    expected = sum(1 for r in np.linspace(0, 1, 101) if r <= (n - 1) / n + 1e-12) / 101
    assert people["AP50"] == pytest.approx(expected)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("mAP50 ")


def test_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "test_000.txt").write_text("0 0.5 0.5 0.1\n")
    assert eval_detection.cli(["--images", str(TEST_IMAGES), "--labels", str(TEST_BOXES), "--predictions",
                               str(tmp_path / "pred"), "--out_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'pred' / 'test_000.txt'}, line 1: expected 6 values (class cx cy w h conf), " \
                  f"found 4: '0 0.5 0.5 0.1'"
    assert eval_detection.cli(["--labels", str(TEST_BOXES), "--predictions", str(tmp_path / "pred")]) == 2
    assert "needs --images" in capsys.readouterr().err


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("methods")
    torch.manual_seed(0)
    save_checkpoint(build_detector("tiny", ["People", "Car", "Bus", "Lamp", "Motorcycle", "Truck"], 96, 128),
                    tmp / "det.pt")
    vis = tmp / "vis"
    shutil.copytree(ROOT / "data/demo/test/Vis", vis)
    rows = eval_detection.main(["--labels", str(TEST_BOXES), "--methods", f"ir={TEST_IMAGES},vis={vis}",
                                "--checkpoint", str(tmp / "det.pt"), "--out_dir", str(tmp / "o"),
                                "--save_predictions", str(tmp / "p"), "--no_progress"])
    return tmp, rows


def test_checkpoint_and_methods_table_and_plot(methods_run, capsys):
    tmp, rows = methods_run
    assert list(rows) == ["ir", "vis"]
    assert (tmp / "o" / "detection.png").stat().st_size > 1000
    assert [r["method"] for r in csv.DictReader(open(tmp / "o" / "detection.csv"))] == ["ir", "vis"]
    assert sorted(p.name for p in (tmp / "p" / "ir").iterdir()) == ["test_000.txt", "test_001.txt", "test_002.txt"]


def test_methods_last_lines(tmp_path, capsys):
    copy_predictions(TEST_BOXES, tmp_path / "pred")
    save_checkpoint(build_detector("tiny", ["People", "Car", "Bus", "Lamp", "Motorcycle", "Truck"], 64, 96),
                    tmp_path / "det.pt")
    eval_detection.main(["--labels", str(TEST_BOXES), "--methods", f"a={TEST_IMAGES},b={TEST_IMAGES}",
                         "--checkpoint", f"a={tmp_path / 'det.pt'},b={tmp_path / 'det.pt'}",
                         "--out_dir", str(tmp_path / "o"), "--no_progress"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("a mAP50 ") and lines[-1].startswith("b mAP50 ") and lines[-1].count(" ") == 4
    assert lines[-2].split()[1:] == lines[-1].split()[1:]  # same detector, same images


def test_saved_predictions_score_as_the_detector_did(methods_run):
    tmp, rows = methods_run
    again = eval_detection.main(["--images", str(TEST_IMAGES), "--labels", str(TEST_BOXES), "--predictions",
                                 str(tmp / "p" / "ir"), "--out_dir", str(tmp / "o2")])
    assert again["predictions"].mAP50_95 == pytest.approx(rows["ir"].mAP50_95, abs=2e-3)
