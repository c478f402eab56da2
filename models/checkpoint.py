"""Reading checkpoint files: the project's one `torch.load` (weights only, on the CPU) and its one error type.

Every file of weights or training state goes through `load_checkpoint`: the SAGE student and teacher
(`read_state_dict`, `load_weights`), SAM (`SAM.model`) and train.py's last.pt (`utils.run_state`).
"""
from __future__ import annotations

import os
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from utils.errors import first_line

from .student import Student

# Keys under which a wrapped checkpoint may hold the weights, tried in order.
WRAPPER_KEYS = ("state_dict", "model", "student")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _load_failure(path: Path, exc: Exception) -> str:
    """A short reason for a failed torch.load (torch's own messages run over many lines)."""
    text = str(exc)
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return (f"it holds a pickled Python object ({match.group(1)}) that weights_only loading refuses; "
                "re-save just the state_dict")
    if zipfile.is_zipfile(path):
        return "a zip archive that torch cannot read: truncated or corrupt"
    with open(path, "rb") as fh:
        head = fh.read(2)
    if not head:
        return "empty file"
    if head == b"PK":
        return "a truncated or corrupt zip archive"
    if head[:1] != b"\x80":  # every torch.save format starts with a zip or a pickle protocol header
        return "neither a torch.save zip archive nor a pickle"
    return first_line(exc)[:160]


def load_checkpoint(path: str | os.PathLike, missing: str = "no such checkpoint file",
                    error: type[CheckpointError] = CheckpointError) -> Any:
    """torch.load(path) on the CPU with weights_only=True: a file saved on CUDA loads anywhere, and a file
    that needs arbitrary Python objects is refused, not executed.

    A missing file, a folder or an unreadable file raises `error` (CheckpointError or a subclass) with
    one line naming the file; `missing` is the text for a file that does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise error(f"{path}: not a readable PyTorch checkpoint ({_load_failure(path, exc)})") from None


def strip_prefix(state: Dict[str, torch.Tensor], prefix: str = "module.") -> Dict[str, torch.Tensor]:
    """Remove a leading `prefix` (DistributedDataParallel's `module.`) from every key that has it."""
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in state.items())


def read_state_dict(path: str | os.PathLike, keys: Iterable[str] = WRAPPER_KEYS,
                    missing: str = "no such checkpoint file") -> Dict[str, torch.Tensor]:
    """Read a state_dict on the CPU from a bare or wrapped checkpoint (`weights_only=True`).

    A file saved on CUDA loads on a CPU-only machine. `module.` prefixes are stripped.
    """
    path = Path(path)
    obj = load_checkpoint(path, missing)
    if not _is_state_dict(obj):
        inner = None
        if isinstance(obj, dict):
            inner = next((obj[k] for k in keys if _is_state_dict(obj.get(k))), None)
        if inner is None:
            found = f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(
                f"{path}: no weights found (expected a state_dict, or one under {', '.join(keys)}; found {found})")
        obj = inner
    return strip_prefix(obj)


def key_names(keys: Iterable[str], limit: int = 6) -> str:
    """The first `limit` of `keys` in sorted order, comma-separated, with '(+N more)' for the rest."""
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def key_mismatch(missing: Sequence[str], unexpected: Sequence[str], sep: str = ": ") -> str:
    """'missing keys<sep>a, b; unexpected keys<sep>c' naming only the non-empty sides ('' when both are empty)."""
    parts = [f"{what} keys{sep}{key_names(keys)}" for what, keys in (("missing", missing), ("unexpected", unexpected))
             if keys]
    return "; ".join(parts)


def check_keys(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], path: str | os.PathLike,
               what: str, required: Optional[Sequence[str]] = None) -> None:
    """Raise CheckpointError unless `state` has every `required` key of `own` (default: all), no key that `own`
    lacks, and the same shapes; the message names the file, the kind of network and the first few keys."""
    required = list(own) if required is None else list(required)
    missing = [k for k in required if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        def head(keys):
            return ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "") if keys else "none"
        raise CheckpointError(
            f"{path}: not a {what} checkpoint (missing keys: {head(missing)}; unexpected keys: {head(unexpected)})")
    wrong = [k for k in state if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{path}: shape mismatch for {k}: file has {tuple(state[k].shape)}, "
                              f"the {what} expects {tuple(own[k].shape)} ({len(wrong)} mismatched tensors)")


def load_weights(model: nn.Module, state: Dict[str, torch.Tensor], path: str | os.PathLike,
                 what: str = "SAGE network") -> nn.Module:
    """Strictly load `state` into `model`; a mismatch raises CheckpointError naming the first few keys."""
    check_keys(model.state_dict(), state, path, what)
    model.load_state_dict(state, strict=True)
    return model


def load_student(path: str | os.PathLike, device: Optional[torch.device | str] = None) -> Student:
    """A Student in eval mode with the weights of `path` (release file, our epoch files or last.pt)."""
    model = load_weights(Student(), read_state_dict(path), path, what="SAGE student")
    return model.to(device or "cpu").eval()
