"""The loss weights of docs/sage.md#losses, overridable from the config's `loss:` section."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

# Keys of the `loss:` section that are not weights and are read elsewhere (train.py).
OTHER_LOSS_KEYS = ("contrast_mask",)


@dataclass(frozen=True)
class LossWeights:
    """Every constant of the SAGE losses; the defaults are the release's.

    Losses.cal(out, Y, IR, ref, VM, IM), used for the student and in the teacher's mutual term:
        fuse     = fuse_y MSE(out,Y) + fuse_ir MSE(out,IR) + fuse_ref MSE(out,ref)
        grad     = grad_src G(out;Y,IR) + grad_ref G(out;ref,ref)
        contrast = CR(out,Y,IR,ref,VM,IM) / contrast_div
        cal      = w_fuse fuse + w_grad grad + w_contrast contrast
    student = cal + w_cos Cos(student taps, teacher taps)
    teacher = teacher_y MSE(F_t,Y) + teacher_ir MSE(F_t,IR) + teacher_grad G(F_t;Y,IR)
              [+ mutual cal(F_t,...,ref=F_s) + mutual_cos Cos(teacher taps, student taps)]
    """

    fuse_y: float = 3.0
    fuse_ir: float = 2.0
    fuse_ref: float = 4.0
    grad_src: float = 9.0
    grad_ref: float = 3.0
    contrast_div: float = 3000.0
    w_fuse: float = 3.0
    w_grad: float = 3.0
    w_contrast: float = 1.0
    w_cos: float = 0.3
    teacher_y: float = 1.0
    teacher_ir: float = 1.0
    teacher_grad: float = 2.0
    mutual: float = 0.1
    mutual_cos: float = 0.01

    @classmethod
    def from_config(cls, section: Optional[Mapping[str, Any]], other_keys: Iterable[str] = OTHER_LOSS_KEYS
                    ) -> "LossWeights":
        """Defaults overridden by the numeric keys of a config's `loss:` mapping.

        Keys in `other_keys` are skipped; any other unknown key or non-numeric value raises
        ValueError naming it, so a typo does not silently leave a default in place.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for key, value in (section or {}).items():
            if key in other_keys:
                continue
            if key not in names:
                raise ValueError(f"config loss.{key}: unknown loss key; weights are {sorted(names)}, "
                                 f"other keys {sorted(other_keys)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"config loss.{key}: expected a number, got {value!r}")
            values[key] = float(value)
        if values.get("contrast_div", 1.0) == 0:
            raise ValueError("config loss.contrast_div: must not be 0 (set loss.w_contrast: 0 to drop the triplet loss)")
        return cls(**values)
