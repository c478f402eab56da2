"""The release's training schedule as pure functions: which network trains on which batch, and the
cosine learning rates (docs/release_differences.md, "Training schedule").

Order of updates in one epoch of `num_batches` batches (epochs are 1-based, batches 0-based):
- before `student_epoch` every batch trains the teacher, nothing is reused;
- from `student_epoch` on, even batch indices train the student and odd ones the teacher; when
  num_batches is even (the epoch ends on a teacher step) the teacher trains once more on the last batch.
  3 batches: s0 t1 s2; 4 batches: s0 t1 s2 t3 t3; 375 batches: 188 student and 187 teacher updates.
- `student_only` runs (this project's option, no teacher) train the student on every batch.

Learning rates: Adam per network with torch's CosineAnnealingLR, T_max = epochs x batches per epoch
(as a float) and eta_min = lr_min, each scheduler stepped once per update of its own network. Each
network therefore sees only part of the period and ends mid-cosine, not at lr_min.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List

import torch

STUDENT, TEACHER = "student", "teacher"


@dataclass(frozen=True)
class Step:
    """One update: `kind` "student" or "teacher" trains on batch `batch_index` of the epoch; `reuse` marks
    the release's extra teacher step on the epoch's last batch (the loop feeds that batch again)."""
    kind: str
    batch_index: int
    reuse: bool = False


def step_kind(batch_index: int, epoch: int, student_epoch: int, student_only: bool = False) -> str:
    """"student" or "teacher": the network batch `batch_index` (0-based) of `epoch` (1-based) trains."""
    if student_only:
        return STUDENT
    if epoch >= student_epoch and batch_index % 2 == 0:
        return STUDENT
    return TEACHER


def reuses_last_batch(num_batches: int, epoch: int, student_epoch: int, student_only: bool = False) -> bool:
    """True when the release gives the teacher one more step on the last batch after the epoch's loop:
    from student_epoch on, when num_batches is even (the loop ended on a teacher step)."""
    return not student_only and epoch >= student_epoch and num_batches > 0 and num_batches % 2 == 0


def epoch_plan(num_batches: int, epoch: int, student_epoch: int, student_only: bool = False) -> List[Step]:
    """Every update of one epoch in order: one Step per batch, then the reuse step when there is one.

    Args:
        num_batches: batches in this epoch (len(loader)).
        epoch: 1-based epoch number.
        student_epoch: first epoch in which the student trains (release default 1).
        student_only: train only the student (no teacher, no reuse).
    Returns:
        list of Step; plan[i] is batch i's update for i < num_batches, and plan[num_batches], when
        present, is the teacher's reuse of batch num_batches - 1.
    """
    if num_batches < 0:
        raise ValueError(f"epoch_plan: num_batches must be >= 0, got {num_batches}")
    plan = [Step(step_kind(i, epoch, student_epoch, student_only), i) for i in range(num_batches)]
    if reuses_last_batch(num_batches, epoch, student_epoch, student_only):
        plan.append(Step(TEACHER, num_batches - 1, reuse=True))
    return plan


def run_plan(num_batches: int, epochs: int, student_epoch: int, student_only: bool = False) -> List[List[Step]]:
    """epoch_plan for epochs 1..epochs (index 0 is epoch 1)."""
    return [epoch_plan(num_batches, e, student_epoch, student_only) for e in range(1, epochs + 1)]


def update_counts(plan: List[Step]) -> Dict[str, int]:
    """{"teacher": n, "student": m}: optimizer and scheduler steps of each network in a plan."""
    return {TEACHER: sum(s.kind == TEACHER for s in plan), STUDENT: sum(s.kind == STUDENT for s in plan)}


def plan_string(plan: List[Step]) -> str:
    """'ststt' style: one letter per update."""
    return "".join(s.kind[0] for s in plan)


def scheduler_period(epochs: int, batches_per_epoch: int) -> float:
    """T_max of both cosine schedules: epochs x batches per epoch (at least 1), as a float like the release."""
    return float(max(1, int(epochs) * int(batches_per_epoch)))


def make_scheduler(optimizer: torch.optim.Optimizer, total_updates: float, lr_min: float
                   ) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """The release's scheduler for one network: CosineAnnealingLR(T_max=total_updates, eta_min=lr_min).

    Pass total_updates = scheduler_period(epochs, len(loader)) for both networks and call
    scheduler.step() right after each optimizer.step() of that network (never once per batch).
    """
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=float(max(1.0, total_updates)),
                                                      eta_min=float(lr_min))


def cosine_lr(base_lr: float, lr_min: float, t: float, t_max: float) -> float:
    """Closed form of the cosine schedule after t scheduler steps: lr_min + (base - lr_min)(1 + cos(pi t / T))/2."""
    return lr_min + (base_lr - lr_min) * (1.0 + math.cos(math.pi * t / t_max)) / 2.0


def lr_trace(kind: str, base_lr: float, lr_min: float, epochs: int, num_batches: int, student_epoch: int,
             student_only: bool = False) -> List[Dict[str, float]]:
    """The learning rates one network sees over a whole run, from a real torch Adam + scheduler on a dummy
    parameter (no network): one row per update of `kind` with step (1-based), epoch, batch, lr_used (the
    lr of that optimizer step), lr_after (get_last_lr() after the scheduler step) and closed_form_after."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=base_lr)
    t_max = scheduler_period(epochs, num_batches)
    sched = make_scheduler(opt, t_max, lr_min)
    rows: List[Dict[str, float]] = []
    for epoch, plan in enumerate(run_plan(num_batches, epochs, student_epoch, student_only), start=1):
        for step in plan:
            if step.kind != kind:
                continue
            used = opt.param_groups[0]["lr"]
            param.grad = torch.ones(1)
            opt.step()
            sched.step()
            n = len(rows) + 1
            rows.append({"step": n, "epoch": epoch, "batch": step.batch_index, "lr_used": used,
                         "lr_after": sched.get_last_lr()[0],
                         "closed_form_after": cosine_lr(base_lr, lr_min, n, t_max)})
    return rows
