"""The release's order of student and teacher steps (placeholder until the schedule module lands)."""
from __future__ import annotations

from typing import List, NamedTuple


class Step(NamedTuple):
    batch_index: int
    kind: str          # "student" | "teacher"
    reuse: bool = False


def epoch_plan(num_batches: int, epoch: int, student_epoch: int, student_only: bool = False) -> List[Step]:
    if student_only:
        return [Step(i, "student") for i in range(num_batches)]
    if epoch < student_epoch:
        return [Step(i, "teacher") for i in range(num_batches)]
    steps = [Step(i, "student" if i % 2 == 0 else "teacher") for i in range(num_batches)]
    if num_batches and num_batches % 2 == 0:
        steps.append(Step(num_batches - 1, "teacher", reuse=True))
    return steps
