"""The base of the training datasets: items whose random crops, flips and draws depend only on
(seed, epoch, index), so an epoch is reproducible and a resumed run sees what an uninterrupted one would."""
from __future__ import annotations

from typing import Any, List, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset


class EpochSeededSet(Dataset):
    """Holds `items`, the crop size (H, W), the seed, the flip probability and the current epoch.

    Subclasses fill `self.items` and draw every random choice of item `index` from `self.rng(index)`.
    """

    def __init__(self, items: List[Any], crop_size: Sequence[int], seed: int, hflip: float):
        self.items = items
        self.crop: Tuple[int, int] = (int(crop_size[0]), int(crop_size[1]))
        self.seed, self.hflip = int(seed), float(hflip)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops, flips and draws __getitem__ makes (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))
