"""The base of the training datasets: items whose random crops, flips and draws depend only on
(seed, epoch, index), so an epoch is reproducible and a resumed run sees what an uninterrupted one would."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .imageio import ImageReadError


class EpochSeededSet(Dataset):
    """Holds `items`, the crop size (H, W) (None: items are not cropped), the seed, the flip probability and the current epoch.

    Subclasses fill `self.items` and draw every random choice of item `index` from `self.rng(index)`.
    """

    def __init__(self, items: List[Any], crop_size: Optional[Sequence[int]], seed: int, hflip: float):
        self.items = items
        self.crop: Optional[Tuple[int, int]] = (int(crop_size[0]), int(crop_size[1])) if crop_size is not None else None
        self.seed, self.hflip = int(seed), float(hflip)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops, flips and draws __getitem__ makes (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def draw_crop(self, rng: np.random.Generator, shape: Tuple[int, int], path: Any) -> Tuple[int, int, bool]:
        """(top, left, flip): a crop of self.crop drawn uniformly inside an image of `shape` (H, W), then the flip
        (probability self.hflip). ImageReadError naming `path` when the image is smaller than the crop."""
        (h, w), (ch, cw) = shape, self.crop
        if h < ch or w < cw:
            raise ImageReadError(f"{path}: image {w}x{h} is smaller than the crop {cw}x{ch}")
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return top, left, bool(rng.uniform() < self.hflip)

    def cut(self, planes: Dict[str, np.ndarray], top: int, left: int, flip: bool) -> Dict[str, torch.Tensor]:
        """Each (H, W) or (H, W, C) plane cropped to self.crop at (top, left), flipped when `flip`, as a
        (1 or C, h, w) float32 tensor."""
        ch, cw = self.crop
        out: Dict[str, torch.Tensor] = {}
        for key, arr in planes.items():
            arr = arr[top:top + ch, left:left + cw]
            arr = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None]
            if flip:
                arr = arr[:, :, ::-1]
            out[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        return out
