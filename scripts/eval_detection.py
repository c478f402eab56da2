"""COCO-style detection scores (mAP@0.5, mAP@0.5:0.95, per-class AP) of detections on (fused) images.

    # a detector from scripts/train_detector.py on one folder of test images
    python scripts/eval_detection.py --images FUSED_TEST/ --labels LABELS/ --checkpoint runs/det_sage/detector.pt

    # several fusion methods (or IR / VIS alone) in one table and one plot; one detector each ...
    python scripts/eval_detection.py --labels LABELS/ --methods sage=F_SAGE/,ir=IR/,vis=VIS/ \
        --checkpoint sage=runs/det_sage/detector.pt,ir=runs/det_ir/detector.pt,vis=runs/det_vis/detector.pt
    # ... or one detector for all (--checkpoint FILE)

    # detections you already have (YOLO text `class cx cy w h conf`, normalised), any detector
    python scripts/eval_detection.py --images TEST_IMAGES/ --labels LABELS/ --predictions PRED/

Labels: YOLO text (`class cx cy w h`) or M3FD's VOC XML, named like the images; classes default to
M3FD's six (People, Car, Bus, Lamp, Motorcycle, Truck) or come from the checkpoint. The evaluator is
faster-coco-eval (pycocotools when it is missing): IoU 0.50:0.05:0.95, 101 recall points, 100
detections per image. Writes detection.csv, detection.md (and detection.png with --methods) to
--out_dir. Scores are printed in percent; the last line is `mAP50 <value> mAP50-95 <value>` (with
--methods: one `<method> mAP50 <value> mAP50-95 <value>` line per method). docs/downstream.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.imageio import ImageReadError, image_size  # noqa: E402
from data.pairs import PairingError  # noqa: E402
from utils.atomic import atomic_path  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402
from downstream.detection.dataset import (DetectionSet, checked_pairs, load_ground_truth,  # noqa: E402
                                          pair_images_labels, read_predictions)
from downstream.detection.evaluation import DetectionScores, evaluate_detections, format_table, markdown, pct  # noqa: E402
from downstream.detection.labels import M3FD_CLASSES, LabelError  # noqa: E402
from downstream.detection.model import WeightsError, checkpoint_class_names  # noqa: E402


class UsageError(ValueError):
    """Flags that do not fit together."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", required=True, help="ground-truth box files (.txt YOLO or .xml VOC), named like the images")
    p.add_argument("--images", help="test images (with --checkpoint: detected; with --predictions: their sizes)")
    p.add_argument("--methods", help="name=folder,... : score several image folders (one table row each)")
    p.add_argument("--checkpoint", help="detector.pt of scripts/train_detector.py; with --methods also "
                                        "name=file,... (one detector per method)")
    p.add_argument("--predictions", help="folder of YOLO prediction files (class cx cy w h conf) to score")
    p.add_argument("--classes", help="comma-separated class names in label order (default: the checkpoint's, "
                                     "else M3FD's six)")
    p.add_argument("--out_dir", default="result/det_eval", help="where detection.csv / .md / .png go")
    p.add_argument("--save_predictions", help="also write the detector's predictions as YOLO text files here "
                                              "(a subfolder per method with --methods)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--batch_size", type=int, default=4, help="images per detector call")
    p.add_argument("--allow_missing_labels", action="store_true",
                   help="score only images that have a label file (each missing one is listed)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def parse_mapping(text: str, flag: str) -> Dict[str, str]:
    """'a=x,b=y' -> {'a': 'x', 'b': 'y'} (names unique, values non-empty)."""
    out: Dict[str, str] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"{flag} {item}: expected name=path")
        if name.strip() in out:
            raise UsageError(f"{flag}: name '{name.strip()}' given twice")
        out[name.strip()] = value.strip()
    if not out:
        raise UsageError(f"{flag}: expected name=path,...")
    return out


def class_list(args: argparse.Namespace, checkpoint_classes: Optional[List[str]]) -> List[str]:
    if args.classes:
        names = [c.strip() for c in args.classes.split(",") if c.strip()]
        if checkpoint_classes is not None and [n.lower() for n in names] != [n.lower() for n in checkpoint_classes]:
            raise UsageError(f"--classes {','.join(names)} differ from the checkpoint's "
                             f"{','.join(checkpoint_classes)}")
        return names
    return list(checkpoint_classes) if checkpoint_classes is not None else list(M3FD_CLASSES)


def score_predictions(args, classes: List[str]) -> DetectionScores:
    if not args.images:
        raise UsageError("--predictions needs --images (the image sizes turn normalised boxes into pixels)")
    pairs = checked_pairs(pair_images_labels(args.images, args.labels), args.labels, args.allow_missing_labels)
    gts, sizes, names_sizes = [], [], []
    for name, img, lab in pairs:
        h, w = image_size(img)
        gts.append(load_ground_truth(Path(lab), classes, w, h, Path(img)))
        sizes.append((w, h))
        names_sizes.append((name, w, h))
    preds = read_predictions(args.predictions, names_sizes, len(classes))
    return evaluate_detections(gts, preds, sizes, classes)


def score_detector(args, image_dir: str, checkpoint: str, classes: List[str], device, save_dir: Optional[Path],
                   desc: str) -> DetectionScores:
    from downstream.detection.labels import write_yolo
    from downstream.detection.model import load_checkpoint
    from downstream.detection.training import predict_dataset

    detector = load_checkpoint(checkpoint, device)
    if [n.lower() for n in detector.class_names] != [n.lower() for n in classes]:
        raise UsageError(f"{checkpoint}: the detector predicts {','.join(detector.class_names)} but the "
                         f"evaluation uses {','.join(classes)}")
    pairs = checked_pairs(pair_images_labels(image_dir, args.labels), args.labels, args.allow_missing_labels)
    data = DetectionSet(pairs, classes)
    gts, preds, sizes = predict_dataset(detector, data, device, args.batch_size, not args.no_progress, desc)
    if save_dir is not None:
        for (name, _, _), pred, (w, h) in zip(pairs, preds, sizes):
            write_yolo(save_dir / f"{name}.txt", pred, w, h)
    return evaluate_detections(gts, preds, sizes, classes)


def write_outputs(rows: Dict[str, DetectionScores], classes: Sequence[str], out_dir: Path,
                  sources: Dict[str, str]) -> None:
    """detection.csv (every number), detection.md (the table), detection.json, and detection.png for several rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = ["method", "source", "images", "mAP50", "mAP50_95"]
    for n in classes:
        header += [f"{n}_AP50", f"{n}_AP50_95", f"{n}_gt", f"{n}_det"]
    with atomic_path(out_dir / "detection.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for method, s in rows.items():
            row = [method, sources[method], s.images, pct(s.mAP50), pct(s.mAP50_95)]
            for n in classes:
                c = s.per_class[n]
                row += [pct(c["AP50"]), pct(c["AP50_95"]), c["gt"], c["det"]]
            w.writerow(row)
    table = format_table(rows, classes)
    note = (f"\nCOCO-style AP in percent ({next(iter(rows.values())).backend}; IoU 0.50:0.05:0.95, 101 recall "
            f"points, 100 detections per image); per-class columns are AP@0.5; n/a: no ground truth.\n")
    with atomic_path(out_dir / "detection.md") as tmp:
        Path(tmp).write_text(markdown(table) + note)
    summary = {m: {"source": sources[m], "mAP50": s.mAP50, "mAP50_95": s.mAP50_95, "per_class": s.per_class,
                   "images": s.images, "backend": s.backend} for m, s in rows.items()}
    with atomic_path(out_dir / "detection.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2, default=float))
    if len(rows) > 1:
        plot_methods(rows, classes, out_dir / "detection.png")


def plot_methods(rows: Dict[str, DetectionScores], classes: Sequence[str], path: Path) -> None:
    """Grouped bars: mAP50, mAP50-95 and each class's AP50 per method (classes without ground truth left out)."""
    import math

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    classes = [n for n in classes if any(s.per_class[n]["gt"] for s in rows.values())]  # n/a classes left out
    groups = ["mAP50", "mAP50-95"] + list(classes)
    x = np.arange(len(groups))
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(groups) + 2), 4.2))
    for k, (method, s) in enumerate(rows.items()):
        vals = [s.mAP50, s.mAP50_95] + [s.per_class[n]["AP50"] for n in classes]
        vals = [100 * v if v is not None and math.isfinite(v) else 0.0 for v in vals]
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, vals, width, label=method)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=20)
    ax.set_ylabel("AP (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Detection on fused images (per class: AP@0.5)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), dpi=100, format="png")
    plt.close(fig)


def print_table(rows: Dict[str, DetectionScores], classes: Sequence[str]) -> None:
    for per in ("AP50", "AP50_95"):
        table = format_table(rows, classes, per)
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
        print()


def main(argv=None) -> Dict[str, DetectionScores]:
    args = parse_args(argv)
    modes = [m for m in ("predictions", "methods") if getattr(args, m)]
    if len(modes) > 1:
        raise UsageError("give --predictions or --methods, not both")
    out_dir = Path(args.out_dir)
    save = Path(args.save_predictions) if args.save_predictions else None
    rows: Dict[str, DetectionScores] = {}
    sources: Dict[str, str] = {}
    if args.predictions:
        if args.checkpoint:
            raise UsageError("--predictions scores existing detections; do not combine it with --checkpoint")
        classes = class_list(args, None)
        rows["predictions"] = score_predictions(args, classes)
        sources["predictions"] = str(args.predictions)
    else:
        if not args.checkpoint:
            raise UsageError("give --checkpoint (a detector.pt from scripts/train_detector.py), or --predictions")
        if args.methods:
            if args.images:
                raise UsageError("with --methods the image folders come from name=folder; drop --images")
            folders = parse_mapping(args.methods, "--methods")
            if "=" in args.checkpoint:
                ckpts = parse_mapping(args.checkpoint, "--checkpoint")
                missing = [m for m in folders if m not in ckpts]
                if missing or set(ckpts) - set(folders):
                    raise UsageError(f"--checkpoint names ({','.join(ckpts)}) must match --methods "
                                     f"({','.join(folders)})")
            else:
                ckpts = {m: args.checkpoint for m in folders}
        else:
            if not args.images:
                raise UsageError("give --images (the test images to detect on) or --methods name=folder,...")
            folders, ckpts = {"detector": args.images}, {"detector": args.checkpoint}
        names = {m: checkpoint_class_names(c) for m, c in ckpts.items()}
        first = next(iter(names.values()))
        classes = class_list(args, first)
        device = pick_device(args.device)
        for method, folder in folders.items():
            sub = None if save is None else (save / method if args.methods else save)
            rows[method] = score_detector(args, folder, ckpts[method], classes, device, sub, f"detect {method}")
            sources[method] = f"{folder} ({ckpts[method]})"
    print_table(rows, classes)
    write_outputs(rows, classes, out_dir, sources)
    print(f"wrote {out_dir / 'detection.csv'} and {out_dir / 'detection.md'}"
          + (f" and {out_dir / 'detection.png'}" if len(rows) > 1 else ""))
    if args.methods:
        for method, s in rows.items():
            print(f"{method} mAP50 {pct(s.mAP50)} mAP50-95 {pct(s.mAP50_95)}")
    else:
        s = next(iter(rows.values()))
        print(f"mAP50 {pct(s.mAP50)} mAP50-95 {pct(s.mAP50_95)}")
    return rows


def cli(argv=None) -> int:
    """main() with the expected errors turned into one line on stderr and exit status 2."""
    try:
        main(argv)
    except (UsageError, PairingError, ImageReadError, LabelError, WeightsError, DeviceError, ValueError) as exc:
        print(f"error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
