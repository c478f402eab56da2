"""Fusion methods by name, as plain callables on 8-bit images (for benchmarks such as
scripts/eval_degradation.py; docs/degradation.md).

    fuse = get_fuser("sage", "checkpoints/sage_student_demo.pt", device="cpu")
    fused = fuse(vis, ir)   # vis (H, W, 3) RGB or (H, W) grey uint8, ir (H, W) uint8 -> like vis, uint8

A fuser sees exactly what a fusion script would read from 8-bit files and returns exactly what it
would write: the 'sage' fuser reproduces test.py's output bit for bit (same YCrCb conversion, the
same engine, padding and tiling, the same colour restoration and rounding).

New methods are added with `register_fuser(name, factory)`; a factory is
`factory(checkpoint: str | None, device: torch.device) -> Fuser`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from data.imageio import bgr_to_ycrcb

# A fuser: (vis uint8 (H, W, 3) RGB or (H, W) grey, ir uint8 (H, W)) -> fused uint8 with vis's layout.
Fuser = Callable[[np.ndarray, np.ndarray], np.ndarray]
FuserFactory = Callable[[Optional[str], torch.device], Fuser]


class FuserError(ValueError):
    """An unknown method, a method that cannot be built here, or inputs a fuser cannot take."""


@dataclass(frozen=True)
class _Entry:
    factory: FuserFactory
    needs_checkpoint: bool


_REGISTRY: Dict[str, _Entry] = {}


def register_fuser(name: str, factory: FuserFactory, needs_checkpoint: bool = True, replace: bool = False) -> None:
    """Make method `name` available to get_fuser. `factory(checkpoint, device) -> Fuser`.

    needs_checkpoint: get_fuser refuses a missing checkpoint for this method. replace: allow
    re-registering an existing name (otherwise FuserError).
    """
    if name in _REGISTRY and not replace:
        raise FuserError(f"fusion method '{name}' is already registered")
    _REGISTRY[name] = _Entry(factory, needs_checkpoint)


def fuser_names() -> List[str]:
    """The registered method names, in registration order."""
    return list(_REGISTRY)


def get_fuser(method: str, checkpoint: Optional[str] = None, device: torch.device | str = "cpu",
              extra_fusers: Optional[Dict[str, FuserFactory]] = None) -> Fuser:
    """The fuser of `method` with the weights of `checkpoint` on `device`.

    extra_fusers: {name: factory} consulted before the registry (a caller's own methods without
    registering them globally). Raises FuserError for an unknown method or a missing checkpoint, and
    passes on the loaders' own errors (models.checkpoint.CheckpointError names the file).
    """
    device = torch.device(device)
    if extra_fusers and method in extra_fusers:
        return extra_fusers[method](checkpoint, device)
    entry = _REGISTRY.get(method)
    if entry is None:
        known = list(extra_fusers or {}) + fuser_names()
        raise FuserError(f"unknown fusion method '{method}' (known: {', '.join(known)})")
    if entry.needs_checkpoint and not checkpoint:
        raise FuserError(f"fusion method '{method}' needs a checkpoint")
    return entry.factory(checkpoint, device)


def _check_inputs(vis: np.ndarray, ir: np.ndarray) -> None:
    if vis.dtype != np.uint8 or ir.dtype != np.uint8:
        raise FuserError(f"fusers take uint8 images (got VIS {vis.dtype}, IR {ir.dtype})")
    if ir.ndim != 2 or vis.ndim not in (2, 3) or (vis.ndim == 3 and vis.shape[2] != 3):
        raise FuserError(f"expected VIS (H, W, 3) or (H, W) and IR (H, W), got {vis.shape} and {ir.shape}")
    if vis.shape[:2] != ir.shape:
        raise FuserError(f"VIS {vis.shape[1]}x{vis.shape[0]} and IR {ir.shape[1]}x{ir.shape[0]} differ in size")


def vis_to_ycrcb(vis: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) or grey (H, W) -> float32 (3, H, W) YCrCb in [0, 1], exactly as
    data.imageio.read_vis converts an 8-bit file (grey: Cr = Cb = 0.5)."""
    return bgr_to_ycrcb(vis[:, :, ::-1] if vis.ndim == 3 else vis)[0]


def sage_fuser(checkpoint: Optional[str], device: torch.device, engine: str = "auto",
               pad_multiple: int = 4, tile_above: int = 2048 * 2048, tile: Optional[int] = None,
               overlap: int = 64) -> Fuser:
    """The SAGE student through the inference engines of test.py (defaults as in configs/test.yaml)."""
    from data.colour import fused_to_bgr8
    from .checkpoint import load_student
    from .engines import build_engine
    from .inference import fuse_image

    net = build_engine(engine, load_student(checkpoint, device), device=device)

    def fuse(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        _check_inputs(vis, ir)
        ycrcb = torch.from_numpy(vis_to_ycrcb(vis))
        irt = torch.from_numpy(ir.astype(np.float32) / 255.0)[None, None]
        fused = fuse_image(net, ycrcb[None, 0:1], irt, multiple=pad_multiple, tile=tile, overlap=overlap,
                           tile_above=tile_above).float().cpu()
        out = fused_to_bgr8(fused[0], ycrcb[1:] if vis.ndim == 3 else None)
        return np.ascontiguousarray(out[:, :, ::-1]) if out.ndim == 3 else out
    return fuse


def average_fuser(checkpoint: Optional[str], device: torch.device) -> Fuser:
    """Baseline without weights: the mean of the visible luma and the IR image, with the visible colour."""
    from data.colour import fused_to_bgr8

    def fuse(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        _check_inputs(vis, ir)
        ycrcb = torch.from_numpy(vis_to_ycrcb(vis))
        y = (ycrcb[0:1] + torch.from_numpy(ir.astype(np.float32) / 255.0)[None]) / 2
        out = fused_to_bgr8(y, ycrcb[1:] if vis.ndim == 3 else None)
        return np.ascontiguousarray(out[:, :, ::-1]) if out.ndim == 3 else out
    return fuse


register_fuser("sage", sage_fuser)
register_fuser("average", average_fuser, needs_checkpoint=False)


def sgafusion_fuser(checkpoint: Optional[str], device: torch.device) -> Fuser:
    """SGAFusion (network + CLIP degradation cue) from a save_sgafusion checkpoint, exactly as
    test.py --method sgafusion fuses 8-bit files (models/sgafusion/engine.py; docs/sgafusion.md)."""
    from .sgafusion.engine import SGAFusionMethod, load_sgafusion_file, sgafusion_uint8_fuser

    net, cue, _ = load_sgafusion_file(checkpoint, device)
    inner = sgafusion_uint8_fuser(SGAFusionMethod(net, cue, device))

    def fuse(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        _check_inputs(vis, ir)
        return inner(vis, ir)
    return fuse


register_fuser("sgafusion", sgafusion_fuser)


__all__ = ["Fuser", "FuserError", "FuserFactory", "average_fuser", "fuser_names", "get_fuser", "register_fuser",
           "sage_fuser", "sgafusion_fuser", "vis_to_ycrcb"]
