"""Build, check or import the SAM segment cache of a training folder (docs/sam_prior.md, docs/sage.md#sam-prior).

    python scripts/build_mask_cache.py --root_dir data/train --sam_checkpoint sam_vit_b_01ec64.pth
    python scripts/build_mask_cache.py --root_dir data/train --sam_checkpoint sam_vit_b_01ec64.pth --preset fast
    python scripts/build_mask_cache.py --root_dir data/train --sam_checkpoint ... --shard 0/4   # one of 4 processes
    torchrun --nproc_per_node=4 scripts/build_mask_cache.py --root_dir data/train --sam_checkpoint ...
    python scripts/build_mask_cache.py --root_dir data/train --verify
    python scripts/build_mask_cache.py --root_dir data/train --stats
    python scripts/build_mask_cache.py --root_dir data/train --import_pickle mask_cache_train_20.pkl

Masks go to <root_dir>/Mask_cache/ (one .npz per image pair + manifest.json). The run resumes: images
already cached with the same settings and weights are skipped, and an interrupted run (Ctrl-C, kill -9)
never leaves a partial entry. Under torchrun each rank builds its shard (RANK/WORLD_SIZE), then rank 0
verifies the whole cache; the exit status is non-zero on every rank if any rank failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.imageio import ImageReadError  # noqa: E402
from data.pairs import PairingError  # noqa: E402
from SAM.cache_builder import CACHE_DIR_NAME, build_cache, list_pairs, parse_shard  # noqa: E402
from SAM.model import CheckpointError, resolve_sam_checkpoint  # noqa: E402
from SAM.settings import load_settings  # noqa: E402
from SAM.store import CacheError, cache_stats, verify_cache  # noqa: E402
from utils.config import ConfigError  # noqa: E402
from utils import distributed  # noqa: E402
from utils.device import DeviceError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_ERRORS = (CacheError, CheckpointError, ConfigError, DeviceError, ImageReadError, PairingError)

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dir", required=True, help="training folder holding Ir/ (Inf, ir, IR) and Vis/ (Vi, vi, VIS)")
    p.add_argument("--sam_checkpoint", help="SAM checkpoint (sam_vit_b_01ec64.pth), or 'none' for random weights "
                                            "(tests/demos); default: sam.checkpoint of the config")
    p.add_argument("--cache_dir", help=f"cache folder (default <root_dir>/{CACHE_DIR_NAME})")
    p.add_argument("--config", default=str(ROOT / "configs" / "sam.yaml"), help="YAML with a `sam:` section and `presets:`")
    p.add_argument("--preset", help="a preset of the config: fast (real weights, CPU-friendly), tiny (random-weight demos)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. generator.points_per_side=32 or bgr_input=true (repeatable)")
    p.add_argument("--shard", help="i/n: build only images i, i+n, ... (default: all, or RANK/WORLD_SIZE under torchrun)")
    p.add_argument("--device", help="auto | cpu | cuda (default: sam.device)")
    p.add_argument("--rebuild", action="store_true", help="recompute a cache made with other settings or weights")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--dist_timeout", type=float, default=3600.0, help="seconds a rank waits for the others under torchrun")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--verify", action="store_true", help="check every entry; exit 1 naming bad or missing ones")
    mode.add_argument("--stats", action="store_true", help="entries, bytes on disk, and the release pickle's size")
    mode.add_argument("--import_pickle", metavar="PATH", help="convert the authors' mask_cache_train_20.pkl")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> dict:
    settings = load_settings(args.config, args.preset, args.set)
    if args.device:
        settings["device"] = args.device
    return settings


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return str(n)


def do_verify(root_dir: str, cache_dir: Path) -> int:
    names = [p[0] for p in list_pairs(root_dir)]
    report = verify_cache(cache_dir, names)
    if report.ok:
        extra = f", {len(report.extra)} entries for images not in {root_dir}" if report.extra else ""
        if report.temps:
            extra += f", {report.temps} temporary files left by interrupted runs (harmless)"
        print(f"verify: {cache_dir}: all {report.checked} entries OK{extra}")
        return 0
    print(f"verify: {cache_dir}: FAILED: {len(report.missing)} missing, {len(report.bad)} bad of {len(names)} images",
          file=sys.stderr)
    for name in report.missing[:20]:
        print(f"  missing: {name}", file=sys.stderr)
    for name, why in list(report.bad.items())[:20]:
        print(f"  bad: {name}: {why}", file=sys.stderr)
    more = max(0, len(report.missing) - 20) + max(0, len(report.bad) - 20)
    if more:
        print(f"  ... and {more} more", file=sys.stderr)
    return 1


def do_stats(cache_dir: Path) -> int:
    st = cache_stats(cache_dir)
    print(f"entries: {st.entries} ({st.masks} masks)")
    print(f"bytes on disk: {st.bytes_on_disk} ({human(st.bytes_on_disk)})")
    ratio = st.pickle_bytes / st.bytes_on_disk if st.bytes_on_disk else 0.0
    print(f"release single pickle for the same masks: {st.pickle_bytes} ({human(st.pickle_bytes)}, {ratio:.1f}x)")
    return 0


def do_build(args: argparse.Namespace, settings: dict, cache_dir: Path, shard) -> int:
    summary = build_cache(args.root_dir, sam_checkpoint=resolve_checkpoint(args, settings), settings=settings,
                          shard=shard, progress=not args.no_progress, cache_dir=cache_dir, rebuild=args.rebuild)
    print(summary.line())
    return 0


def resolve_checkpoint(args: argparse.Namespace, settings: dict):
    ckpt = args.sam_checkpoint if args.sam_checkpoint is not None else settings.get("checkpoint")
    return resolve_sam_checkpoint(ckpt, "--sam_checkpoint")


def run_distributed(args: argparse.Namespace, settings: dict, cache_dir: Path, rank: int, world: int) -> int:
    """Each rank builds shard rank/world; failures are shared before the barrier, rank 0 verifies."""
    import torch
    import torch.distributed as dist

    distributed.init(torch.device("cpu"), timeout_s=args.dist_timeout)  # Gloo: only flags travel
    try:
        failed = 0
        try:
            do_build(args, settings, cache_dir, (rank, world))
        except Exception as exc:  # reported, then shared with the other ranks so nobody hangs
            print(f"rank {rank}: error: {exc}", file=sys.stderr)
            failed = 1
        flag = torch.tensor([failed], dtype=torch.int64)
        dist.all_reduce(flag)  # also the barrier after building
        if flag.item():
            if rank == 0:
                print(f"error: {flag.item()} of {world} ranks failed; the cache is incomplete (run again to resume)",
                      file=sys.stderr)
            return 1
        ok = torch.tensor([0], dtype=torch.int64)
        if rank == 0:
            try:
                ok[0] = int(do_verify(args.root_dir, cache_dir) == 0)
            except Exception as exc:
                print(f"error: {exc}", file=sys.stderr)
        dist.broadcast(ok, src=0)
        return 0 if ok.item() else 1
    finally:
        distributed.cleanup()


def main(argv=None) -> int:
    args = parse_args(argv)
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(args.root_dir) / CACHE_DIR_NAME
    info = distributed.env_info()
    rank, world = info.rank, info.world_size
    try:
        settings = settings_from_args(args)
        if args.verify or args.stats or args.import_pickle:
            if rank != 0:
                return 0
            if args.verify:
                return do_verify(args.root_dir, cache_dir)
            if args.stats:
                return do_stats(cache_dir)
            from SAM.pickle_import import import_release_pickle
            n = import_release_pickle(args.import_pickle, cache_dir, overwrite=args.rebuild,
                                      progress=not args.no_progress)
            print(f"imported {n} images from {args.import_pickle} into {cache_dir} (recorded as bgr_input: true, "
                  "the release's settings)")
            return do_verify(args.root_dir, cache_dir)
        if world > 1:
            if args.shard:
                raise ConfigError("--shard cannot be combined with torchrun (the shard is RANK/WORLD_SIZE)")
            return run_distributed(args, settings, cache_dir, rank, world)
        shard = parse_shard(args.shard) if args.shard else (0, 1)
        return do_build(args, settings, cache_dir, shard)
    except EXPECTED_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # --shard syntax and similar
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished entries are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
