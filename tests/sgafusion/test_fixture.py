"""The release fixture, recomputed by conformance.sgafusion_release, passes within its tolerances."""
from __future__ import annotations

import json

import torch

from conformance import detect_kind
from conformance import sgafusion_release as checker
from training.sgafusion_schedule import lr_schedule


def test_fixture_passes(shared_dir, single_thread):
    folder = shared_dir / "fixtures" / "sgafusion_release"
    assert checker.recognise(folder)
    assert detect_kind(folder) == "sgafusion_release"
    results = list(checker.check(folder))
    assert len(results) > 100
    failed = [c.line() for c in results if not c.passed]
    assert not failed, "\n".join(failed)
    names = {c.name for c in results}
    for key in ("outputs.fused", "outputs.seg", "gates.vi.moe1", "cross.attn_vector", "loss.total",
                "classifier.logits", "schedule.stage2_train.lr_per_epoch"):
        assert key in names


def test_other_fixture_kinds_not_recognised(shared_dir, tmp_path):
    assert not checker.recognise(shared_dir / "fixtures" / "sage_release")
    assert not checker.recognise(tmp_path)


def test_schedule_json_from_functions(shared_dir):
    stages = json.loads((shared_dir / "fixtures" / "sgafusion_release" / "schedule.json").read_text())["stages"]
    for stage in stages.values():
        assert lr_schedule(stage["epochs"], stage["base_lr"], stage["compounding"]) == stage["lr_per_epoch"]
        if "lr_per_epoch_if_not_compounding" in stage:
            assert lr_schedule(stage["epochs"], stage["base_lr"]) == stage["lr_per_epoch_if_not_compounding"]


def test_a_wrong_weight_fails(shared_dir, tmp_path, single_thread):
    """The checker notices a changed network: perturb one weight in a copy of the fixture."""
    src = shared_dir / "fixtures" / "sgafusion_release"
    for name in ("classifier.pt", "loss.pt", "schedule.json"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    fx = torch.load(str(src / "net.pt"), weights_only=True)
    fx["state_dict"]["fusion_head.bias"] = fx["state_dict"]["fusion_head.bias"] + 0.01
    torch.save(fx, str(tmp_path / "net.pt"))
    failed = {c.name for c in checker.check(tmp_path) if not c.passed}
    assert "outputs.fused" in failed
    assert "outputs.seg" not in failed
