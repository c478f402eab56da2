"""Time the 21 fusion metrics: seconds per IR/VIS/fused triple, in all and per metric.

    python scripts/benchmark_metrics.py                     # the reference triples (640x480): ivif_samples/ of the reference folder
    python scripts/benchmark_metrics.py --img_dir DATA --fused_dir FUSED --pairs 5
    python scripts/benchmark_metrics.py --synthetic 640x480 --repeats 3 --threads 1

Each measurement is the best of --repeats runs (the least disturbed by other processes), as wall-clock
and as this process's CPU time (the fairer figure on a shared machine). The per-metric times are each
metric computed alone, so they add up to more than the all-metrics time, which shares work (SSIM inside
MS-SSIM). The speed-up is printed against IVIF_ZOO's own eval_torch.py on one 640x480 triple:
--ivif-zoo-seconds (default 18.6 s, measured side by side on a 2-core AMD EPYC, see docs/metrics.md).
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

from data.pairs import PairingError, add_pair_dir_arguments, list_images, pair_folders, resolve_dirs  # noqa: E402
from metrics.imread import MetricImageError, read_gray  # noqa: E402
from metrics.registry import MetricNameError, compute_metrics, parse_metric_list  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402
from utils.reference import reference_dir  # noqa: E402

SHARED_SAMPLES = reference_dir() / "ivif_samples"  # $SAGE_REFERENCE_DIR or the folder beside the checkout (docs/testing.md)

Triple = Tuple[str, np.ndarray, np.ndarray, np.ndarray]

# IVIF_ZOO eval_torch.py on one 640x480 triple, all 21 metrics, timed side by side with this script on a
# 2-core AMD EPYC (AVX2) (docs/metrics.md, "Speed").
IVIF_ZOO_SECONDS = 18.6


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pair_dir_arguments(p, "folder with Ir/ and Vis/ (default: the reference folder's ivif_samples/*/{Inf,Vis})")
    p.add_argument("--fused_dir", help="fused images for --img_dir (default: the sample 'Ours' folders)")
    p.add_argument("--synthetic", metavar="WxH", help="time random images of this size instead of files")
    p.add_argument("--pairs", type=int, default=4, help="number of triples to time (default 4)")
    p.add_argument("--repeats", type=int, default=2, help="runs per measurement, best kept (default 2)")
    p.add_argument("--metrics", help="comma-separated subset (default all 21)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as scripts/evaluate.py)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--no_per_metric", action="store_true", help="only time all metrics together")
    p.add_argument("--ivif-zoo-seconds", "--ivif_zoo_seconds", dest="ivif_zoo_seconds", type=float,
                   default=IVIF_ZOO_SECONDS, help="IVIF_ZOO's own seconds per triple on this machine, for the speed-up "
                   f"(default {IVIF_ZOO_SECONDS}: 640x480 on a 2-core AMD EPYC; 0 hides the ratio)")
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


def best_time(fn, repeats: int) -> Tuple[float, float]:
    """(wall seconds, CPU seconds of this process), each the minimum over `repeats` runs."""
    wall = cpu = float("inf")
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def speedup(seconds: float, reference: float) -> str:
    """'22.4x faster than IVIF_ZOO (18.6 s)', or '' when no reference time is given."""
    if reference <= 0 or seconds <= 0:
        return ""
    return f"{reference / seconds:.1f}x faster than IVIF_ZOO ({reference:g} s)"


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
    compute_metrics(*triples[0][1:], names, device)  # warm-up (first-call allocations, cached filters)
    totals = [best_time(lambda t=t: compute_metrics(*t[1:], names, device), args.repeats) for t in triples]
    wall = sum(t[0] for t in totals) / len(totals)
    cpu = sum(t[1] for t in totals) / len(totals)
    ref = args.ivif_zoo_seconds
    if not args.no_per_metric:
        print("| metric | s / triple (wall) | s / triple (CPU) | share of all |")
        print("|---|---:|---:|---:|")
        rows = []
        for m in names:
            times = [best_time(lambda t=t: compute_metrics(*t[1:], [m], device), args.repeats) for t in triples]
            rows.append((m, sum(t[0] for t in times) / len(times), sum(t[1] for t in times) / len(times)))
        for m, w, c in rows:
            print(f"| {m} | {w:.4f} | {c:.4f} | {100 * w / max(wall, 1e-12):.0f} % |")
    print(f"all {len(names)} metrics: {wall:.3f} s per triple wall (min {min(t[0] for t in totals):.3f}, "
          f"max {max(t[0] for t in totals):.3f}), {cpu:.3f} s CPU")
    if ref > 0:
        note = "" if size == "640x480" and len(names) == 21 else \
            " (IVIF_ZOO's time is for all 21 metrics on 640x480: not comparable here)"
        print(f"speed-up: {speedup(wall, ref)} by wall clock, {ref / max(cpu, 1e-12):.1f}x by CPU time{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
