"""Padding a (B, C, H, W) tensor at the bottom/right to a multiple of some size, and the sizes it needs.

Used by the inference helpers (models/inference.py) and by the teacher (models/teacher.py), which
both crop their outputs back to the input size afterwards.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def padding_for(h: int, w: int, multiple: int) -> Tuple[int, int]:
    """Rows and columns to add at the bottom/right so that (h, w) become multiples of `multiple`."""
    return (-h) % multiple, (-w) % multiple


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right so H and W are multiples of `multiple`.

    Reflection padding where the image is large enough, replication otherwise. Returns the padded
    tensor and the original (H, W). A no-op (the same tensor) when the size already fits, so a network
    that needs only that multiple computes exactly what it computes without padding.
    """
    h, w = x.shape[-2:]
    ph, pw = padding_for(h, w, multiple)
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)
