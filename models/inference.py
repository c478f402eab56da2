"""Running a fusion network on images of any size: pad to what the network needs, crop back, and
tile images too large to hold in memory at once."""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch

from .padding import pad_to_multiple

FuseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# The student sees 41 pixels around each output pixel (3x3 convs at full, 1/2 and 1/4 resolution,
# 2x pools and bilinear upsampling: 4 + 2*7 + 4*5 + bilinear taps); contributions from beyond ~30 px
# are already far below one grey level (tests/models/test_engine_tiling.py checks it). Neighbouring tiles
# share `overlap` pixels and the seam sits in the middle, so each pixel keeps overlap/2 of context.
DEFAULT_OVERLAP = 64


@torch.inference_mode()
def fuse_padded(fuse: FuseFn, y: torch.Tensor, ir: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """Fuse (B, 1, H, W) Y and IR of any H, W: pad to `multiple`, run, crop back to (B, 1, H, W)."""
    yp, (h, w) = pad_to_multiple(y, multiple)
    irp, _ = pad_to_multiple(ir, multiple)
    return fuse(yp, irp)[..., :h, :w]


def tile_spans(size: int, tile: int, overlap: int, align: int = 4) -> List[Tuple[int, int, int, int]]:
    """Cut [0, size) into tiles of at most `tile` pixels that share `overlap` pixels with their neighbours.

    Returns (read_start, read_end, keep_start, keep_end) per tile: the network reads [read_start,
    read_end) and the output keeps [keep_start, keep_end); the kept parts partition [0, size), with
    seams in the middle of each overlap. Tile starts are multiples of `align` (the network's pooling
    grid, so a tile's pools see the same pixel groups as the whole image's).
    """
    if tile < 2 * align or overlap < 0:
        raise ValueError(f"tile {tile} must be at least {2 * align} and overlap {overlap} non-negative")
    tile = tile - tile % align
    if size <= tile:
        return [(0, size, 0, size)]
    stride = tile - overlap
    stride -= stride % align
    if stride <= 0:
        raise ValueError(f"overlap {overlap} leaves no stride for tile {tile} (use overlap < tile - {align})")
    last = size - tile
    last += -last % align  # rounded up: the last tile ends at the image's edge, at most `tile` long
    starts = list(range(0, last, stride)) + [last]
    spans = []
    for i, s in enumerate(starts):
        e = min(s + tile, size)
        keep_s = 0 if i == 0 else (s + spans[-1][1]) // 2
        spans.append((s, e, keep_s, size))
        if i:
            ps, pe, pks, _ = spans[i - 1]
            spans[i - 1] = (ps, pe, pks, keep_s)
    return spans


@torch.inference_mode()
def fuse_tiled(fuse: FuseFn, y: torch.Tensor, ir: torch.Tensor, tile: int = 1024,
               overlap: int = DEFAULT_OVERLAP, multiple: int = 4,
               progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Fuse (B, 1, H, W) inputs tile by tile; returns (B, 1, H, W) float32 on the CPU.

    Memory is bounded by one tile's activations (plus the inputs and the output). Equals
    `fuse_padded` on the whole image up to float rounding when overlap/2 covers the network's
    effective receptive field. `progress(done, total)` is called after each tile.
    """
    b, _, h, w = y.shape
    out = torch.empty((b, 1, h, w), dtype=torch.float32)
    rows, cols = tile_spans(h, tile, overlap, multiple), tile_spans(w, tile, overlap, multiple)
    done = 0
    for r0, r1, kr0, kr1 in rows:
        for c0, c1, kc0, kc1 in cols:
            part = fuse_padded(fuse, y[..., r0:r1, c0:c1], ir[..., r0:r1, c0:c1], multiple)
            out[..., kr0:kr1, kc0:kc1] = part[..., kr0 - r0:kr1 - r0, kc0 - c0:kc1 - c0].float().cpu()
            done += 1
            if progress is not None:
                progress(done, len(rows) * len(cols))
    return out


def fuse_image(fuse: FuseFn, y: torch.Tensor, ir: torch.Tensor, multiple: int = 4, tile: Optional[int] = None,
               overlap: int = DEFAULT_OVERLAP, tile_above: Optional[int] = None,
               auto_tile: int = 1024, progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Fuse whole (B, 1, H, W) images, tiled when `tile` is given or H*W exceeds `tile_above` pixels
    (then with `auto_tile`-pixel tiles; `progress` as in fuse_tiled). Returns (B, 1, H, W)."""
    h, w = y.shape[-2:]
    if not tile and tile_above and h * w > tile_above:
        tile = auto_tile
    if tile and (h > tile or w > tile):
        return fuse_tiled(fuse, y, ir, tile, overlap, multiple, progress)
    return fuse_padded(fuse, y, ir, multiple)
