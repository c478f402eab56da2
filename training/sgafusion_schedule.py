"""SGAFusion's per-epoch learning rates and gradient clipping (docs/sgafusion.md, "Training").

The rule of all three release training scripts, for epoch e (0-based) of E: the lr stays at its base
value while e < E // 2; from e = E // 2 on it is X * (E - e) / (E - E // 2), where X is the base lr.
The release's stages 2 and 3 use the *previous epoch's* lr as X, so the decay compounds (stage 2 ends
at 1.75e-13); that is kept behind `compounding=True` and is off by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional

import torch


@dataclass(frozen=True)
class StageDefaults:
    """The release's numbers for one training stage."""
    script: str
    epochs: int
    base_lr: float
    batch_size: int
    amp: bool
    grad_clip: Optional[float]
    release_compounding: bool


# Stage names follow the code's order (the release README swaps the names of stages 2 and 3).
RELEASE_STAGES = {
    "stage1_cue": StageDefaults("lora_clip.py", 20, 5e-3, 128, False, None, False),
    "stage2_joint": StageDefaults("train.py", 50, 1e-3, 1, True, 1.0, True),
    "stage3_finetune": StageDefaults("train_funtune.py", 20, 1e-4, 1, True, None, True),
}


def lr_at_epoch(epoch: int, epochs: int, base_lr: float, compounding: bool = False,
                previous_lr: Optional[float] = None) -> float:
    """The lr of `epoch` (0-based) of `epochs`; with `compounding`, X = `previous_lr` (default base_lr)."""
    if not 0 <= epoch < epochs:
        raise ValueError(f"training/sgafusion_schedule.py: epoch {epoch} outside 0..{epochs - 1}")
    half = epochs // 2
    if epoch < half:
        return base_lr
    x = previous_lr if (compounding and previous_lr is not None) else base_lr
    return x * (epochs - epoch) / (epochs - half)


def lr_schedule(epochs: int, base_lr: float, compounding: bool = False) -> List[float]:
    """Per-epoch lr for all `epochs` (the release's schedule.json `lr_per_epoch` with the same flag)."""
    out: List[float] = []
    for e in range(epochs):
        out.append(lr_at_epoch(e, epochs, base_lr, compounding, out[-1] if out else base_lr))
    return out


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set `lr` on every parameter group (done at the start of each epoch)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: Optional[float],
                   optimizer: Optional[torch.optim.Optimizer] = None,
                   scaler: Optional["torch.amp.GradScaler"] = None,
                   release_scaled_clipping: bool = False) -> Optional[torch.Tensor]:
    """Clip the gradient norm to `max_norm` (None: no clipping); returns the norm before clipping.

    Call between `scaler.scale(loss).backward()` and `scaler.step(optimizer)`. With an enabled AMP
    `scaler`, the gradients are unscaled first (`scaler.unscale_(optimizer)`), so the limit applies to
    the true gradient. `release_scaled_clipping=True` reproduces the release: it clips the *scaled*
    gradients, which bounds the true gradient norm by max_norm / scale (1.5e-5 at scale 65536).
    """
    if max_norm is None:
        return None
    params = [p for p in parameters if p.grad is not None]
    if scaler is not None and scaler.is_enabled() and not release_scaled_clipping:
        if optimizer is None:
            raise ValueError("training/sgafusion_schedule.py: unscaling AMP gradients needs the optimizer")
        scaler.unscale_(optimizer)
    return torch.nn.utils.clip_grad_norm_(params, max_norm)
