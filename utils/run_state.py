"""Saving and restoring a training run: atomic checkpoint files and the random-number generators."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from models.checkpoint import CheckpointError, load_checkpoint

from .atomic import atomic_path


class ResumeError(CheckpointError):
    """A last.pt that cannot be resumed; the message names the file and the problem."""


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file next to `path`, then rename: a crash never leaves a broken file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def rng_state() -> Dict[str, Any]:
    """Every global generator's state, as tensors and plain values (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_meta": [str(np_state[0]), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, pos, has_gauss, gauss = state["numpy_meta"]
    np.random.set_state((name, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_train_state(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a last.pt written by train.py (weights_only=True), with a one-line error on a wrong file."""
    path = Path(path)
    state = load_checkpoint(path, missing="no such file (give the last.pt of an earlier run)", error=ResumeError)
    if not isinstance(state, dict) or state.get("format") != "sage-train-state-v1":
        raise ResumeError(f"{path}: not a train.py last.pt (no 'format: sage-train-state-v1' entry)")
    return state
