"""Fuse every IR/VIS pair of a folder with the SAGE student.

    python test.py                                   # demo pairs -> result/test/ with the demo checkpoint
    python test.py --checkpoint checkpoints/checkpoints.pt --img_dir DIR --save_path OUT/
    python test.py ... --engine reference            # the plain PyTorch module (default: auto)
    python test.py ... --engine onnx --onnx student.onnx  # an exported file (scripts/export_onnx.py)
    python test.py ... --tile 1024 --overlap 64      # very large images in bounded memory
    torchrun --nproc_per_node=4 test.py ...          # pairs split between processes

Defaults live in configs/test.yaml; flags override them. One PNG per pair, named after the pair, with
the colour of the visible image restored (SPEC-SAGE.md section 1). Existing outputs are kept (the run
resumes) unless --overwrite. Exits non-zero if any pair failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.colour import fused_to_bgr8, ycrcb_to_rgb, to_uint8
from data.fusion_pairs import PairDataset, same_size_groups
from data.imageio import write_image_atomic
from data.pairs import PairingError, pair_folders, resolve_dirs
from models.checkpoint import CheckpointError, load_student
from models.engines import ENGINE_NAMES, EngineError, build_engine, keep_freed_memory
from models.inference import fuse_image
from utils import distributed
from utils.config import ConfigError, apply_flags, load_config
from utils.device import DeviceError, pick_device

ROOT = Path(__file__).resolve().parent
FLAGS = ("checkpoint", "img_dir", "ir_dir", "vis_dir", "save_path", "device", "grid", "overwrite", "pad_multiple",
         "engine", "onnx", "tile", "overlap", "tile_above", "batch_size", "workers", "evaluate", "metrics",
         "keep_freed_memory")
COLOUR_ROWS = 1024  # colour restoration of huge outputs runs in strips of this many rows (bounded memory)


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
    p.add_argument("--engine", choices=ENGINE_NAMES,
                   help="auto (default) = fast: BatchNorm "
                        "folded, channels-last, fused conv+activation in PyTorch; reference: the plain module; "
                        "compile: torch.compile of fast; onnx: ONNX Runtime (--onnx FILE, or exported in memory)")
    p.add_argument("--onnx", help="ONNX file for --engine onnx (scripts/export_onnx.py writes one)")
    p.add_argument("--tile", type=int, help="fuse in tiles of at most this many pixels per side (bounded memory)")
    p.add_argument("--overlap", type=int, help="pixels shared by neighbouring tiles (default 64; seams invisible)")
    p.add_argument("--tile_above", type=int, help="tile automatically images with more pixels than this (0: never)")
    p.add_argument("--batch_size", type=int, help="pairs of the same size fused in one network call")
    p.add_argument("--workers", type=int, help="processes decoding images while the network runs (0: none)")
    p.add_argument("--keep_freed_memory", type=lambda v: str(v).lower() in ("1", "true", "yes"), metavar="true|false",
                   help="let malloc reuse freed feature maps instead of returning them to the OS (faster on CPU)")
    p.add_argument("--evaluate", action="store_true", default=None,
                   help="score the fused images with the 21 fusion metrics (metrics/); report in <save_path>/metrics/")
    p.add_argument("--metrics", help="comma-separated metric names for --evaluate, e.g. EN,SD,SSIM (default: all)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> dict:
    cfg = load_config(args.config)
    return apply_flags(cfg, vars(args), {f: f for f in FLAGS})


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


def fused_image(fused: torch.Tensor, vis: torch.Tensor, colour: bool) -> np.ndarray:
    """Fused (1, H, W) + VIS YCrCb (3, H, W) -> uint8 BGR (or grey), in row strips for huge images."""
    h = fused.shape[-2]
    if h <= COLOUR_ROWS:
        return fused_to_bgr8(fused, vis[1:] if colour else None)
    out = np.empty(fused.shape[-2:] + ((3,) if colour else ()), np.uint8)
    for r in range(0, h, COLOUR_ROWS):
        rows = slice(r, r + COLOUR_ROWS)
        out[rows] = fused_to_bgr8(fused[:, rows], vis[1:, rows] if colour else None)
    return out


def save_outputs(item: dict, fused: torch.Tensor, save: Path, grid: bool) -> None:
    """Colour restoration, PNG encoding and atomic writes of one pair (runs in the writer thread)."""
    img = fused_image(fused, item["vis"], item["colour"])
    write_image_atomic(save / f"{item['name']}.png", img)
    if grid:
        write_image_atomic(save / "grid" / f"{item['name']}.png", comparison_grid(item["ir"], item["vis"], item["colour"], img))


class TileBar:
    """A second tqdm bar, opened on the first tile of a tiled image (progress(done, total) callback)."""

    def __init__(self, desc: str, enabled: bool):
        self.desc, self.enabled, self.bar = desc, enabled, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit="tile", leave=False, dynamic_ncols=True,
                            disable=not self.enabled)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fuse_folder(engine, pairs, cfg: dict, save: Path, show_progress: bool = True) -> dict:
    """Fuse `pairs` with `engine`; returns {fused, failed [(name, reason)], times [s per pair]}.

    Decoding runs in DataLoader workers and encoding/writing in a thread, both overlapping the network.
    """
    batch_size = max(1, int(cfg.get("batch_size") or 1))
    workers = max(0, min(int(cfg.get("workers") or 0), len(pairs) - 1))
    loader = DataLoader(PairDataset(pairs), batch_size=batch_size, num_workers=workers, collate_fn=list,
                        persistent_workers=False, prefetch_factor=2 if workers else None)
    tiling = dict(multiple=int(cfg.get("pad_multiple") or 4), tile=cfg.get("tile") or None,
                  overlap=int(cfg.get("overlap") if cfg.get("overlap") is not None else 64),
                  tile_above=cfg.get("tile_above") or None)
    fused, failed, times = 0, [], []
    pending: List[Tuple[str, Future]] = []
    bar = tqdm(total=len(pairs), desc="fusing", unit="pair", dynamic_ncols=True, disable=not show_progress)

    def collect(block_above: int) -> None:
        nonlocal fused
        while len(pending) > block_above:
            name, fut = pending.pop(0)
            try:
                fut.result()
                fused += 1
            except OSError as exc:
                failed.append((name, f"{save / (name + '.png')}: cannot write ({exc})"))
            except Exception as exc:  # noqa: BLE001 - any other writer error: recorded, the run goes on
                failed.append((name, f"{save / (name + '.png')}: cannot encode ({type(exc).__name__}: {exc})"[:300]))

    with ThreadPoolExecutor(max_workers=1) as writer:
        for batch in loader:
            for group in same_size_groups(batch):
                if "error" in group[0]:
                    failed.append((group[0]["name"], group[0]["error"]))
                    bar.update(1)
                    continue
                if len(group) == 1:  # views, no copies (matters for huge images)
                    y, ir = group[0]["vis"][None, 0:1], group[0]["ir"][None]
                else:
                    y = torch.stack([it["vis"][0:1] for it in group])
                    ir = torch.stack([it["ir"] for it in group])
                tiles = TileBar(f"tiles of {group[0]['name']}", show_progress)
                t0 = time.perf_counter()
                try:
                    out = fuse_image(engine, y, ir, progress=tiles, **tiling).float().cpu()
                except Exception as exc:  # noqa: BLE001 - engine errors (ORT, OOM...): recorded, the run goes on
                    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                    failed.extend((it["name"], f"{engine.name} engine failed: {reason}") for it in group)
                    bar.update(len(group))
                    continue
                finally:
                    tiles.close()
                dt = time.perf_counter() - t0
                times.extend([dt / len(group)] * len(group))
                for it, f in zip(group, out):
                    pending.append((it["name"], writer.submit(save_outputs, it, f, save, bool(cfg.get("grid")))))
                collect(block_above=2 * batch_size)  # bounded: at most a few images wait for the writer
                bar.update(len(group))
        collect(block_above=0)
    bar.close()
    return {"fused": fused, "failed": failed, "times": times}


def evaluate_outputs(ir_dir: Path, vis_dir: Path, save: Path, names: List[str], metrics, device) -> List[str]:
    """Score the pairs just fused (and those kept) with metrics/; the report lands in <save_path>/metrics/."""
    from metrics import evaluate_folders, final_line, format_summary
    from metrics.report import write_report
    rows, summary = evaluate_folders(ir_dir, vis_dir, save, metrics=metrics, device=device, names=names)
    written = write_report(save / "metrics", rows, summary) if rows else []
    lines = [f"evaluate: {final_line(summary)}", f"  {format_summary(summary, 'line')}"]
    if written:
        lines.append(f"  report: {written[0].parent}/ (metrics.csv, summary.csv, summary.md)")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    info = distributed.env_info()
    try:
        cfg = build_config(args)
        device = distributed.local_device(pick_device(cfg.get("device", "auto")), info)
        ir_dir, vis_dir = resolve_dirs(cfg.get("img_dir"), cfg.get("ir_dir"), cfg.get("vis_dir"))
        if cfg.get("keep_freed_memory", True) and device.type == "cpu":
            keep_freed_memory()  # no page faults for each new ~100 MB feature map (models/engines/runtime.py)
        name = cfg.get("engine") or "auto"
        if name == "auto" and cfg.get("onnx"):
            name = "onnx"  # an ONNX file was given: use it
        model = None if name == "onnx" and cfg.get("onnx") else load_student(cfg["checkpoint"], device)
        engine = build_engine(name, model, onnx_path=cfg.get("onnx"), device=device)
        metric_names = None
        if cfg.get("evaluate"):
            from metrics import MetricNameError, parse_metric_list
            try:
                metric_names = parse_metric_list(cfg.get("metrics"))
            except MetricNameError as exc:
                raise ConfigError(str(exc)) from None
    except (ConfigError, DeviceError, PairingError, CheckpointError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    save = Path(cfg["save_path"])
    pairing = pair_folders(ir_dir, vis_dir)
    if not pairing.pairs:
        print(f"error: no IR/VIS pairs with matching names in {ir_dir} and {vis_dir}", file=sys.stderr)
        return 2
    # Under torchrun only: Gloo on CPU, NCCL on CUDA. The timeout covers ranks finishing their shares at
    # different times (the final gather waits); a rank that crashes is torn down by torchrun with the others.
    distributed.init(device, timeout_s=6 * 3600)
    mine = pairing.pairs[info.rank::info.world_size]  # this process's share
    todo = [p for p in mine if cfg.get("overwrite") or not (save / f"{p[0]}.png").exists()]
    t_start = time.perf_counter()
    result = fuse_folder(engine, todo, cfg, save, show_progress=info.is_main)
    result.update(kept=len(mine) - len(todo), wall=time.perf_counter() - t_start)

    results = [result]
    if info.enabled:  # every rank reaches this point whatever failed, so the gather cannot hang
        results = [None] * info.world_size
        dist.all_gather_object(results, result)
    fused = sum(r["fused"] for r in results)
    kept = sum(r["kept"] for r in results)
    failed = sorted(f for r in results for f in r["failed"])
    times = [t for r in results for t in r["times"]]
    rc = 1 if failed else 0
    if info.is_main:
        speed = f"{1000 * sum(times) / len(times):.1f} ms/pair" if times else "no pair timed"
        parts = [f"fused {fused} pair(s)"]
        if kept:
            parts.append(f"{kept} already in {save} (kept; --overwrite to redo)")
        parts.append(f"{len(failed)} failed")
        unpaired = len(pairing.ir_only) + len(pairing.vis_only)
        if unpaired:
            parts.append(f"{unpaired} without partner")
        print(f"{', '.join(parts)} | {speed} on {device} | output: {save}")
        procs = f", {info.world_size} processes" if info.enabled else ""
        print(f"  engine: {engine.describe()}, batch {cfg.get('batch_size') or 1}, "
              f"{cfg.get('workers') or 0} loader worker(s){procs}; wall {max(r['wall'] for r in results):.1f} s")
        for name, reason in failed:
            print(f"  failed {name}: {reason}")
        for p in pairing.ir_only:
            print(f"  no VIS partner: {p}")
        for p in pairing.vis_only:
            print(f"  no IR partner: {p}")
        if cfg.get("evaluate"):
            failed_names = {n for n, _ in failed}
            names = [p[0] for p in pairing.pairs if p[0] not in failed_names]
            for line in evaluate_outputs(ir_dir, vis_dir, save, names, metric_names, device):
                print(line)
    distributed.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
