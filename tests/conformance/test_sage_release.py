"""conformance/sage_release.py and scripts/check_fixture.py on the release's SAGE training fixtures.

Every folder under ../shared/fixtures that the sage_release checker recognises is checked: teacher
(strict load under the release's names, outputs in train and eval mode, base loss, one Adam step, the
multiple-of-16 case), student (outputs, every loss term, gradients, one Adam step, the teacher's mutual
term), the SAM extractor (features, the portrait resize) and the schedule. The parts run as separate
tests to keep each short; the command line is tested on the cheap schedule part.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conformance import detect_kind
from conformance import sage_release


def release_folders(shared: Path):
    root = shared / "fixtures"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and sage_release.recognise(p))
    assert folders, f"{root}: no sage_release fixture folder"
    return folders


@pytest.fixture(scope="module")
def folders(shared_dir):
    return release_folders(shared_dir)


def failures(comparisons):
    return [c.line() for c in comparisons if not c.passed]


def test_recognise(shared_dir, tmp_path, folders):
    assert (shared_dir / "fixtures" / "sage_release") in folders
    assert detect_kind(shared_dir / "fixtures" / "sage_release") == "sage_release"
    assert not sage_release.recognise(tmp_path)
    for other in (shared_dir / "fixtures").iterdir():
        if other.is_dir() and other.name != "sage_release":
            assert not sage_release.recognise(other) or (other / "teacher.pt").is_file()
    # a folder with the files but another format is not ours
    for name in sage_release.FILES:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "schedule.json").write_text(json.dumps({"format": "something-else/1"}))
    assert not sage_release.recognise(tmp_path)


def test_teacher_matches_the_release(folders, single_thread):
    for folder in folders:
        results = list(sage_release.check_teacher(sage_release.load(folder, "teacher.pt")))
        names = [c.name for c in results]
        assert "teacher.state_dict (release names, strict)" in names and "teacher.outputs.train.fused" in names
        assert any(n.startswith("teacher.step.state_dict") for n in names)
        assert len(results) >= 25
        assert not failures(results), failures(results)


def test_student_and_sam_match_the_release(folders, single_thread):
    for folder in folders:
        fx = sage_release.load(folder, "student.pt")
        results = list(sage_release.check_student(fx, sage_release.load(folder, "teacher.pt")))
        names = {c.name for c in results}
        assert {"student.loss.total", "student.loss.DH[0]", "sam.portrait_features[1]",
                "teacher_mutual.teacher_total_without_semantic"} <= names
        # one line per gradient, the 17 BN-fed conv biases (rounding noise only) in one line of their own
        assert sum(n.startswith("student.step.grads") for n in names) == len(fx["step"]["grads"]) - 17 + 1
        assert not failures(results), failures(results)


def test_schedule_matches_the_release(folders):
    for folder in folders:
        results = list(sage_release.check_schedule(json.loads((folder / "schedule.json").read_text())))
        assert len(results) >= 8 and not failures(results), failures(results)


def test_the_projects_earlier_reuse_rule_would_fail(folders, monkeypatch):
    """The check can fail: reusing the last batch after a student step (the project's earlier rule)."""
    from training import schedule

    def earlier(num_batches, epoch, student_epoch, student_only=False):
        return not student_only and epoch >= student_epoch and num_batches % 2 == 1

    monkeypatch.setattr(schedule, "reuses_last_batch", earlier)
    results = list(sage_release.check_schedule(json.loads((folders[0] / "schedule.json").read_text())))
    bad = failures(results)
    assert any("sequence[4 batches]" in line for line in bad) and any("teacher.steps" in line for line in bad)


def test_padding_to_16_would_fail_the_teacher_outputs(folders, single_thread, monkeypatch):
    from conformance.report import compare
    from models.teacher import Teacher

    fx = sage_release.load(folders[0], "teacher.pt")
    teacher = Teacher().eval()
    teacher.load_state_dict(fx["state_dict"], strict=True)
    monkeypatch.setattr(Teacher, "multiple", 16)
    x = fx["inputs"]
    with torch.no_grad():
        fused, _ = teacher(*[x[n] for n in fx["forward_argument_order"]])
    line = compare("teacher.outputs.eval.fused", fused, fx["outputs"]["eval"]["fused"], rtol=sage_release.OUTPUT_RTOL)
    assert not line.passed and line.max_rel > 1e-3


def test_check_fixture_command_line(folders, monkeypatch, capsys, repo_root):
    """scripts/check_fixture.py recognises the kind, prints one line per comparison and PASS (exit 0), or
    FAIL (exit 1). The heavy parts are tested above; here the checker runs its schedule part only."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_fixture_cli", repo_root / "scripts" / "check_fixture.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    schedule_only = lambda folder: sage_release.check_schedule(  # noqa: E731
        json.loads((Path(folder) / "schedule.json").read_text()))
    monkeypatch.setattr(sage_release, "check", schedule_only)
    assert cli.main([str(folders[0])]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("fixture sage_release: ") and out[-1].endswith(": PASS")
    assert all(line.startswith("ok ") for line in out[:-1]) and len(out) >= 9

    from training import schedule
    monkeypatch.setattr(schedule, "reuses_last_batch", lambda *a, **k: False)
    assert cli.main([str(folders[0])]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(": FAIL")
