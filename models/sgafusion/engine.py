"""SGAFusion for whole folders (test.py --method sgafusion) and as a plain fuser (models/fusers.py).

    net, cue, info = load_sgafusion_file("checkpoints/sgafusion_demo.pt", device)
    method = SGAFusionMethod(net, cue, device)       # test.py's per-method interface (below)
    fused = method.fuse_rgb(vis_rgb, ir)             # (B, 3, H, W) RGB + (B, 1|3, H, W) IR -> (B, 3, H, W)

Checkpoint files are save_sgafusion's ({"net", "cue", "variant", ...}); train.py's also hold the
`model_config` and `cue_config` sections that rebuild the network, so they load from the file alone.
`model` / `cue` overrides (test.py's `sgafusion.model`, `sgafusion.cue`) are merged over the stored
sections, e.g. cue.clip_weights for a checkpoint trained on the pretrained CLIP (whose tower is not
stored). Loading is strict and uses torch.load(weights_only=True).

Pixels (docs/sgafusion.md, "Fusing"): the visible file is read as RGB (a grey file repeated to 3
channels), the IR as stored (a colour IR file is turned grey as PIL's convert("L") does, inside
`fuse`); the whole image is fused at once (no tiling: the cue and the dehaze expert's atmospheric
light are global per image); the output is rounded to 8 bits (round(255 x)); for a grey visible
image the fused RGB is written as its BT.601 luma, so the output has the visible image's layout.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from data.fusion_pairs import PairDataset
from data.imageio import ImageReadError, read_raw
from utils.config import merge

from ..checkpoint import CheckpointError, load_checkpoint, load_weights
from .build import build_cue, build_net, load_cue_state
from .cue import ClipCueEncoder
from .inference import fuse
from .network import SGAFusionNet

LUMA = (0.299, 0.587, 0.114)


def load_sgafusion_file(path: str | os.PathLike, device: torch.device | str = "cpu",
                        model: Optional[Mapping[str, Any]] = None, cue: Optional[Mapping[str, Any]] = None
                        ) -> Tuple[SGAFusionNet, ClipCueEncoder, Dict[str, Any]]:
    """(net, cue encoder, info) in eval mode from a save_sgafusion file; info: variant, stage, epoch, classes."""
    obj = load_checkpoint(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("net"), dict) or not isinstance(obj.get("cue"), dict):
        found = f"keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: not an SGAFusion checkpoint (expected 'net' and 'cue' weights; found {found})")
    model_cfg = merge(dict(obj.get("model_config") or {"variant": obj.get("variant", "working")}), dict(model or {}))
    cue_cfg = merge(dict(obj.get("cue_config") or {}), dict(cue or {}))
    try:
        net = build_net(model_cfg)
        encoder = build_cue(cue_cfg, net.variant)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot build the SGAFusion network it describes ({exc})") from None
    load_weights(net, obj["net"], path, what="SGAFusion network")
    load_cue_state(encoder, obj["cue"], path)
    info = {k: obj.get(k) for k in ("variant", "stage", "epoch", "classes")}
    return net.to(device).eval(), encoder.to(device).eval(), info


def read_pair_rgb(name: str, ir_path: Path, vis_path: Path) -> Dict[str, Any]:
    """{name, vis (3, H, W) RGB float in [0, 1], ir (1 or 3, H, W) float, colour}; ImageReadError when unusable."""
    vis_raw, ir_raw = read_raw(vis_path), read_raw(ir_path)
    if vis_raw.shape[:2] != ir_raw.shape[:2]:
        raise ImageReadError(f"{name}: IR is {ir_raw.shape[1]}x{ir_raw.shape[0]} but VIS is "
                             f"{vis_raw.shape[1]}x{vis_raw.shape[0]} (pairs must be registered and of one size; "
                             "not resized)")
    colour = vis_raw.ndim == 3
    vis = vis_raw[:, :, ::-1].transpose(2, 0, 1) if colour else np.repeat(vis_raw[None], 3, axis=0)
    ir = ir_raw[:, :, ::-1].transpose(2, 0, 1) if ir_raw.ndim == 3 else ir_raw[None]
    return {"name": name, "colour": colour,
            "vis": torch.from_numpy(np.ascontiguousarray(vis).astype(np.float32) / float(np.iinfo(vis_raw.dtype).max)),
            "ir": torch.from_numpy(np.ascontiguousarray(ir).astype(np.float32) / float(np.iinfo(ir_raw.dtype).max))}


def to_uint8_image(fused: torch.Tensor, colour: bool) -> np.ndarray:
    """One fused RGB (3, H, W) in [0, 1] -> uint8 (H, W, 3) RGB, or (H, W) BT.601 luma when the visible
    image was grey; round(255 x)."""
    x = fused.float().clamp(0, 1)
    if not colour:
        x = (LUMA[0] * x[0] + LUMA[1] * x[1] + LUMA[2] * x[2])[None]
    arr = (x * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return arr if colour else arr[:, :, 0]


class SGAFusionMethod:
    """test.py's per-method interface for SGAFusion: dataset(pairs), fuse(group, progress) -> outputs,
    image(item, out) -> uint8 for cv2 (BGR or grey), grid(item, img) -> uint8 BGR, describe(), name."""
    name = "sgafusion"
    tiles = False  # whole images only

    def __init__(self, net: SGAFusionNet, cue: ClipCueEncoder, device: torch.device, autocast: bool = False):
        """net/cue: eval-mode modules on `device`; autocast: float16 autocast on CUDA (as the release)."""
        self.net, self.cue, self.device, self.autocast = net, cue, device, autocast

    def describe(self) -> str:
        return f"SGAFusion ({self.net.variant} variant), PyTorch on {self.device.type}, whole images"

    @staticmethod
    def dataset(pairs) -> Dataset:
        return PairDataset(pairs, read=read_pair_rgb)

    def fuse_rgb(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        """vis (B, 3, H, W) RGB, ir (B, 1 or 3, H, W), both in [0, 1] -> fused RGB (B, 3, H, W) on the CPU."""
        return fuse(self.net, self.cue, vis.to(self.device), ir.to(self.device), autocast=self.autocast).float().cpu()

    def fuse(self, group: List[dict], progress=None) -> List[torch.Tensor]:
        """Fuse a group of same-size items (one network call); IR channels are made equal across the group."""
        irs = [it["ir"] for it in group]
        if len({t.shape[0] for t in irs}) > 1:
            irs = [t.expand(3, -1, -1) if t.shape[0] == 1 else t for t in irs]
        return list(self.fuse_rgb(torch.stack([it["vis"] for it in group]), torch.stack(irs)))

    @staticmethod
    def image(item: dict, fused: torch.Tensor) -> np.ndarray:
        img = to_uint8_image(fused, item["colour"])
        return np.ascontiguousarray(img[:, :, ::-1]) if img.ndim == 3 else img

    @staticmethod
    def grid(item: dict, img: np.ndarray) -> np.ndarray:
        """IR | VIS | fused side by side, uint8 BGR with a 4-pixel white gap."""
        def u8(t: torch.Tensor) -> np.ndarray:
            return (t.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        ir = u8(item["ir"])
        ir = np.repeat(ir, 3, axis=2) if ir.shape[2] == 1 else ir[:, :, ::-1]
        vis = u8(item["vis"])[:, :, ::-1]
        fused = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        gap = np.full((ir.shape[0], 4, 3), 255, np.uint8)
        return np.ascontiguousarray(np.concatenate([ir, gap, vis, gap, fused], axis=1))


def sgafusion_uint8_fuser(method: SGAFusionMethod):
    """A models/fusers.py Fuser: uint8 VIS (H, W, 3) RGB or (H, W) grey and IR (H, W) -> uint8 like VIS,
    exactly what test.py --method sgafusion writes for the same 8-bit files."""
    def fuse_u8(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        colour = vis.ndim == 3
        v = vis.transpose(2, 0, 1) if colour else np.repeat(vis[None], 3, axis=0)
        vt = torch.from_numpy(np.ascontiguousarray(v).astype(np.float32) / 255.0)[None]
        it = torch.from_numpy(ir.astype(np.float32) / 255.0)[None, None]
        return to_uint8_image(method.fuse_rgb(vt, it)[0], colour)
    return fuse_u8
