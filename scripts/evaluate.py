"""Score fused images with the 21 IVIF_ZOO fusion metrics, for one method or several side by side.

    python scripts/evaluate.py --ir_dir IR --vis_dir VIS --fused_dir FUSED --out REPORT_DIR
    python scripts/evaluate.py --img_dir DATA --fused_dir result/a --fused_dir result/b --out REPORT_DIR
    python scripts/evaluate.py --img_dir DATA --methods SAGE=result/sage TarDAL=result/tardal --metrics EN,SD,VIF

Files are paired by base name (png/jpg/jpeg/bmp/tif/tiff, any mix). One method writes REPORT_DIR/metrics.csv
(one row per image), summary.csv and summary.md; several methods write the same per method in
REPORT_DIR/<method>/ plus comparison.csv/.md (best value per metric in bold) and plots/<group>.png, and
are scored on the pairs that every method has. Definitions follow the IVIF_ZOO toolkit (see docs/metrics.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from data.pairs import PairingError, add_pair_dir_arguments, list_images, pair_folders, resolve_dirs  # noqa: E402
from metrics.evaluate import evaluate_folders, final_line, format_summary  # noqa: E402
from metrics.registry import MetricNameError, parse_metric_list  # noqa: E402
from metrics.report import comparison_markdown, plot_groups, write_comparison, write_report  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pair_dir_arguments(p, "folder holding Ir/ (Inf, ir, IR) and Vis/ (Vi, vi, VIS), as for test.py")
    p.add_argument("--fused_dir", action="append", default=[], metavar="DIR",
                   help="folder of fused images; repeat to compare methods (named after the folder)")
    p.add_argument("--methods", nargs="+", default=[], metavar="NAME=DIR",
                   help="methods to compare, each as name=folder")
    p.add_argument("--out", default="result/metrics", help="report folder (default result/metrics)")
    p.add_argument("--metrics", help="comma-separated subset, e.g. EN,SD,SSIM (default: all 21)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: CUDA when present). "
                   "The reference values are CPU float32; a GPU may differ by ~1e-4 on Qcb")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads while scoring (default 1: fastest for these small ops on a shared CPU)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def method_dirs(args: argparse.Namespace) -> Dict[str, Path]:
    """{method name: fused folder}, from --methods name=dir and --fused_dir (named after the folder)."""
    out: Dict[str, Path] = {}
    for item in args.methods:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--methods {item}: expected name=folder")
        if name in out:
            raise ValueError(f"--methods: method name '{name}' given twice")
        out[name] = Path(folder)
    for folder in args.fused_dir:
        folder = Path(folder)
        name = folder.name or str(folder)
        if name in out:  # result/a/fused and result/b/fused -> a_fused, b_fused
            name = f"{folder.parent.name}_{name}"
        k = 2
        base = name
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out[name] = folder
    if not out:
        raise ValueError("give --fused_dir DIR (repeatable) or --methods name=dir ...")
    for name, folder in out.items():
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such directory (fused images of method '{name}')")
    return out


def common_names(ir_dir: Path, vis_dir: Path, methods: Dict[str, Path]) -> Tuple[List[str], Dict[str, List[str]]]:
    """Pair names that every method has a fused image for, and per method the pairs it lacks."""
    pairs = [name for name, _, _ in pair_folders(ir_dir, vis_dir).pairs]
    have = {m: set(list_images(d)) for m, d in methods.items()}
    common = [n for n in pairs if all(n in h for h in have.values())]
    lacking = {m: [n for n in pairs if n not in h] for m, h in have.items()}
    return common, lacking


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        metrics = parse_metric_list(args.metrics)
        device = pick_device(args.device)
        ir_dir, vis_dir = resolve_dirs(args.img_dir, args.ir_dir, args.vis_dir)
        methods = method_dirs(args)
    except (MetricNameError, DeviceError, PairingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    progress = not args.no_progress
    if len(methods) == 1:
        (name, fused_dir), = methods.items()
        rows, summary = evaluate_folders(ir_dir, vis_dir, fused_dir, metrics, device, progress,
                                         threads=args.threads)
        if rows:
            write_report(out, rows, summary)
        print(format_summary(summary, "markdown"))
        print(final_line(summary) + (f" Report in {out}/" if rows else " Nothing written."))
        return 0 if rows else 1

    names, lacking = common_names(ir_dir, vis_dir, methods)
    for m, lack in lacking.items():
        if lack:
            print(f"{m}: no fused image for {len(lack)} pair(s) ({', '.join(lack[:5])}{' ...' if len(lack) > 5 else ''});"
                  " those pairs are left out for every method", file=sys.stderr)
    if not names:
        print("error: no IR/VIS pair has a fused image from every method; nothing to compare", file=sys.stderr)
        return 1
    summaries = {}
    for m, fused_dir in methods.items():
        rows, summary = evaluate_folders(ir_dir, vis_dir, fused_dir, metrics, device, progress, names=names,
                                         threads=args.threads)
        write_report(out / m, rows, summary)
        summaries[m] = summary
        print(final_line(summary))
    write_comparison(out, summaries)
    plots = plot_groups(out, summaries)
    print(comparison_markdown(summaries))
    print(f"Compared {len(methods)} methods on {len(names)} pairs; tables in {out}/, {len(plots)} plots in {out / 'plots'}/")
    return 0 if all(s.count for s in summaries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
