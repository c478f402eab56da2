"""Building the segment cache: SAM's automatic masks for every IR and VIS training image.

Resumable: an image whose entry exists with the current settings digest is never recomputed, and
entries are written atomically (SAM/store.py), so a run killed at any moment (Ctrl-C, kill -9) is
simply started again. Shardable: shard (i, n) takes the i-th of every n images (sorted by name);
shards write disjoint entries into the same folder and identical manifests.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from data.imageio import ImageReadError, read_raw
from data.pairs import IR_DIR_NAMES, VIS_DIR_NAMES, PairingError, find_subdir, pair_folders
from utils.device import pick_device

from .model import build_generator, build_sam, checkpoint_id, generate_masks, to_sam_input
from .selection import select_for_cache
from .settings import diff_settings, is_random_checkpoint, recorded_settings, resolve_settings, settings_digest
from .store import (CacheMismatchError, Manifest, entry_digest, list_entries, read_manifest,
                    remove_stale_temps, write_entry, write_manifest)

log = logging.getLogger(__name__)
CACHE_DIR_NAME = "Mask_cache"


@dataclass
class BuildSummary:
    """What one build_cache call did (for its shard)."""

    cache_dir: Path
    shard: Tuple[int, int]
    total: int = 0          # images of this shard
    skipped: int = 0        # already cached with the current settings
    built: int = 0          # computed in this call
    no_masks: int = 0       # built entries with n = 0 (every slot will hold the whole image)
    seconds: float = 0.0
    names_built: List[str] = field(default_factory=list)

    def line(self) -> str:
        i, n = self.shard
        rate = self.built / self.seconds * 60 if self.seconds > 0 else 0.0
        return (f"shard {i}/{n}: {self.total} images, {self.skipped} already cached, {self.built} built "
                f"({self.no_masks} with no masks) in {self.seconds:.1f} s ({rate:.1f} images/min) -> {self.cache_dir}")


def parse_shard(text: str) -> Tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard {text}: expected i/n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_items(items: Sequence[Any], shard: Tuple[int, int]) -> List[Any]:
    """Every n-th item starting at i (items in a fixed order, e.g. sorted by name)."""
    i, n = shard
    return list(items[i::n])


def list_pairs(root_dir: str | os.PathLike) -> List[Tuple[str, Path, Path]]:
    """(name, ir_path, vis_path) of root_dir/{Ir,Vis} (or aliases), sorted by name; unpaired files are logged."""
    ir_dir = find_subdir(root_dir, IR_DIR_NAMES, "infrared")
    vis_dir = find_subdir(root_dir, VIS_DIR_NAMES, "visible")
    pairing = pair_folders(ir_dir, vis_dir)
    for p in pairing.ir_only + pairing.vis_only:
        log.warning("%s: no partner image with the same base name; skipped", p)
    if not pairing.pairs:
        raise PairingError(f"{root_dir}: no IR/VIS pairs with matching names")
    return pairing.pairs


def cache_identity(settings: Mapping[str, Any], sam_checkpoint: Optional[str]) -> Manifest:
    """The manifest a cache built with these settings and weights has (hashes the checkpoint file)."""
    ckpt = None if is_random_checkpoint(sam_checkpoint) else str(sam_checkpoint)
    rec = recorded_settings(settings)
    cid = checkpoint_id(ckpt, settings["seed"])
    return Manifest(settings=rec, checkpoint=cid, digest=settings_digest(rec, cid))


def prepare_manifest(cache_dir: Path, wanted: Manifest, rebuild: bool = False) -> None:
    """Write the manifest, or check an existing one. Other settings -> CacheMismatchError unless `rebuild`
    (a manifest without entries, e.g. left by a run that stopped on a bad checkpoint, is replaced)."""
    have = read_manifest(cache_dir)
    if have is not None and have.digest == wanted.digest:
        return
    if have is not None and not rebuild and list_entries(cache_dir):
        diff = diff_settings(have.settings, wanted.settings)
        what = ", ".join(f"{k}: cache {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        if have.checkpoint != wanted.checkpoint:
            what = (what + "; " if what else "") + f"weights: cache {have.checkpoint} vs now {wanted.checkpoint}"
        raise CacheMismatchError(f"{cache_dir}: cache was made with other settings ({what}); pass --rebuild "
                                 "to recompute it, or use another --cache_dir")
    write_manifest(cache_dir, wanted)


def build_cache(root_dir: str | os.PathLike, sam_checkpoint: Optional[str] = None,
                settings: Optional[Mapping[str, Any]] = None, shard: Tuple[int, int] = (0, 1),
                progress: bool = True, cache_dir: Optional[str | os.PathLike] = None,
                device: Optional[str] = None, rebuild: bool = False, model: Optional[torch.nn.Module] = None
                ) -> BuildSummary:
    """Build the missing entries of `root_dir/Mask_cache` for this shard.

    Args:
        root_dir: folder with Ir/ and Vis/ (or their aliases); pairs share a base name.
        sam_checkpoint: SAM checkpoint path, or None / "none" for random weights (tests, demos).
        settings: the `sam` config section (partial is fine; see SAM/settings.py); None = release.
        shard: (i, n): this call builds images i, i+n, i+2n, ... of the sorted pair list.
        progress: show a tqdm bar (images done, images/min, time left).
        cache_dir: default root_dir/Mask_cache.
        device: overrides settings['device'] (auto | cpu | cuda).
        rebuild: recompute entries made with other settings (otherwise such a cache is an error).
        model: an already built SAM to use (must match sam_checkpoint/settings; tests share one).
    Returns:
        BuildSummary. Raises CacheMismatchError, PairingError, ImageReadError, CheckpointError.
    """
    t0 = time.time()
    s = resolve_settings(settings)
    ckpt = None if is_random_checkpoint(sam_checkpoint) else str(sam_checkpoint)
    cache_dir = Path(cache_dir) if cache_dir is not None else Path(root_dir) / CACHE_DIR_NAME
    pairs = shard_items(list_pairs(root_dir), shard)
    wanted = cache_identity(s, ckpt)
    cache_dir.mkdir(parents=True, exist_ok=True)
    prepare_manifest(cache_dir, wanted, rebuild)

    summary = BuildSummary(cache_dir=cache_dir, shard=tuple(shard), total=len(pairs))
    todo = [p for p in pairs if entry_digest(cache_dir, p[0]) != wanted.digest]
    summary.skipped = len(pairs) - len(todo)
    if not todo:
        summary.seconds = time.time() - t0
        return summary

    dev = pick_device(device or s["device"])
    sam = model if model is not None else build_sam(s["model_type"], ckpt, s["image_size"], s["seed"])
    sam = sam.to(dev).eval()
    generator = build_generator(sam, s["generator"])
    bar = tqdm(total=len(pairs), initial=summary.skipped, unit="img", disable=not progress,
               desc=f"SAM masks {shard[0]}/{shard[1]}", dynamic_ncols=True)
    t_loop = time.time()
    try:
        for name, ir_path, vis_path in todo:
            ir_img, vis_img = read_raw(ir_path), read_raw(vis_path)
            if ir_img.shape[:2] != vis_img.shape[:2]:
                raise ImageReadError(f"{vis_path}: size {vis_img.shape[1]}x{vis_img.shape[0]} differs from its IR "
                                     f"image {ir_path} ({ir_img.shape[1]}x{ir_img.shape[0]})")
            ir_all = generate_masks(generator, to_sam_input(ir_img, s["bgr_input"]))
            vis_all = generate_masks(generator, to_sam_input(vis_img, s["bgr_input"]))
            ir_sel, vis_sel = select_for_cache(ir_all, vis_all, s["cache_mask_num"])
            h, w = ir_img.shape[:2]
            remove_stale_temps(cache_dir, name)
            write_entry(cache_dir, name, ir_sel, vis_sel, h, w, wanted.digest,
                        {"found_ir": len(ir_all), "found_vis": len(vis_all),
                         "ir_file": ir_path.name, "vis_file": vis_path.name})
            summary.built += 1
            summary.no_masks += int(len(ir_sel) == 0)
            summary.names_built.append(name)
            bar.update(1)
            bar.set_postfix_str(f"{summary.built / max(time.time() - t_loop, 1e-9) * 60:.1f} img/min")
    finally:
        bar.close()
    summary.seconds = time.time() - t0
    return summary
