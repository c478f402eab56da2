"""A per-epoch shuffling sampler that can start part-way through an epoch (for exact resume)."""
from __future__ import annotations

from typing import Iterator

from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for a single process) whose epoch can begin at a given position.

    The permutation of an epoch depends only on (seed, epoch), as in DistributedSampler; rank r of
    W takes positions r, r+W, r+2W, ... of it. So the first k batches of every rank together cover
    the first k * batch_size * W positions, whatever W is: a run can resume at a sample position
    with another number of processes. `set_epoch(epoch, start)` skips the first `start` samples of
    this rank's share.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
