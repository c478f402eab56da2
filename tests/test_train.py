"""train.py end to end on tiny data (CPU, 32x48 crops, K = 2, a few steps).

The segment cache is written directly (synthetic rectangles) with the manifest that the `tiny` SAM preset
records, so no SAM runs here; SAM's feature extractor has random weights (a warning says so).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch

import train
import training.sage
from SAM.cache_builder import cache_identity
from SAM.settings import sam_settings
from SAM.store import write_entry, write_manifest
from utils.config import load_config

ROOT = Path(__file__).resolve().parents[1]
N_PAIRS = 5  # batch 2 -> 3 batches per epoch (2, 2, 1): an odd count, so no end-of-epoch teacher reuse


def make_dataset(root: Path, n: int = N_PAIRS, size=(48, 64)) -> Path:
    rng = np.random.default_rng(1)
    h, w = size
    for sub in ("Ir", "Vis", "Label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        vis = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        vis = cv2.GaussianBlur(vis, (5, 5), 0)
        ir = cv2.GaussianBlur(rng.integers(0, 255, (h, w), dtype=np.uint8), (7, 7), 0)
        label = np.zeros((h, w), np.uint8)
        label[10:30, 12:40] = 8
        label[30:, :] = 1
        for sub, img in (("Ir", ir), ("Vis", vis), ("Label", label)):
            cv2.imwrite(str(root / sub / f"p{i}.png"), img)
    return root


def write_cache(cfg_sam: dict, root: Path, cache_dir: Path) -> None:
    """A cache whose manifest matches train.py's resolved settings, with 3 rectangle masks per modality."""
    settings = sam_settings(cfg_sam, load_config(ROOT / "configs" / "sam.yaml")["presets"]).settings
    manifest = cache_identity(settings, None)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(cache_dir, manifest)
    for i, f in enumerate(sorted((root / "Ir").iterdir())):
        h, w = cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape[:2]
        masks = []
        for j in range(3):
            m = np.zeros((h, w), bool)
            m[4 * j: 4 * j + 20 + i, 5 * j: 5 * j + 30] = True
            masks.append(m)
        write_entry(cache_dir, f.stem, masks, masks[::-1], h, w, manifest.digest)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = make_dataset(tmp_path_factory.mktemp("train_data"))
    write_cache({"preset": "tiny", "use_mask_num": 2}, root, root / "Mask_cache")
    return root


def args(root: Path, save_dir: Path, *extra: str) -> List[str]:
    return ["--config", str(ROOT / "configs" / "fmb.yaml"), "--root_dir", str(root), "--save_dir", str(save_dir),
            "--batch_size", "2", "--epochs", "2", "--crop_size", "32", "48", "--use_mask_num", "2",
            "--seed", "3", "--set", "data.num_workers=0", "--set", "sam.preset=tiny", "--set", "sam.checkpoint=none",
            "--set", "train.report_freq=2", "--set", "semantic.backend=none", *extra]


def run(root: Path, save_dir: Path, *extra: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train.main(args(root, save_dir, *extra))


def state(path: Path) -> dict:
    return torch.load(str(path), map_location="cpu", weights_only=True)


def params(sd: dict, model) -> dict:
    """Only the parameters (not BatchNorm buffers) of a state_dict."""
    names = {n for n, _ in model.named_parameters()}
    return {k: v for k, v in sd.items() if k in names}


@pytest.mark.slow
def test_schedule_losses_and_outputs(data_root, tmp_path):
    assert run(data_root, tmp_path / "r", "--student_epoch", "2") == 0
    run_dir = tmp_path / "r"
    last = state(run_dir / "last.pt")
    kinds = [(h["epoch"], h["kind"]) for h in last["history"]]
    # Epoch 1 (< student_epoch): every batch trains the teacher. Epoch 2: student on even batches,
    # teacher on odd ones; with an odd batch count the release reuses no batch at the epoch's end.
    assert kinds == [(1, "teacher")] * 3 + [(2, "student"), (2, "teacher"), (2, "student")]
    for h in last["history"]:
        for k, v in h.items():
            if k not in ("kind", "epoch", "step"):
                assert math.isfinite(v), (h["step"], k, v)
    student_terms = [h for h in last["history"] if h["kind"] == "student"][0]
    assert {"fuse", "grad", "contrast", "cos", "total"} <= set(student_terms)
    teacher_terms = last["history"][-2]
    assert {"base", "mutual_cos", "total"} <= set(teacher_terms)
    assert "mutual_cos" not in last["history"][0]  # no mutual term before student_epoch
    assert last["epoch"] == 3 and last["step_in_epoch"] == 0 and last["global_step"] == 6
    for n in (1, 2):
        assert (run_dir / "student" / f"epoch_{n}.pt").is_file()
        assert (run_dir / "teacher" / f"epoch_{n}.pt").is_file()
    assert (run_dir / "loss_curves.png").stat().st_size > 1000
    assert (run_dir / "losses.csv").read_text().count("\n") == 7
    assert "epoch 2 done" in (run_dir / "train.log").read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0}).Reload()
    images, scalars = set(events.Tags()["images"]), set(events.Tags()["scalars"])
    assert {"input/ir", "input/vis", "output/teacher", "output/student", "segments/vm", "segments/im"} <= images
    assert {"student/total", "student/contrast", "student/cos", "teacher/base", "teacher/mutual_cos",
            "lr/student", "lr/teacher"} <= scalars
    assert len(events.Scalars("teacher/total")) == 4


@pytest.mark.slow
def test_each_network_changes_only_on_its_own_steps(data_root, tmp_path):
    from models.student import Student
    from models.teacher import Teacher

    torch.manual_seed(11)
    s0, t0 = Student(), Teacher(mask_channels=2)
    torch.save(s0.state_dict(), tmp_path / "s0.pt")
    torch.save(t0.state_dict(), tmp_path / "t0.pt")
    init = ["--checkpoint_student", str(tmp_path / "s0.pt"), "--checkpoint_teacher", str(tmp_path / "t0.pt")]
    assert run(data_root, tmp_path / "one", *init, "--max_steps", "1") == 0  # update 1: a student step
    assert run(data_root, tmp_path / "two", *init, "--max_steps", "2") == 0  # update 2: a teacher step
    one, two = state(tmp_path / "one" / "last.pt"), state(tmp_path / "two" / "last.pt")
    assert [h["kind"] for h in two["history"]] == ["student", "teacher"]

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    sp0, tp0 = params(s0.state_dict(), s0), params(t0.state_dict(), t0)
    assert not same(params(one["student"], s0), sp0)           # the student step moved the student ...
    assert same(params(one["teacher"], t0), tp0)               # ... and not the teacher
    assert same(params(two["student"], s0), params(one["student"], s0))  # the teacher step left the student
    assert not same(params(two["teacher"], t0), tp0)           # ... and moved the teacher


@pytest.mark.slow
def test_resume_gives_the_same_weights(data_root, tmp_path):
    # 4 updates straight: epoch 1 (3 batches, no reuse with an odd count), then 1 batch of epoch 2.
    assert run(data_root, tmp_path / "straight", "--max_steps", "4") == 0
    # 2 batches, stop mid-epoch, resume from last.pt for the remaining 2.
    assert run(data_root, tmp_path / "split", "--max_steps", "2") == 0
    half = state(tmp_path / "split" / "last.pt")
    assert (half["epoch"], half["step_in_epoch"]) == (1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.main(["--resume", str(tmp_path / "split" / "last.pt"), "--max_steps", "4"]) == 0
    a, b = state(tmp_path / "straight" / "last.pt"), state(tmp_path / "split" / "last.pt")
    assert a["global_step"] == b["global_step"] == 4
    for net in ("student", "teacher"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.allclose(a[net][k].float(), b[net][k].float(), atol=1e-6, rtol=0), (net, k)
    assert [h["kind"] for h in a["history"]] == [h["kind"] for h in b["history"]]


def test_non_finite_loss_stops_with_the_term_and_step(data_root, tmp_path, monkeypatch, capsys):
    real = training.sage.student_loss

    def broken(*a, **k):
        total, terms = real(*a, **k)
        terms["contrast"] = torch.tensor(float("nan"))
        return total, terms

    monkeypatch.setattr(training.sage, "student_loss", broken)
    assert run(data_root, tmp_path / "nan") == 1
    err = capsys.readouterr().err
    assert "'contrast' is nan" in err and "step 1" in err


def test_student_only_mode_and_checkpoint_fuses_with_test_py(data_root, tmp_path, cli):
    fuse_cli = cli

    assert run(data_root, tmp_path / "so", "--set", "train.student_only=true", "--epochs", "1") == 0
    last = state(tmp_path / "so" / "last.pt")
    assert "teacher" not in last and {h["kind"] for h in last["history"]} == {"student"}
    ckpt = tmp_path / "so" / "student" / "epoch_1.pt"
    out = tmp_path / "fused"
    code = fuse_cli.main(["--checkpoint", str(ckpt), "--img_dir", str(data_root), "--save_path", str(out),
                          "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i}.png" for i in range(N_PAIRS)]
    # last.pt itself also loads in test.py (its student is stored under the 'student' key).
    code = fuse_cli.main(["--checkpoint", str(tmp_path / "so" / "last.pt"), "--img_dir", str(data_root),
                          "--save_path", str(tmp_path / "fused2"), "--device", "cpu"])
    assert code == 0


def test_bad_config_and_resume_file_give_one_line(tmp_path, capsys):
    assert train.main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such config file" in capsys.readouterr().err
    bogus = tmp_path / "last.pt"
    torch.save({"a": torch.zeros(1)}, bogus)
    assert train.main(["--resume", str(bogus)]) == 2
    assert "not a train.py last.pt" in capsys.readouterr().err
    assert train.main(["--root_dir", str(tmp_path / "missing"), "--save_dir", str(tmp_path / "run")]) == 1
    assert "missing: no such training folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing is created for a run that cannot start


@pytest.mark.slow
def test_two_process_training_matches_on_both_ranks_and_resumes(data_root, tmp_path):
    """torchrun with Gloo: identical weights on both ranks; rank 0's last.pt resumes in one process."""
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "train.py"), *args(data_root, run_dir, "--max_steps", "3", "--device", "cpu")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads((run_dir / "rank_digests.json").read_text())
    assert len(digests) == 2 and digests[0] == digests[1] and digests[0]["teacher"]
    last = state(run_dir / "last.pt")
    # 5 pairs over 2 ranks: 3 samples each (one padded), 2 batches per rank per epoch: S, T and, with an even
    # count, the last batch reused for a second T; stop after 3 batches: S T T | S.
    assert last["world_size"] == 2 and last["global_step"] == 4
    assert not any(k.startswith("module.") for k in last["student"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert train.main(["--resume", str(run_dir / "last.pt"), "--max_steps", "4", "--device", "cpu"]) == 0
    # One process: 3 batches per epoch; the position (4 samples seen) maps to batch 2, a student step that
    # ends the epoch (an odd count: no reuse): 1 more update.
    assert state(run_dir / "last.pt")["global_step"] == 5


@pytest.mark.slow
def test_ctrl_c_stops_after_the_step_and_resumes(data_root, tmp_path):
    """SIGINT: the current step finishes, last.pt is written, exit code 130; --resume continues from there."""
    import signal
    import time

    run_dir = tmp_path / "int"
    cmd = [sys.executable, str(ROOT / "train.py"), *args(data_root, run_dir, "--epochs", "200",
                                                         "--set", "data.num_workers=1")]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "train.log"
    deadline = time.time() + 300
    # The log's line for update 2 (report_freq 2) comes from inside the loop, where Ctrl-C is handled.
    while time.time() < deadline and not (log.is_file() and "epoch 1 update 2 " in log.read_text()):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "python train.py --resume" in err
    last = state(run_dir / "last.pt")
    assert 2 <= last["global_step"] < 200 * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # finish the epoch the run stopped in (or the next one, at a boundary)
        assert train.main(["--resume", str(run_dir / "last.pt"), "--epochs", str(last["epoch"])]) == 0
    assert state(run_dir / "last.pt")["global_step"] > last["global_step"]


def test_unknown_keys_and_wrong_types_stop_before_any_work(tmp_path, capsys):
    run_dir = tmp_path / "never"
    base = ["--root_dir", str(tmp_path), "--save_dir", str(run_dir)]
    assert train.main(base + ["--set", "train.epoch=1"]) == 2
    assert "error: unknown config key 'train.epoch' (did you mean 'train.epochs'?)" in capsys.readouterr().err
    assert train.main(base + ["--set", "trian.epochs=1"]) == 2
    assert "unknown config key 'trian.epochs' (did you mean 'train.epochs'?)" in capsys.readouterr().err
    assert train.main(base + ["--set", "train.epochs=one"]) == 2
    assert "config key 'train.epochs' expects an integer, got 'one'" in capsys.readouterr().err
    bad = tmp_path / "mine.yaml"
    bad.write_text("data:\n  crop_sise: [64, 64]\n")
    assert train.main(["--config", str(ROOT / "configs" / "fmb.yaml"), "--config", str(bad)] + base) == 2
    assert "mine.yaml: unknown config key 'data.crop_sise' (did you mean 'data.crop_size'?)" in capsys.readouterr().err
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_student_that_never_trained_is_not_exported_and_shipped_files_stay(data_root, tmp_path, caplog):
    shipped = ROOT / "checkpoints" / "sage_student_demo.pt"
    before = shipped.read_bytes()
    target = tmp_path / "exported.pt"
    target.write_bytes(before)
    # epochs (1) ends before student_epoch (2): the student takes no step, so nothing is exported.
    assert run(data_root, tmp_path / "t", "--epochs", "1", "--student_epoch", "2", "--export", str(target)) == 0
    log = (tmp_path / "t" / "train.log").read_text()
    assert "the student takes no step in this run" in log and "student not exported" in log
    assert target.read_bytes() == before and shipped.read_bytes() == before
    # The demo config exports nothing unless asked to (--export).
    cfg = train.build_config(train.parse_args(["--config", str(ROOT / "configs" / "demo.yaml")]), None)
    assert cfg["export"]["student_to"] is None
    # A student that trained is exported when asked.
    assert run(data_root, tmp_path / "s", "--epochs", "1", "--export", str(tmp_path / "new.pt")) == 0
    assert (tmp_path / "new.pt").read_bytes() != before and (tmp_path / "new.pt").stat().st_size > 1000
