"""One line per compared tensor: the result type every fixture checker returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Comparison:
    """`ours` against the fixture's `name`: max |ours - ref| and that divided by max |ref|.

    A comparison passes when max_abs <= atol + rtol * max|ref| (both tolerances come from the fixture's
    README, per kind of tensor); shape mismatches fail with `note` saying so.
    """
    name: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    scale: float = 0.0
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.note and self.max_abs <= self.atol + self.rtol * self.scale

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        detail = self.note or (f"max abs {self.max_abs:.3e}  max rel {self.max_rel:.3e}  "
                               f"(tol abs {self.atol:.1e} + rel {self.rtol:.1e})")
        return f"{status} {self.name:<48s} {detail}"


def compare(name: str, ours: Any, ref: Any, atol: float = 0.0, rtol: float = 0.0) -> Comparison:
    """Compare tensors (or numbers, or lists of numbers); relative difference = max abs / max |ref|."""
    a = torch.as_tensor(ours).detach().double().cpu()
    b = torch.as_tensor(ref).detach().double().cpu()
    if a.shape != b.shape:
        return Comparison(name, float("inf"), float("inf"), atol, rtol,
                          note=f"shape {tuple(a.shape)} != fixture {tuple(b.shape)}")
    if a.numel() == 0:
        return Comparison(name, 0.0, 0.0, atol, rtol)
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    if not (torch.isfinite(a).all() or not torch.isfinite(b).all()):
        return Comparison(name, float("inf"), float("inf"), atol, rtol, scale, note="non-finite values")
    return Comparison(name, diff, rel, atol, rtol, scale)
