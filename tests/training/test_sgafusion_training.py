"""SGAFusion's three stages through train.py: the demo configs on tiny crops, chained stage to stage;
resume from last.pt, checkpoints that reload with weights_only=True, strict configs, the per-epoch lr."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train
from models.sgafusion.engine import load_sgafusion_file
from training.sgafusion_schedule import lr_schedule

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo" / "train"
SMALL = ["--set", "data.crop_size=[32, 32]", "--set", "train.epochs=1", "--set", "train.report_freq=1"]


def run_stage(n: int, save_dir: Path, *extra: str) -> int:
    return train.main(["--config", str(ROOT / "configs" / "sgafusion" / f"demo_stage{n}.yaml"),
                       "--root_dir", str(DEMO), "--save_dir", str(save_dir), *SMALL, *extra])


def rows(run: Path):
    import csv
    with (run / "losses.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sgafusion_runs")


# Stage 1 -> 2 -> 3 on the demo data, each on 32x32 crops for one epoch (one fixture per stage, so each
# test pays for one stage).
@pytest.fixture(scope="module")
def stage1(runs_dir, single_thread):
    assert run_stage(1, runs_dir, "--save", "s1", "--set", "train.batch_size=2") == 0
    return runs_dir / "s1"


@pytest.fixture(scope="module")
def stage2(runs_dir, stage1):
    assert run_stage(2, runs_dir, "--save", "s2", "--set", f"init.checkpoint={stage1 / 'sgafusion' / 'epoch_1.pt'}",
                     "--set", "train.batch_size=3") == 0
    return runs_dir / "s2"


@pytest.fixture(scope="module")
def stage3(runs_dir, stage2):
    assert run_stage(3, runs_dir, "--save", "s3", "--set", f"init.checkpoint={stage2 / 'sgafusion' / 'epoch_1.pt'}",
                     "--set", "train.batch_size=3") == 0
    return runs_dir / "s3"


@pytest.fixture
def stages(stage1, stage2, stage3):
    return {1: stage1, 2: stage2, 3: stage3}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_each_stage_trains_its_network_and_writes_loadable_checkpoints(n, request):
    run = request.getfixturevalue(f"stage{n}")
    kind, terms = {1: ("cue", {"ce", "accuracy"}), 2: ("fusion", {"ce", "fusion", "L_max", "L_color", "L_grad"}),
                   3: ("fusion", {"fusion", "L_max", "L_color", "L_grad"})}[n]
    history = rows(run)
    assert len(history) == (3 if n == 1 else 2) and {r["kind"] for r in history} == {kind}
    assert terms <= set(history[0])
    obj = torch.load(run / "sgafusion" / "epoch_1.pt", map_location="cpu", weights_only=True)
    assert obj["stage"] == {1: "cue", 2: "joint", 3: "finetune"}[n] and obj["model_config"]["dehaze_pool"] == 4
    net, cue, info = load_sgafusion_file(run / "sgafusion" / "epoch_1.pt")
    assert info["variant"] == "working" and net.seg_head.out_channels == 15


def test_stages_hand_their_weights_on(stages):
    def load(n):
        return torch.load(stages[n] / "sgafusion" / "epoch_1.pt", map_location="cpu", weights_only=True)
    s1, s2, s3 = load(1), load(2), load(3)
    lora = [k for k in s1["cue"] if "lora_" in k]
    assert lora and all(torch.equal(s1["cue"][k], s2["cue"][k]) for k in s1["cue"])  # stage 2: the frozen stage-1 cue
    assert all(torch.equal(s2["cue"][k], s3["cue"][k]) for k in s2["cue"])
    changed = [k for k in s2["net"] if not torch.equal(s2["net"][k], s3["net"][k])]
    assert changed and len(changed) < len(s2["net"]) + 1  # stage 3 starts from stage 2's network and moves it
    assert not all(torch.equal(s1["net"][k], s2["net"][k]) for k in s1["net"])  # stage 2 trained the network


def test_resume_continues_where_max_steps_stopped(tmp_path, stages, single_thread):
    init = f"init.checkpoint={stages[1] / 'sgafusion' / 'epoch_1.pt'}"
    args = ["--set", init, "--set", "train.batch_size=2", "--set", "train.epochs=2"]
    assert run_stage(2, tmp_path, "--save", "r", *args, "--set", "train.max_steps=2") == 0
    state = torch.load(tmp_path / "r" / "last.pt", map_location="cpu", weights_only=True)
    assert state["method"] == "sgafusion" and state["global_step"] == 2 and state["step_in_epoch"] == 2
    assert not (tmp_path / "r" / "sgafusion" / "epoch_1.pt").exists()
    assert train.main(["--resume", str(tmp_path / "r" / "last.pt"), "--set", "train.max_steps=null"]) == 0
    history = rows(tmp_path / "r")
    assert [int(r["step"]) for r in history] == list(range(1, 7))  # 3 batches x 2 epochs, none repeated
    assert [int(r["epoch"]) for r in history] == [1, 1, 1, 2, 2, 2]
    assert (tmp_path / "r" / "sgafusion" / "epoch_2.pt").is_file()


def test_export_writes_only_when_asked(tmp_path, stages, single_thread):
    target = tmp_path / "exported.pt"
    init = f"init.checkpoint={stages[2] / 'sgafusion' / 'epoch_1.pt'}"
    assert run_stage(3, tmp_path, "--save", "e", "--set", init, "--set", "train.batch_size=3") == 0
    assert not target.exists()
    assert run_stage(3, tmp_path, "--save", "e2", "--set", init, "--set", "train.batch_size=3",
                     "--export", str(target)) == 0
    exported = torch.load(target, map_location="cpu", weights_only=True)
    last = torch.load(tmp_path / "e2" / "sgafusion" / "epoch_1.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(exported["net"][k], last["net"][k]) for k in last["net"])
    assert any(not k.startswith("head.") and "lora_" not in k for k in exported["cue"])  # tiny tower included


def test_strict_config_and_stage_checks(tmp_path, capsys):
    assert run_stage(1, tmp_path, "--set", "train.epoch=3") == 2
    assert "unknown config key 'train.epoch'" in capsys.readouterr().err
    assert run_stage(1, tmp_path, "--set", "stage=dehaze") == 2
    assert "stage" in capsys.readouterr().err
    assert run_stage(1, tmp_path, "--set", "cue.hidden=16") == 2
    assert "cue.hidden" in capsys.readouterr().err


def test_release_numbers_fill_null_train_keys():
    args = train.parse_args(["--config", str(ROOT / "configs" / "sgafusion" / "stage2_joint.yaml")])
    cfg = train.build_config(args, None)
    assert (cfg["train"]["epochs"], cfg["train"]["batch_size"], cfg["train"]["lr"]) == (50, 1, 1e-3)
    assert cfg["train"]["amp"] is True and cfg["train"]["grad_clip"] == 1.0
    args = train.parse_args(["--config", str(ROOT / "configs" / "sgafusion" / "stage1_cue.yaml")])
    cfg = train.build_config(args, None)
    assert (cfg["train"]["epochs"], cfg["train"]["batch_size"], cfg["train"]["lr"]) == (20, 128, 5e-3)
    assert cfg["train"]["grad_clip"] == 0.0 and cfg["train"]["amp"] is False


def test_lr_is_set_per_epoch_without_compounding(tmp_path, stages, single_thread):
    init = f"init.checkpoint={stages[1] / 'sgafusion' / 'epoch_1.pt'}"
    assert run_stage(2, tmp_path, "--save", "lr", "--set", init, "--set", "train.batch_size=3",
                     "--set", "train.epochs=4", "--set", "data.crop_size=[16, 16]") == 0
    import csv
    import math
    with (tmp_path / "lr" / "losses.csv").open() as fh:
        history = list(csv.DictReader(fh))
    assert len(history) == 8
    state = torch.load(tmp_path / "lr" / "last.pt", map_location="cpu", weights_only=True)
    lrs = state["sched_fusion"]["lrs"]
    assert lrs == pytest.approx(lr_schedule(4, 1e-3)) and lrs[-1] == pytest.approx(0.5e-3)
    assert math.isclose(state["opt_fusion"]["param_groups"][0]["lr"], lr_schedule(4, 1e-3)[-1])
