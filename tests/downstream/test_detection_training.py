"""A tiny detector trained for a few steps on the demo boxes: the loss falls, resume is exact, weights load strictly."""
from __future__ import annotations

import pytest
import torch

from downstream.detection.dataset import DetectionSet, collate, pair_images_labels
from downstream.detection.labels import M3FD_CLASSES
from downstream.detection.model import (WeightsError, build_detector, load_checkpoint, load_pretrained,
                                        save_checkpoint)
from downstream.detection.training import build_optimizer, fixed_loss, predict, train_step
from scripts import train_detector

IMAGES, BOXES = "data/demo/train/Ir", "data/demo/train/Boxes"
CONFIG = """classes: [People, Car, Bus, Lamp, Motorcycle, Truck]
seed: 0
device: cpu
model: {arch: tiny, min_size: 96, max_size: 128}
train: {epochs: 2, batch_size: 3, optimizer: adamw, lr: 0.003, weight_decay: 0.0001, warmup_steps: 0,
        hflip: 0.5, workers: 0, checkpoint_every: 0}
"""


@pytest.fixture(scope="module")
def data():
    return DetectionSet(pair_images_labels(IMAGES, BOXES).pairs, M3FD_CLASSES, hflip=0.5)


def test_a_few_steps_lower_the_loss_on_the_demo_boxes(data):
    torch.manual_seed(0)
    model = build_detector("tiny", M3FD_CLASSES, 96, 128)
    opt = build_optimizer(model, "adamw", 3e-3, 1e-4)
    idx = [0, 1, 2, 3]
    before = fixed_loss(model, data, idx, torch.device("cpu"))
    images, targets, _ = collate([data[i] for i in idx])
    for step in range(6):
        terms = train_step(model, opt, None, images, targets, torch.device("cpu"), step=step)
        assert set(terms) == {"classification", "bbox_regression", "bbox_ctrness", "total"}
    after = fixed_loss(model, data, idx, torch.device("cpu"))
    assert after < before - 0.2, (before, after)
    out = predict(model, images[:2], torch.device("cpu"))
    assert len(out) == 2 and out[0].xyxy.shape[1] == 4 and out[0].scores is not None
    assert (out[0].labels >= 0).all() and (out[0].labels < 6).all()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(CONFIG)
    return str(path)


def final_weights(run):
    return torch.load(str(run / "detector.pt"), weights_only=True)["model"]


@pytest.fixture(scope="module")
def full_run(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    assert train_detector.main(["--config", config, "--images", IMAGES, "--labels", BOXES, "--out", str(out)]) == 0
    return out


def test_script_trains_and_saves(full_run):
    assert {"last.pt", "detector.pt", "losses.csv", "train.log", "tb"} <= {p.name for p in full_run.iterdir()}
    ckpt = torch.load(str(full_run / "detector.pt"), weights_only=True)
    assert ckpt["loss_after"] < ckpt["loss_before"] and ckpt["steps"] == 4
    assert load_checkpoint(full_run / "detector.pt").arch == "tiny"


def test_interrupted_run_resumes_exactly(config, full_run, tmp_path):
    # stopped after step 1 (mid-epoch), then continued with --resume: ends with identical weights
    part = tmp_path / "part"
    args = ["--config", config, "--images", IMAGES, "--labels", BOXES, "--out", str(part), "--max_steps", "1"]
    assert train_detector.main(args) == 0
    assert not (part / "detector.pt").exists()
    assert train_detector.main(["--resume", str(part / "last.pt")]) == 0
    a, b = final_weights(full_run), final_weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((part / "losses.csv").read_text().splitlines()) == 1 + 4


def test_an_existing_run_is_not_overwritten(config, full_run, capsys):
    before = (full_run / "last.pt").stat().st_mtime_ns
    assert train_detector.main(["--config", config, "--images", IMAGES, "--labels", BOXES,
                                "--out", str(full_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (full_run / "last.pt").stat().st_mtime_ns == before


def test_checkpoint_round_trip_and_strict_weights(tmp_path):
    torch.manual_seed(1)
    model = build_detector("tiny", M3FD_CLASSES, 96, 128)
    save_checkpoint(model, tmp_path / "d.pt")
    back = load_checkpoint(tmp_path / "d.pt")
    assert back.class_names == list(M3FD_CLASSES) and back.arch == "tiny"
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    # a detector state dict with another class count: only the classifier layer is re-initialised
    other = build_detector("tiny", ["a", "b"], 96, 128)
    torch.save(other.net.state_dict(), tmp_path / "coco_like.pth")
    fresh = build_detector("tiny", M3FD_CLASSES, 96, 128)
    what = load_pretrained(fresh, tmp_path / "coco_like.pth")
    assert "cls_logits" in what
    assert torch.equal(fresh.net.backbone.stem[0][0].weight, other.net.backbone.stem[0][0].weight)
    # a missing key is an error naming it
    sd = other.net.state_dict()
    sd.pop("backbone.c5.0.weight")
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=r"missing keys: backbone.c5.0.weight"):
        load_pretrained(build_detector("tiny", M3FD_CLASSES, 96, 128), tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=r"not a detector checkpoint"):
        load_checkpoint(tmp_path / "coco_like.pth")


def test_a_malformed_label_stops_training_before_it_starts(config, tmp_path, capsys):
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(BOXES, labels)
    with open(labels / "train_004.txt", "a") as fh:
        fh.write("9 0.5 0.5 0.1 0.1\n")
    n = len((labels / "train_004.txt").read_text().splitlines())
    assert train_detector.main(["--config", config, "--images", IMAGES, "--labels", str(labels),
                                "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {labels / 'train_004.txt'}, line {n}: class '9' is not an integer in 0..5"]
    assert not (tmp_path / "run").exists()


def test_worker_errors_are_reported_by_their_own_message():
    from torch.utils.data._utils import ExceptionWrapper

    from downstream.detection.labels import LabelError
    try:
        raise LabelError("x.txt, line 3: bad")
    except LabelError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    try:
        wrapped.reraise()
    except LabelError as exc:
        assert train_detector.one_line(exc) == "x.txt, line 3: bad"
