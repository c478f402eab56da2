"""Time the 21 fusion metrics: seconds per IR/VIS/fused triple, in all and per metric.

    python scripts/benchmark_metrics.py                     # the 640x480 samples in ../shared/ivif_samples
    python scripts/benchmark_metrics.py --img_dir DATA --fused_dir FUSED --pairs 5
    python scripts/benchmark_metrics.py --synthetic 640x480 --repeats 3 --threads 1

Each measurement is the best of --repeats runs (the least disturbed by other processes); the per-metric
times are each metric computed alone, so they add up to more than the all-metrics time, which shares
work (SSIM inside MS-SSIM). The reference toolkit (IVIF_ZOO eval_torch.py) needs about 13 s per
640x480 triple on the project's 2-core CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data.pairs import PairingError, list_images, pair_folders, resolve_dirs  # noqa: E402
from metrics.imread import MetricImageError, read_gray  # noqa: E402
from metrics.registry import MetricNameError, compute_metrics, parse_metric_list  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402

SHARED_SAMPLES = ROOT.parent / "shared" / "ivif_samples"

Triple = Tuple[str, np.ndarray, np.ndarray, np.ndarray]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--img_dir", help="folder with Ir/ and Vis/ (default: ../shared/ivif_samples/*/{Inf,Vis})")
    p.add_argument("--ir_dir", help="infrared folder (instead of --img_dir)")
    p.add_argument("--vis_dir", help="visible folder (instead of --img_dir)")
    p.add_argument("--fused_dir", help="fused images for --img_dir (default: the sample 'Ours' folders)")
    p.add_argument("--synthetic", metavar="WxH", help="time random images of this size instead of files")
    p.add_argument("--pairs", type=int, default=4, help="number of triples to time (default 4)")
    p.add_argument("--repeats", type=int, default=2, help="runs per measurement, best kept (default 2)")
    p.add_argument("--metrics", help="comma-separated subset (default all 21)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as scripts/evaluate.py)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--no_per_metric", action="store_true", help="only time all metrics together")
    return p.parse_args(argv)


def load_triples(args: argparse.Namespace) -> List[Triple]:
    if args.synthetic:
        try:
            w, h = (int(v) for v in args.synthetic.lower().split("x"))
        except ValueError:
            raise ValueError(f"--synthetic {args.synthetic}: expected WxH, e.g. 640x480") from None
        rng = np.random.default_rng(0)
        smooth = lambda x: np.clip(x, 0, 255).astype(np.uint8)  # noqa: E731
        base = rng.normal(128, 40, (h, w))
        return [(f"synthetic{i}", smooth(base + rng.normal(0, 20, (h, w))), smooth(255 - base),
                 smooth(base * 0.6 + 40)) for i in range(args.pairs)]
    if args.img_dir or args.ir_dir:
        if not args.fused_dir:
            raise ValueError("--fused_dir is needed with --img_dir/--ir_dir")
        ir, vis = resolve_dirs(args.img_dir, args.ir_dir, args.vis_dir)
        sources = [(ir, vis, Path(args.fused_dir))]
    else:
        if not SHARED_SAMPLES.is_dir():
            raise ValueError(f"{SHARED_SAMPLES}: not found; give --img_dir and --fused_dir, or --synthetic 640x480")
        sources = [(d / "Inf", d / "Vis", d / "Ours") for d in sorted(SHARED_SAMPLES.iterdir()) if d.is_dir()]
    per_source = [_all(src) for src in sources]
    triples: List[Triple] = []
    while len(triples) < args.pairs and any(per_source):  # round-robin: 4 pairs cover the 4 sample datasets
        for lst in per_source:
            if lst and len(triples) < args.pairs:
                triples.append(lst.pop(0))
    if not triples:
        raise ValueError("no IR/VIS/fused triple found")
    return triples


def _all(source) -> List[Triple]:
    """Every (name, IR, VIS, fused) of one (IR folder, VIS folder, fused folder)."""
    ir, vis, fused_dir = source
    if not Path(fused_dir).is_dir():
        raise ValueError(f"{fused_dir}: no such directory (fused images)")
    fused = list_images(fused_dir)
    return [(name, read_gray(i), read_gray(v), read_gray(fused[name]))
            for name, i, v in pair_folders(ir, vis).pairs if name in fused]


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        names = parse_metric_list(args.metrics)
        device = pick_device(args.device)
        triples = load_triples(args)
    except (MetricNameError, DeviceError, PairingError, MetricImageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    size = f"{triples[0][1].shape[1]}x{triples[0][1].shape[0]}"
    print(f"{len(triples)} triple(s) of {size}, device {device}, {args.threads} thread(s), best of {args.repeats}")
    compute_metrics(*triples[0][1:], names, device)  # warm-up (first-call allocations, lazy imports)
    totals = [best_time(lambda t=t: compute_metrics(*t[1:], names, device), args.repeats) for t in triples]
    per_pair = sum(totals) / len(totals)
    if not args.no_per_metric:
        print("| metric | s / triple |")
        print("|---|---:|")
        for m in names:
            s = sum(best_time(lambda t=t: compute_metrics(*t[1:], [m], device), args.repeats) for t in triples)
            print(f"| {m} | {s / len(triples):.4f} |")
    print(f"all {len(names)} metrics: {per_pair:.3f} s per triple "
          f"(min {min(totals):.3f}, max {max(totals):.3f}; reference toolkit ~13 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
