"""Fuse every IR/VIS pair of a folder with the SAGE student (default) or SGAFusion (--method sgafusion).

    python test.py                                   # demo pairs -> result/test/ with the demo checkpoint
    python test.py --checkpoint checkpoints/checkpoints.pt --img_dir DIR --save_path OUT/
    python test.py ... --engine reference            # the plain PyTorch module (default: auto)
    python test.py ... --engine onnx --onnx student.onnx  # an exported file (scripts/export_onnx.py)
    python test.py ... --tile 1024 --overlap 64      # very large images in bounded memory
    python test.py ... --config my.yaml --set grid=true  # files merged over configs/test.yaml, then --set
    python test.py ... --naming release --pad_multiple 1 # exactly the release's files (name, format, JPEG quality)
    python test.py --method sgafusion                # SGAFusion, with checkpoints/sgafusion_demo.pt by default
    torchrun --nproc_per_node=4 test.py ...          # pairs split between processes

Defaults live in configs/test.yaml; --config files merge over them in order, then --set KEY=VALUE, then
flags. An unknown key or a value of the wrong type stops the run before any work. One PNG per pair,
named after the pair, with the colour of the visible image restored (docs/inference.md). Existing
outputs are kept (the run resumes) unless --overwrite; --grid and --evaluate use kept outputs too.
Exits non-zero if any pair failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.colour import fused_to_bgr8, ycrcb_to_rgb, to_uint8
from data.fusion_pairs import PairDataset, PairError, load_pair, same_size_groups
from data.imageio import ImageReadError, read_raw, write_image_atomic
from data.pairs import PairingError, add_pair_dir_arguments, pair_folders, resolve_dirs
from models.checkpoint import CheckpointError, load_student
from models.engines import ENGINE_NAMES, EngineError, build_engine
from utils.errors import first_line
from utils.memory import keep_freed_memory
from models.inference import fuse_image
from utils import distributed
from utils.atomic import atomic_path
from utils.config import ConfigError, add_config_arguments, config_from_args, load_config
from utils.device import DeviceError, pick_device

ROOT = Path(__file__).resolve().parent
DEFAULTS = ROOT / "configs" / "test.yaml"  # lists every key test.py reads; --config files merge over it
FLAGS = ("method", "checkpoint", "img_dir", "ir_dir", "vis_dir", "save_path", "device", "grid", "overwrite", "pad_multiple",
         "engine", "onnx", "tile", "overlap", "tile_above", "batch_size", "workers", "evaluate", "metrics",
         "keep_freed_memory", "naming")
METHODS = ("sage", "sgafusion")  # sage: the student through models/engines; sgafusion: models/sgafusion/engine.py
NAMINGS = ("png", "release")  # png: <name>.png (OpenCV, lossless); release: <name><VIS extension> via PIL
COLOUR_ROWS = 1024  # colour restoration of huge outputs runs in strips of this many rows (bounded memory)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, "configs/test.yaml", "workers=0", note="; a partial file is fine")
    p.add_argument("--method", choices=METHODS, help="fusion method: sage (default) or sgafusion")
    p.add_argument("--checkpoint", help="sage: student weights (.pt): the release's checkpoints.pt, a train.py epoch file "
                                        "or last.pt; sgafusion: a train.py sgafusion/epoch_N.pt or exported file")
    add_pair_dir_arguments(p)
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
    p.add_argument("--naming", choices=NAMINGS,
                   help="png (default): <name>.png, lossless; release: what the release's test.py writes, <name> with "
                        "the visible file's extension, encoded by PIL (a .jpg gets PIL's default JPEG quality 75)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> dict:
    """configs/test.yaml, the --config files merged over it in order, --set items, then flags; checked strictly."""
    cfg = config_from_args(args, DEFAULTS, {f: f for f in FLAGS})
    if cfg["naming"] not in NAMINGS:
        raise ConfigError(f"config key 'naming' expects one of {', '.join(NAMINGS)}, got {cfg['naming']!r}")
    if cfg["method"] not in METHODS:
        raise ConfigError(f"config key 'method' expects one of {', '.join(METHODS)}, got {cfg['method']!r}")
    if cfg["method"] == "sgafusion" and cfg["checkpoint"] == load_config(DEFAULTS)["checkpoint"]:
        cfg["checkpoint"] = cfg["sgafusion"]["checkpoint"]  # the SAGE default means: this method's default
    return cfg


def output_path(save: Path, name: str, vis_path: Path, naming: str) -> Path:
    """Where the fused image of pair `name` goes: <name>.png, or <name><VIS extension> for naming=release."""
    return save / (f"{name}{vis_path.suffix}" if naming == "release" else f"{name}.png")


def write_like_release(path: Path, img: np.ndarray) -> None:
    """Write `img` (uint8 BGR or grey) as the release does (torchvision save_image): an RGB image saved by PIL
    in the format of the file's extension with PIL's defaults (JPEG quality 75); atomically."""
    from PIL import Image
    rgb = img[:, :, ::-1] if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)  # save_image makes grey RGB
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise OSError(f"{path}: PIL cannot write {path.suffix or 'extension-less'} files")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format=fmt)


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


class SageMethod:
    """SAGE's side of fuse_folder: YCrCb pairs, the student engine (padded, tiled when large), colour restoration.

    SGAFusion's counterpart is models/sgafusion/engine.py: SGAFusionMethod (same methods)."""
    tiles = True

    def __init__(self, engine, cfg: dict):
        self.engine = engine
        self.tiling = dict(multiple=int(cfg["pad_multiple"]), tile=cfg["tile"] or None, overlap=int(cfg["overlap"]),
                           tile_above=cfg["tile_above"] or None)  # 0 or null: no tiling

    @property
    def name(self) -> str:
        return self.engine.name

    def describe(self) -> str:
        return self.engine.describe()

    @staticmethod
    def dataset(pairs):
        return PairDataset(pairs)

    def fuse(self, group: List[dict], progress=None) -> torch.Tensor:
        if len(group) == 1:  # views, no copies (matters for huge images)
            y, ir = group[0]["vis"][None, 0:1], group[0]["ir"][None]
        else:
            y = torch.stack([it["vis"][0:1] for it in group])
            ir = torch.stack([it["ir"] for it in group])
        return fuse_image(self.engine, y, ir, progress=progress, **self.tiling).float().cpu()

    @staticmethod
    def image(item: dict, fused: torch.Tensor) -> np.ndarray:
        return fused_image(fused, item["vis"], item["colour"])

    @staticmethod
    def grid(item: dict, img: np.ndarray) -> np.ndarray:
        return comparison_grid(item["ir"], item["vis"], item["colour"], img)


def save_outputs(item: dict, fused: torch.Tensor, save: Path, grid: bool, out: Optional[Path] = None,
                 naming: str = "png", method=SageMethod) -> None:
    """The method's encoding (SAGE: colour restoration) and atomic writes of one pair (runs in the writer thread).

    out: the fused image's path (default <save>/<name>.png); naming release writes it as the release does."""
    img = method.image(item, fused)
    out = out or save / f"{item['name']}.png"
    if naming == "release":
        write_like_release(out, img)
    else:
        write_image_atomic(out, img)
    if grid:
        write_image_atomic(save / "grid" / f"{item['name']}.png", method.grid(item, img))


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


def fuse_folder(method, pairs, cfg: dict, save: Path, show_progress: bool = True,
                outputs: Optional[Dict[str, Path]] = None) -> dict:
    """Fuse `pairs` with `method` (SageMethod or SGAFusionMethod); returns {fused, failed [(name, reason)],
    times [s per pair]}.

    outputs: name -> fused image path (default <save>/<name>.png). Decoding runs in DataLoader workers and
    encoding/writing in a thread, both overlapping the network.
    """
    naming = cfg["naming"]
    outputs = outputs or {}
    out_of = lambda name: outputs.get(name) or save / f"{name}.png"
    batch_size = max(1, int(cfg["batch_size"]))
    workers = max(0, min(int(cfg["workers"]), len(pairs) - 1))
    loader = DataLoader(method.dataset(pairs), batch_size=batch_size, num_workers=workers, collate_fn=list,
                        persistent_workers=False, prefetch_factor=2 if workers else None)
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
                failed.append((name, f"{out_of(name)}: cannot write ({exc})"))
            except Exception as exc:  # noqa: BLE001 - any other writer error: recorded, the run goes on
                failed.append((name, f"{out_of(name)}: cannot encode ({type(exc).__name__}: {exc})"[:300]))

    with ThreadPoolExecutor(max_workers=1) as writer:
        for batch in loader:
            for group in same_size_groups(batch):
                if "error" in group[0]:
                    failed.append((group[0]["name"], group[0]["error"]))
                    bar.update(1)
                    continue
                tiles = TileBar(f"tiles of {group[0]['name']}", show_progress)
                t0 = time.perf_counter()
                try:
                    out = method.fuse(group, tiles)
                except Exception as exc:  # noqa: BLE001 - engine errors (ORT, OOM...): recorded, the run goes on
                    reason = first_line(exc)[:200]
                    failed.extend((it["name"], f"{method.name} engine failed: {reason}") for it in group)
                    bar.update(len(group))
                    continue
                finally:
                    tiles.close()
                dt = time.perf_counter() - t0
                times.extend([dt / len(group)] * len(group))
                for it, f in zip(group, out):
                    pending.append((it["name"], writer.submit(save_outputs, it, f, save, bool(cfg["grid"]),
                                                              out_of(it["name"]), naming, method)))
                collect(block_above=2 * batch_size)  # bounded: at most a few images wait for the writer
                bar.update(len(group))
        collect(block_above=0)
    bar.close()
    return {"fused": fused, "failed": failed, "times": times}


def grids_for_kept(pairs, outputs: Dict[str, Path], save: Path) -> dict:
    """Comparison grids for pairs whose fused image was kept from an earlier run, made from that file.

    Returns {made, present (grid already there), skipped [(name, reason)]}; nothing raises."""
    made, present, skipped = 0, 0, []
    for name, ir_path, vis_path in pairs:
        target = save / "grid" / f"{name}.png"
        if target.exists():
            present += 1
            continue
        kept = outputs.get(name) or save / f"{name}.png"
        try:
            ir, vis, colour = load_pair(name, ir_path, vis_path)
            img = read_raw(kept)
        except (PairError, ImageReadError) as exc:
            skipped.append((name, f"{exc}"))
            continue
        if img.shape[:2] != tuple(ir.shape[1:]):
            skipped.append((name, f"{kept} is {img.shape[1]}x{img.shape[0]} but the pair is {ir.shape[2]}x{ir.shape[1]} "
                                  "(not this pair's output? --overwrite fuses it again)"))
            continue
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257 + 0.5).astype(np.uint8)
        try:
            write_image_atomic(target, comparison_grid(ir, vis, colour, img))
            made += 1
        except OSError as exc:
            skipped.append((name, f"{target}: cannot write ({exc})"))
    return {"made": made, "present": present, "skipped": skipped}


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


def build_sage(cfg: dict, device: torch.device):
    """(SageMethod, description of the weights) from the config: the student checkpoint or an ONNX file."""
    name = cfg["engine"]
    if name == "auto" and cfg["onnx"]:
        name = "onnx"  # an ONNX file was given: use it
    model = None
    if not (name == "onnx" and cfg["onnx"]):
        ckpt = Path(cfg["checkpoint"])
        if not ckpt.is_file() and ckpt.name == "checkpoints.pt":  # the authors' file, not downloaded yet
            raise CheckpointError(f"{ckpt}: no such checkpoint file; get the authors' weights with "
                                  "`python scripts/download_weights.py` (writes checkpoints/checkpoints.pt)")
        model = load_student(ckpt, device)
    weights = f"ONNX file {cfg['onnx']}" if model is None else f"checkpoint {cfg['checkpoint']}"
    if model is not None and Path(cfg["checkpoint"]).name == "sage_student_demo.pt":
        weights += (" (the demo student, trained on synthetic data; for real images the authors' "
                    "checkpoints/checkpoints.pt from scripts/download_weights.py)")
    return SageMethod(build_engine(name, model, onnx_path=cfg["onnx"], device=device), cfg), weights


def build_sgafusion(cfg: dict, device: torch.device):
    """(SGAFusionMethod, description of the weights) from the checkpoint and the `sgafusion:` section."""
    from models.sgafusion.engine import SGAFusionMethod, load_sgafusion_file
    section = cfg["sgafusion"]
    net, cue, info = load_sgafusion_file(cfg["checkpoint"], device, section["model"], section["cue"])
    weights = f"checkpoint {cfg['checkpoint']}"
    if Path(cfg["checkpoint"]).name == "sgafusion_demo.pt":
        weights += " (the SGAFusion demo: a tiny random CLIP, trained a few minutes on synthetic data)"
    return SGAFusionMethod(net, cue, device, autocast=bool(section["autocast"])), weights


def main(argv=None) -> int:
    args = parse_args(argv)
    info = distributed.env_info()
    try:
        cfg = build_config(args)
        device = distributed.local_device(pick_device(cfg["device"]), info)
        ir_dir, vis_dir = resolve_dirs(cfg["img_dir"], cfg["ir_dir"], cfg["vis_dir"])
        if cfg["keep_freed_memory"] and device.type == "cpu":
            keep_freed_memory()  # no page faults for each new ~100 MB feature map (utils/memory.py)
        if cfg["method"] == "sgafusion":
            method, weights = build_sgafusion(cfg, device)
        else:
            method, weights = build_sage(cfg, device)
        metric_names = None
        if cfg["evaluate"]:
            from metrics import MetricNameError, parse_metric_list
            try:
                metric_names = parse_metric_list(cfg["metrics"])
            except MetricNameError as exc:
                raise ConfigError(str(exc)) from None
    except (ConfigError, DeviceError, PairingError, CheckpointError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg["tile"] and not method.tiles:
        print(f"note: --tile ignored: {method.name} fuses whole images (its degradation cue and the dehaze "
              "expert's atmospheric light are computed from the whole image, so tiles would change the result)")

    save = Path(cfg["save_path"])
    pairing = pair_folders(ir_dir, vis_dir)
    if not pairing.pairs:
        print(f"error: {pairing.no_pairs_message(ir_dir, vis_dir)}", file=sys.stderr)
        return 2
    outputs = {n: output_path(save, n, vis_path, cfg["naming"]) for n, _, vis_path in pairing.pairs}
    # Under torchrun only: Gloo on CPU, NCCL on CUDA. The timeout covers ranks finishing their shares at
    # different times (the final gather waits); a rank that crashes is torn down by torchrun with the others.
    distributed.init(device, timeout_s=6 * 3600)
    mine = pairing.pairs[info.rank::info.world_size]  # this process's share
    todo = [p for p in mine if cfg["overwrite"] or not outputs[p[0]].exists()]
    kept_pairs = [p for p in mine if p not in todo]
    t_start = time.perf_counter()
    result = fuse_folder(method, todo, cfg, save, show_progress=info.is_main, outputs=outputs)
    result.update(kept=len(kept_pairs), wall=time.perf_counter() - t_start)
    if cfg["grid"] and kept_pairs:  # grids of kept outputs come from the files already there
        result["grids"] = grids_for_kept(kept_pairs, outputs, save)

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
        print(f"  engine: {method.describe()}, batch {cfg['batch_size']}, "
              f"{cfg['workers']} loader worker(s){procs}; wall {max(r['wall'] for r in results):.1f} s")
        print(f"  weights: {weights}")
        grids = [r["grids"] for r in results if "grids" in r]
        if grids:
            made, present = sum(g["made"] for g in grids), sum(g["present"] for g in grids)
            skipped = sorted(x for g in grids for x in g["skipped"])
            print(f"  grid: {made} made from kept outputs, {present} already in {save / 'grid'}"
                  + (f", {len(skipped)} skipped" if skipped else ""))
            for name, reason in skipped:
                print(f"  grid skipped for {name}: {reason}")
        for name, reason in failed:
            print(f"  failed {name}: {reason}")
        for p in pairing.ir_only:
            print(f"  no VIS partner: {p}")
        for p in pairing.vis_only:
            print(f"  no IR partner: {p}")
        if cfg["evaluate"]:
            failed_names = {n for n, _ in failed}
            names = [p[0] for p in pairing.pairs if p[0] not in failed_names]
            if kept:
                print(f"evaluate: scoring {fused} pair(s) fused now and {kept} kept in {save} from an earlier run")
            for line in evaluate_outputs(ir_dir, vis_dir, save, names, metric_names, device):
                print(line)
    distributed.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
