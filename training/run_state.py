"""The resumable state of a training run (last.pt) and the end-of-run check of distributed replicas.

last.pt holds the config, the position (epoch, batch in epoch, update count), every network with its
optimiser and scheduler (keys `<name>`, `opt_<name>`, `sched_<name>`), the random generators and the
loss history. The position in an epoch is stored as a count of batches of `batch_size x world_size`
samples, so a run resumes on any number of processes. See docs/training.md.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from utils.run_state import rng_state, save_atomic, set_rng_state

FORMAT = "sage-train-state-v1"
log = logging.getLogger("sage.train")


@dataclass
class Progress:
    """Where a run stands: the next epoch and batch to run, and what has been done so far."""
    epoch: int = 1
    step_in_epoch: int = 0      # batches of this epoch already done (by this process count)
    global_step: int = 0        # optimiser updates (both networks together)
    batches_done: int = 0       # loader batches consumed (what max_steps counts)
    history: List[Dict[str, Any]] = field(default_factory=list)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net


def save_last(path: Path, cfg: Dict[str, Any], progress: Progress, trainer, batch_size: int, world_size: int) -> None:
    state: Dict[str, Any] = {
        "format": FORMAT, "method": trainer.method, "config": cfg, "epoch": progress.epoch,
        "step_in_epoch": progress.step_in_epoch, "global_step": progress.global_step,
        "batches_done": progress.batches_done, "world_size": world_size, "batch_size": batch_size,
        "rng": rng_state(), "history": progress.history,
    }
    for name, net in trainer.networks.items():
        opt, sched = trainer.optimisers[name]
        state.update({name: unwrap(net).state_dict(), f"opt_{name}": opt.state_dict(),
                      f"sched_{name}": sched.state_dict()})
    save_atomic(state, path)


def restore(resumed: Dict[str, Any], trainer, batch_size: int, world_size: int) -> Progress:
    """Load networks, optimisers, schedulers and generators from a last.pt; return where to continue."""
    for name, net in trainer.networks.items():
        opt, sched = trainer.optimisers[name]
        state, opt_state = resumed[name], resumed[f"opt_{name}"]
        if trainer.method == "sage" and name == "teacher":
            state, opt_state = legacy_teacher(resumed, unwrap(net))
        unwrap(net).load_state_dict(state)
        opt.load_state_dict(opt_state)
        sched.load_state_dict(resumed[f"sched_{name}"])
    set_rng_state(resumed["rng"])
    samples = int(resumed["step_in_epoch"]) * int(resumed["batch_size"]) * int(resumed["world_size"])
    position = samples // (batch_size * world_size)
    if position * batch_size * world_size != samples:
        log.warning("resuming with another process count: position rounded down to batch %d", position)
    return Progress(epoch=int(resumed["epoch"]), step_in_epoch=position, global_step=int(resumed["global_step"]),
                    batches_done=int(resumed["batches_done"]), history=list(resumed.get("history", [])))


def legacy_teacher(resumed: Dict[str, Any], teacher: torch.nn.Module):
    """A SAGE teacher and its Adam state from a last.pt written before the teacher took the release's names."""
    from models.teacher import convert_legacy_teacher_optimizer_state, convert_legacy_teacher_state

    state, converted = convert_legacy_teacher_state(resumed["teacher"])
    opt_state = resumed["opt_teacher"]
    if converted:
        opt_state = convert_legacy_teacher_optimizer_state(opt_state, list(resumed["teacher"]), teacher)
        log.info("last.pt: teacher saved under this project's earlier names; converted to the release's")
    return state, opt_state


def weights_digest(net: Optional[torch.nn.Module]) -> Optional[str]:
    """SHA-256 of a network's parameters (not its buffers: per-process BatchNorm statistics may differ)."""
    if net is None:
        return None
    h = hashlib.sha256()
    for name, p in unwrap(net).named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_replicas(run_dir: Path, networks: Dict[str, torch.nn.Module], world_size: int, is_main: bool) -> None:
    """Distributed runs: every rank must end with identical weights; rank 0 writes rank_digests.json."""
    import torch.distributed as dist

    mine = {name: weights_digest(net) for name, net in networks.items()}
    gathered: List[Dict[str, Optional[str]]] = [None] * world_size  # type: ignore[list-item]
    dist.all_gather_object(gathered, mine)
    if is_main:
        (run_dir / "rank_digests.json").write_text(json.dumps(gathered, indent=1) + "\n")
        same = all(g == gathered[0] for g in gathered)
        (log.info if same else log.error)("weights %s on all %d ranks", "identical" if same else "DIFFER", world_size)
