"""Fuse every IR/VIS pair of a folder with the SAGE student.

    python test.py                                   # demo pairs -> result/test/ with the demo checkpoint
    python test.py --checkpoint checkpoints/checkpoints.pt --img_dir DIR --save_path OUT/

Defaults live in configs/test.yaml; flags override them. One PNG per pair, named after the pair, with
the colour of the visible image restored (SPEC-SAGE.md section 1). Existing outputs are kept (the run
resumes) unless --overwrite. Exits non-zero if any pair failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from tqdm import tqdm

from data.colour import fused_to_bgr8, ycrcb_to_rgb, to_uint8
from data.imageio import ImageReadError, read_ir, read_vis, write_image_atomic
from data.pairs import PairingError, pair_folders, resolve_dirs
from models.checkpoint import CheckpointError, load_student
from models.inference import fuse_padded, student_fn
from utils.config import ConfigError, apply_flags, load_config
from utils.device import DeviceError, pick_device

ROOT = Path(__file__).resolve().parent
FLAGS = ("checkpoint", "img_dir", "ir_dir", "vis_dir", "save_path", "device", "grid", "overwrite", "pad_multiple")


class PairError(ValueError):
    """A pair that cannot be fused; the message says why."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "test.yaml"), help="YAML file with the defaults")
    p.add_argument("--checkpoint", help="student weights (.pt): the release's checkpoints.pt, a train.py epoch file or last.pt")
    p.add_argument("--img_dir", help="folder holding Ir/ (Inf, ir, IR) and Vis/ (Vi, vi, VIS)")
    p.add_argument("--ir_dir", help="infrared folder (instead of --img_dir)")
    p.add_argument("--vis_dir", help="visible folder (instead of --img_dir)")
    p.add_argument("--save_path", help="output folder")
    p.add_argument("--device", help="auto | cpu | cuda (default auto: CUDA when present)")
    p.add_argument("--grid", action="store_true", default=None, help="also write IR | VIS | fused images to <save_path>/grid/")
    p.add_argument("--overwrite", action="store_true", default=None, help="re-fuse pairs whose output already exists")
    p.add_argument("--pad_multiple", type=int, help="pad height/width to a multiple of this for the network")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> dict:
    cfg = load_config(args.config)
    return apply_flags(cfg, vars(args), {f: f for f in FLAGS})


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


def comparison_grid(ir: torch.Tensor, vis: torch.Tensor, colour: bool, fused_bgr: np.ndarray) -> np.ndarray:
    """IR | VIS | fused side by side, 8-bit BGR, with a 4-pixel white gap."""
    ir8 = np.repeat(to_uint8(ir), 3, axis=2)
    if colour:
        vis8 = to_uint8(ycrcb_to_rgb(vis[None, 0:1], vis[None, 1:2], vis[None, 2:3])[0])[:, :, ::-1]
    else:
        vis8 = np.repeat(to_uint8(vis[0:1]), 3, axis=2)
    fused8 = fused_bgr if fused_bgr.ndim == 3 else np.repeat(fused_bgr[:, :, None], 3, axis=2)
    gap = np.full((ir8.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([ir8, gap, vis8, gap, fused8], axis=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        device = pick_device(cfg.get("device", "auto"))
        ir_dir, vis_dir = resolve_dirs(cfg.get("img_dir"), cfg.get("ir_dir"), cfg.get("vis_dir"))
        model = load_student(cfg["checkpoint"], device)
    except (ConfigError, DeviceError, PairingError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    save = Path(cfg["save_path"])
    pairing = pair_folders(ir_dir, vis_dir)
    if not pairing.pairs:
        print(f"error: no IR/VIS pairs with matching names in {ir_dir} and {vis_dir}", file=sys.stderr)
        return 2
    fuse = student_fn(model)
    fused, kept, failed, times = 0, 0, [], []  # failed: (name, reason)
    for name, ir_path, vis_path in tqdm(pairing.pairs, desc="fusing", unit="pair", dynamic_ncols=True):
        out_path = save / f"{name}.png"
        if out_path.exists() and not cfg.get("overwrite"):
            kept += 1
            continue
        try:
            ir, vis, colour = load_pair(name, ir_path, vis_path)
            t0 = time.perf_counter()
            out = fuse_padded(fuse, vis[None, 0:1].to(device), ir[None].to(device), int(cfg.get("pad_multiple", 4)))
            img = fused_to_bgr8(out[0].float().cpu(), vis[1:] if colour else None)
            times.append(time.perf_counter() - t0)
            write_image_atomic(out_path, img)
            if cfg.get("grid"):
                write_image_atomic(save / "grid" / f"{name}.png", comparison_grid(ir, vis, colour, img))
            fused += 1
        except PairError as exc:
            failed.append((name, str(exc)))
        except OSError as exc:
            failed.append((name, f"{out_path}: cannot write ({exc})"))

    speed = f"{1000 * sum(times) / len(times):.1f} ms/pair" if times else "no pair timed"
    parts = [f"fused {fused} pair(s)"]
    if kept:
        parts.append(f"{kept} already in {save} (kept; --overwrite to redo)")
    parts.append(f"{len(failed)} failed")
    unpaired = len(pairing.ir_only) + len(pairing.vis_only)
    if unpaired:
        parts.append(f"{unpaired} without partner")
    print(f"{', '.join(parts)} | {speed} on {device} | output: {save}")
    for name, reason in failed:
        print(f"  failed {name}: {reason}")
    for p in pairing.ir_only:
        print(f"  no VIS partner: {p}")
    for p in pairing.vis_only:
        print(f"  no IR partner: {p}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
