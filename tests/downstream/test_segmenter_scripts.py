"""scripts/train_segmenter.py and scripts/eval_segmentation.py on the demo data and hand-made label maps."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from data.imageio import read_vis
from scripts import eval_segmentation, train_segmenter
from semantic import SemanticConfigError, build_semantic_loss
from downstream.segmentation.data import read_checked_label

DEMO = "data/demo/train"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("segmenter")
    result = train_segmenter.main(["--root_dir", DEMO, "--out", str(out), "--arch", "tiny", "--steps", "20",
                                   "--crop", "96", "96", "--batch_size", "3", "--lr", "3e-3", "--workers", "0",
                                   "--save_every", "0", "--no_progress"])
    return out, result


def test_training_lowers_the_loss_and_saves(trained):
    out, result = trained
    assert len(result["history"]) == 20
    assert result["loss_after"] < result["loss_before"] - 0.05
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "segmenter.json"} <= {
        p.name for p in out.iterdir()}
    meta = json.loads((out / "segmenter.json").read_text())
    assert meta["steps_done"] == 20 and meta["ignored_classes"] == [0] and len(meta["class_names"]) == 15


def test_checkpoint_loads_as_trained_judge(trained):
    out, result = trained
    loss_fn = build_semantic_loss({"backend": "trained", "model": str(out), "input_size": "native"}, "cpu")
    assert list(loss_fn.parameters()) == []
    # the judge's loss on the VIS images (F = Y) is exactly the script's whole-image training loss
    ys, crcbs, labels = [], [], []
    for i in range(6):
        vis, _ = read_vis(f"{DEMO}/Vis/train_00{i}.png")
        ys.append(torch.from_numpy(vis[0:1]))
        crcbs.append(torch.from_numpy(vis[1:3]))
        labels.append(torch.from_numpy(read_checked_label(f"{DEMO}/Label/train_00{i}.png", 15, 255)))
    loss = loss_fn(torch.stack(ys), torch.stack(crcbs), torch.stack(labels))
    assert loss.item() == pytest.approx(result["loss_after"], rel=1e-4)


def test_trained_judge_rejects_other_class_lists(trained):
    out, _ = trained
    with pytest.raises(SemanticConfigError, match="trained on 15 classes"):
        build_semantic_loss({"backend": "trained", "model": str(out), "class_names": ["a", "b"]}, "cpu")


def test_eval_with_checkpoint(trained, tmp_path, capsys):
    out, _ = trained
    miou = eval_segmentation.main(["--fused_dir", f"{DEMO}/Vis", "--label_dir", f"{DEMO}/Label", "--checkpoint",
                                   str(out), "--out_dir", str(tmp_path / "ev"), "--save_pred_dir",
                                   str(tmp_path / "pred"), "--no_progress"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"mIoU {miou:.2f}"
    assert 0.0 <= miou <= 100.0
    preds = sorted((tmp_path / "pred").iterdir())
    assert len(preds) == 6
    assert not any((cv2.imread(str(p), cv2.IMREAD_UNCHANGED) == 0).any() for p in preds)  # background never predicted
    # re-scoring the written predictions gives the same number
    again = eval_segmentation.main(["--pred_dir", str(tmp_path / "pred"), "--label_dir", f"{DEMO}/Label",
                                    "--out_dir", str(tmp_path / "ev2"), "--no_progress"])
    assert again == pytest.approx(miou, abs=1e-9)


def write_maps(folder, maps):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in maps.items():
        cv2.imwrite(str(folder / f"{name}.png"), np.asarray(arr, np.uint8))


def test_eval_pred_dir_cli_known_answer(tmp_path, repo_root, capsys):
    labels = {"a": [[0, 1, 1], [2, 2, 255]], "b": [[1, 1, 0], [3, 3, 3]]}
    preds = {"a": [[5, 1, 2], [2, 2, 2]], "b": [[1, 1, 1], [3, 3, 1]]}
    write_maps(tmp_path / "lab", labels)
    write_maps(tmp_path / "pred", preds)
    # background (0) and 255 skipped. Road(1): TP 3, FN 1 (a: pred 2), FP 1 (b: label 3 -> 1) -> 3/5
    # Sidewalk(2): TP 2, FP 1 -> 2/3 ; Building(3): TP 2, FN 1 -> 2/3 ; other classes absent
    expected = 100 * (3 / 5 + 2 / 3 + 2 / 3) / 3
    proc = subprocess.run([sys.executable, "scripts/eval_segmentation.py", "--pred_dir", str(tmp_path / "pred"),
                           "--label_dir", str(tmp_path / "lab"), "--out_dir", str(tmp_path / "ev"),
                           "--no_progress"], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"mIoU {expected:.2f}"
    summary = json.loads((tmp_path / "ev" / "miou.json").read_text())
    assert summary["mIoU"] == pytest.approx(expected / 100)
    assert summary["per_class"]["Road"]["iou"] == pytest.approx(3 / 5)
    assert summary["per_class"]["Car"]["iou"] is None
    csv_rows = (tmp_path / "ev" / "per_class_iou.csv").read_text().splitlines()
    assert csv_rows[0].startswith("class,iou_percent") and csv_rows[-1].startswith("mIoU,")

    # with 4 classes the prediction 5 (a valid FMB class above) is outside the list: one-line error, exit 2
    code = eval_segmentation.cli(["--pred_dir", str(tmp_path / "pred"), "--label_dir", str(tmp_path / "lab"),
                                  "--out_dir", str(tmp_path / "ev3"), "--num_classes", "4", "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "predicted values [5]" in err[0]


def test_eval_background_included_and_ignore_index(tmp_path):
    write_maps(tmp_path / "lab", {"x": [[0, 0, 1, 9]]})
    write_maps(tmp_path / "pred", {"x": [[0, 1, 1, 0]]})
    args = ["--pred_dir", str(tmp_path / "pred"), "--label_dir", str(tmp_path / "lab"), "--num_classes", "2",
            "--ignore_index", "9", "--no_progress"]
    # class_0, class_1: no 'background' name, so nothing is skipped but the ignore index
    assert eval_segmentation.main(args + ["--out_dir", str(tmp_path / "e1")]) == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)
    # FMB's list: background (0) evaluated on request, skipped by default
    write_maps(tmp_path / "lab2", {"x": [[0, 0, 1, 255]]})
    fmb = ["--pred_dir", str(tmp_path / "pred"), "--label_dir", str(tmp_path / "lab2"), "--no_progress"]
    assert eval_segmentation.main(fmb + ["--background", "include", "--out_dir", str(tmp_path / "e2")]
                                  ) == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)
    assert eval_segmentation.main(fmb + ["--out_dir", str(tmp_path / "e3")]) == pytest.approx(100.0)
    with pytest.raises(SemanticConfigError, match="--ignore_index 9 is a class index"):
        eval_segmentation.main(fmb + ["--out_dir", str(tmp_path / "e4"), "--ignore_index", "9"])


def test_train_segmenter_cli_errors(tmp_path, capsys):
    assert train_segmenter.cli(["--root_dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nothing'}: no such directory"
    (tmp_path / "r" / "Vis").mkdir(parents=True)
    (tmp_path / "r" / "Label").mkdir()
    cv2.imwrite(str(tmp_path / "r" / "Vis" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "r" / "Label" / "a.png"), np.full((8, 8), 15, np.uint8))
    assert train_segmenter.cli(["--root_dir", str(tmp_path / "r"), "--out", str(tmp_path / "o"),
                                "--arch", "tiny", "--steps", "1", "--workers", "0", "--crop", "8", "8",
                                "--no_progress"]) == 2
    assert "a.png: label values [15] are outside the class list 0..14" in capsys.readouterr().err


def test_eval_errors(tmp_path):
    write_maps(tmp_path / "lab", {"x": [[1, 1]], "y": [[1, 20]]})
    write_maps(tmp_path / "pred", {"x": [[1, 1]]})
    base = ["--label_dir", str(tmp_path / "lab"), "--out_dir", str(tmp_path / "e"), "--no_progress"]
    with pytest.raises(Exception, match="no prediction for 1 of 2 labels"):
        eval_segmentation.main(base + ["--pred_dir", str(tmp_path / "pred")])
    write_maps(tmp_path / "pred", {"y": [[1, 1]]})
    with pytest.raises(Exception, match=r"y.png: label values \[20\] are outside the class list 0..14"):
        eval_segmentation.main(base + ["--pred_dir", str(tmp_path / "pred")])
    with pytest.raises(Exception, match="give --pred_dir, or --fused_dir"):
        eval_segmentation.main(base)


def test_train_from_a_local_pretrained_folder(cityscapes_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "seg"
    train_segmenter.main(["--root_dir", DEMO, "--out", str(out), "--init", str(cityscapes_dir), "--steps", "1",
                          "--crop", "64", "64", "--batch_size", "2", "--workers", "0", "--save_every", "0",
                          "--eval_images", "1", "--no_progress"])
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["id2label"]) == 15 and cfg["id2label"]["8"] == "Person"
    new, old = load_file(str(out / "model.safetensors")), load_file(str(cityscapes_dir / "model.safetensors"))
    assert new["decode_head.classifier.weight"].shape[0] == 15
    # the encoder started from the given weights (one small step later it is close, not re-initialised)
    key = "segformer.encoder.patch_embeddings.0.proj.weight"
    assert (new[key] - old[key]).abs().max() < 0.05 * old[key].abs().max() + 1e-2
