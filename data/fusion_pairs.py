"""Decoded IR/VIS pairs for fusion (test.py): a DataLoader dataset whose bad pairs are records, not errors."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Tuple

import torch
from torch.utils.data import Dataset

from .imageio import ImageReadError, read_ir, read_vis


class PairError(ValueError):
    """A pair that cannot be fused; the message says why."""


def load_pair(name: str, ir_path: Path, vis_path: Path) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    """(IR (1,H,W), VIS YCrCb (3,H,W), VIS is colour). Raises PairError on unreadable or mismatched files."""
    try:
        ir = read_ir(ir_path)
        vis, colour = read_vis(vis_path)
    except ImageReadError as exc:
        raise PairError(str(exc)) from None
    if ir.shape != vis.shape[1:]:
        raise PairError(f"{name}: IR is {ir.shape[1]}x{ir.shape[0]} but VIS is {vis.shape[2]}x{vis.shape[1]} "
                        "(pairs must be registered and of one size; not resized)")
    return torch.from_numpy(ir)[None], torch.from_numpy(vis), colour


def ycrcb_item(name: str, ir_path: Path, vis_path: Path) -> dict:
    """One pair as SAGE reads it: {name, ir (1,H,W), vis (3,H,W) YCrCb, colour}; raises PairError."""
    ir, vis, colour = load_pair(name, ir_path, vis_path)
    return {"name": name, "ir": ir, "vis": vis, "colour": colour}


class PairDataset(Dataset):
    """Decoded pairs for a DataLoader: `read(name, ir_path, vis_path)` items (default: SAGE's YCrCb items),
    or {name, error} for a bad pair: never an exception, so loader workers keep going."""

    def __init__(self, pairs: List[Tuple[str, Path, Path]], read: Callable[[str, Path, Path], dict] = ycrcb_item):
        self.pairs, self.read = pairs, read

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        name, ir_path, vis_path = self.pairs[i]
        try:
            return self.read(name, ir_path, vis_path)
        except (PairError, ImageReadError) as exc:
            return {"name": name, "error": str(exc)}


def same_size_groups(batch: List[dict]) -> List[List[dict]]:
    """Split a loader batch into runs of readable pairs of one size (order kept); errors go alone."""
    groups: List[List[dict]] = []
    for item in batch:
        key = None if "error" in item else tuple(item["ir"].shape)
        if groups and key is not None and "error" not in groups[-1][0] and tuple(groups[-1][0]["ir"].shape) == key:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups
