"""training/schedule.py against the release's recorded schedule (fixtures/sage_release/schedule.json),
driven without networks: step order, reuse, scheduler step counts and both learning-rate traces."""
from __future__ import annotations

import json

import pytest
import torch

from training.schedule import (STUDENT, TEACHER, Step, epoch_plan, lr_trace, make_scheduler, plan_string,
                               reuses_last_batch, scheduler_period, update_counts)


@pytest.fixture(scope="module")
def schedule(shared_dir):
    return json.loads((shared_dir / "fixtures" / "sage_release" / "schedule.json").read_text())


def test_examples_of_the_release_order():
    assert plan_string(epoch_plan(3, 1, 1)) == "sts"
    assert epoch_plan(4, 1, 1) == [Step(STUDENT, 0), Step(TEACHER, 1), Step(STUDENT, 2), Step(TEACHER, 3),
                                   Step(TEACHER, 3, reuse=True)]
    assert update_counts(epoch_plan(375, 5, 1)) == {STUDENT: 188, TEACHER: 187}
    assert update_counts(epoch_plan(376, 5, 1)) == {STUDENT: 188, TEACHER: 189}
    assert plan_string(epoch_plan(4, 1, 2)) == "tttt"  # before student_epoch: teacher only, no reuse
    assert plan_string(epoch_plan(4, 3, 2, student_only=True)) == "ssss"
    assert epoch_plan(0, 1, 1) == [] and not reuses_last_batch(0, 1, 1)


def test_step_sequences_equal_the_release(schedule):
    sequences = schedule["sequences"]
    assert len(sequences) >= 2
    for n_text, record in sequences.items():
        n = int(n_text)
        # recorded with epochs = 2 and student_epoch = 2: epoch 1 is before it, epoch 2 from it on
        for epoch, key in ((1, "epoch_lt_student_epoch"), (2, "epoch_ge_student_epoch")):
            plan = epoch_plan(n, epoch, student_epoch=2)
            ref = record[key]
            assert [[s.kind[0], s.batch_index] for s in plan] == [list(x) for x in ref["steps"]], (n, key)
            assert plan_string(plan) == ref["string"]
            assert update_counts(plan) == ref["scheduler_steps"], (n, key)
            assert [s.reuse for s in plan].count(True) == (1 if epoch == 2 and n % 2 == 0 else 0)


@pytest.mark.parametrize("run", ["default_student_epoch_1", "student_epoch_2"])
def test_learning_rate_traces_equal_the_release(schedule, run):
    rec = schedule["lr_runs"][run]
    epochs, n, student_epoch = rec["epochs"], rec["batches_per_epoch"], rec["student_epoch"]
    assert scheduler_period(epochs, n) == rec["T_max"]
    for kind in (TEACHER, STUDENT):
        ref = rec[kind]
        ours = lr_trace(kind, ref["base_lr"], rec["eta_min"], epochs, n, student_epoch)
        assert len(ours) == len(ref["steps"])
        for a, b in zip(ours, ref["steps"]):
            assert (a["step"], a["epoch"], a["batch"]) == (b["step"], b["epoch"], b["batch"])
            assert a["lr_used"] == pytest.approx(b["lr_used"], rel=1e-12, abs=0)
            assert a["lr_after"] == pytest.approx(b["lr_after"], rel=1e-12, abs=0)
            assert a["closed_form_after"] == pytest.approx(b["closed_form_after"], rel=1e-12, abs=0)
        per_epoch = [sum(r["epoch"] == e for r in ours) for e in range(1, epochs + 1)]
        assert per_epoch == ref["steps_per_epoch"]


def test_make_scheduler_is_torchs_cosine_with_a_float_period():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = make_scheduler(opt, scheduler_period(3, 5), 1e-5)
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert sched.T_max == 15.0 and sched.eta_min == 1e-5
    assert scheduler_period(0, 5) == 1.0  # never a zero period
