"""Running a fusion network on images of any size: pad to what the network needs, crop back."""
from __future__ import annotations

from typing import Callable, Tuple

import torch
import torch.nn.functional as F

FuseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right so H and W are multiples of `multiple`.

    Reflection padding where the image is large enough, replication otherwise. Returns the padded
    tensor and the original (H, W). A no-op when the size already fits (so released outputs are
    reproduced exactly for such sizes).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def student_fn(model: torch.nn.Module) -> FuseFn:
    """Wrap a Student (returns (fused, taps)) as a plain (y, ir) -> fused function."""
    def fuse(y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return model(y, ir)[0]
    return fuse


@torch.inference_mode()
def fuse_padded(fuse: FuseFn, y: torch.Tensor, ir: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """Fuse (B, 1, H, W) Y and IR of any H, W: pad to `multiple`, run, crop back to (B, 1, H, W)."""
    yp, (h, w) = pad_to_multiple(y, multiple)
    irp, _ = pad_to_multiple(ir, multiple)
    return fuse(yp, irp)[..., :h, :w]
