"""Per-class IoU and mIoU of a segmentation of fused images (FMB's classes by default).

Three ways to get the predictions, all scored against --label_dir (PNGs of class indices, same base names):

    # 1. predicted label maps already on disk (PNG of class indices)
    python scripts/eval_segmentation.py --pred_dir PRED --label_dir FMB/test/Label

    # 2. a segmenter folder from scripts/train_segmenter.py (or any SegFormer with these classes)
    python scripts/eval_segmentation.py --fused_dir result/fmb_test --label_dir FMB/test/Label \
        --checkpoint checkpoints/segmenter_fused

    # 3. the paper's downstream protocol: train a segmenter on the fused TRAINING images, then score
    python scripts/eval_segmentation.py --fused_dir result/fmb_test --label_dir FMB/test/Label \
        --train_fused_dir result/fmb_train --train_label_dir FMB/train/Label --arch b3 --steps 40000

The confusion matrix is accumulated over the whole split; IoU_c = TP / (TP + FP + FN); mIoU is the mean
over the evaluated classes that occur. By default FMB's background (label 0) is not evaluated: its
pixels are skipped and never predicted (--background include counts it as a 15th class). Writes
per_class_iou.csv and miou.json to --out_dir; the last line printed is `mIoU <value in percent>`.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.imageio import ImageReadError, read_index_map  # noqa: E402
from data.pairs import PairingError, list_images  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402
from semantic.classes import (FMB_CLASSES, SemanticConfigError, background_classes,  # noqa: E402
                              check_ignore_index, check_num_classes, load_class_names, resolve_ignore_classes)
from downstream.segmentation.miou import SegmentationScore  # noqa: E402
from downstream.segmentation.data import SegmentationSet, pair_images_labels, read_checked_label  # noqa: E402
from semantic.segformer import ARCHS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label_dir", required=True, help="ground-truth label PNGs (class indices)")
    src = p.add_argument_group("predictions (one of)")
    src.add_argument("--pred_dir", help="predicted label PNGs (class indices), named like the labels")
    src.add_argument("--fused_dir", help="fused (or any) images to segment, named like the labels")
    src.add_argument("--checkpoint", help="segmenter folder to segment --fused_dir with")
    src.add_argument("--train_fused_dir", help="fused training images: train a segmenter on them first")
    src.add_argument("--train_label_dir", help="labels of the training images")
    p.add_argument("--class_names", default=None, help="YAML class list in label order (default: FMB's 15 classes)")
    p.add_argument("--num_classes", type=int, default=None,
                   help="number of classes (default: the class list's length; without a class list, names "
                        "class_0.. are made up when it differs from FMB's 15)")
    p.add_argument("--ignore_index", type=int, default=255, help="label value that is never scored (default 255)")
    p.add_argument("--background", choices=("ignore", "include"), default="ignore",
                   help="evaluate the class named 'background' or skip it (default skip, as FMB's benchmark)")
    p.add_argument("--out_dir", default="result/seg_eval", help="where per_class_iou.csv and miou.json go")
    p.add_argument("--save_pred_dir", default=None, help="also write the predicted class maps here")
    p.add_argument("--input_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="resize images to this for the segmenter (default: their own size)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    t = p.add_argument_group("training the downstream segmenter (with --train_fused_dir)")
    t.add_argument("--segmenter_out", default=None, help="where to save it (default <out_dir>/segmenter)")
    t.add_argument("--arch", choices=tuple(ARCHS), default="b0", help="SegFormer size (the paper used B3)")
    t.add_argument("--init", default=None, help="local SegFormer folder to start from (e.g. ImageNet MiT weights)")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch_size", type=int, default=8)
    t.add_argument("--lr", type=float, default=6e-4)
    t.add_argument("--crop", type=int, nargs=2, default=(384, 384), metavar=("H", "W"))
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def class_list(args: argparse.Namespace) -> List[str]:
    if args.class_names is None and args.num_classes is not None and args.num_classes != len(FMB_CLASSES):
        if args.num_classes < 1:
            raise SemanticConfigError(f"--num_classes {args.num_classes}: must be at least 1")
        return [f"class_{k}" for k in range(args.num_classes)]
    names = load_class_names(args.class_names)
    check_num_classes(names, args.num_classes, "--num_classes")
    return names


def score_pred_dir(args, score: SegmentationScore, num_classes: int) -> None:
    from tqdm import tqdm

    for d, flag in ((args.pred_dir, "--pred_dir"), (args.label_dir, "--label_dir")):
        if not Path(d).is_dir():
            raise PairingError(f"{flag} {d}: no such directory")
    preds, labels = list_images(args.pred_dir), list_images(args.label_dir)
    if not labels:
        raise PairingError(f"{args.label_dir}: no label images")
    missing = sorted(set(labels) - set(preds))
    if missing:
        raise PairingError(f"{args.pred_dir}: no prediction for {len(missing)} of {len(labels)} labels "
                           f"(e.g. '{missing[0]}')")
    for name in tqdm(sorted(labels), desc="score", disable=args.no_progress, dynamic_ncols=True):
        lab = read_checked_label(labels[name], num_classes, args.ignore_index)
        pred = read_index_map(preds[name])
        if pred.shape != lab.shape:
            raise ImageReadError(f"{preds[name]}: size {pred.shape[1]}x{pred.shape[0]} differs from its label "
                                 f"({lab.shape[1]}x{lab.shape[0]})")
        score.update(pred, lab, name=str(preds[name]))


def score_segmenter(args, score: SegmentationScore, names: List[str], ignored: List[int]) -> None:
    from downstream.segmentation.training import load_trained_judge, score_folder, train_segmenter

    device = pick_device(args.device)
    checkpoint = args.checkpoint
    if args.train_fused_dir or args.train_label_dir:
        if not (args.train_fused_dir and args.train_label_dir):
            raise PairingError("give both --train_fused_dir and --train_label_dir to train a segmenter")
        if checkpoint:
            raise PairingError("give either --checkpoint or --train_fused_dir/--train_label_dir, not both")
        train = SegmentationSet(pair_images_labels(args.train_fused_dir, args.train_label_dir), len(names),
                                args.ignore_index, crop=tuple(args.crop), seed=args.seed)
        checkpoint = args.segmenter_out or str(Path(args.out_dir) / "segmenter")
        train_segmenter(train, checkpoint, names, arch=args.arch, init=args.init, steps=args.steps,
                        batch_size=args.batch_size, lr=args.lr, ignore_index=args.ignore_index, ignored=ignored,
                        device=device, seed=args.seed, workers=args.workers,
                        meta={"images": str(args.train_fused_dir)}, progress=not args.no_progress)
    if not checkpoint:
        raise PairingError("with --fused_dir give --checkpoint or --train_fused_dir/--train_label_dir")
    judge = load_trained_judge(checkpoint, names, tuple(args.input_size) if args.input_size else None)
    test = SegmentationSet(pair_images_labels(args.fused_dir, args.label_dir), len(names), args.ignore_index,
                           crop=None)
    score_folder(judge, test, score, device, exclude=ignored, save_dir=args.save_pred_dir,
                 progress=not args.no_progress)


def report(score: SegmentationScore, out_dir: Path, source: str) -> float:
    """Print the table, write CSV/JSON, return mIoU in percent."""
    summary = score.summary()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'class':<14}{'IoU %':>8}{'GT px':>12}{'pred px':>12}")
    for name, v in summary["per_class"].items():
        iou = "ignored" if not v["evaluated"] else ("n/a" if v["iou"] is None else f"{100 * v['iou']:.2f}")
        print(f"{name:<14}{iou:>8}{v['gt_pixels']:>12}{v['pred_pixels']:>12}")
        rows.append([name, "" if v["iou"] is None else f"{100 * v['iou']:.4f}", v["gt_pixels"], v["pred_pixels"],
                     int(v["evaluated"])])
    miou = 100 * summary["mIoU"]
    with open(out_dir / "per_class_iou.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "iou_percent", "gt_pixels", "pred_pixels", "evaluated"])
        w.writerows(rows)
        w.writerow(["mIoU", f"{miou:.4f}", "", "", ""])
    summary.update(mIoU_percent=miou, source=source)
    (out_dir / "miou.json").write_text(json.dumps(summary, indent=2))
    print(f"pixel accuracy {100 * summary['pixel_accuracy']:.2f} %, {len(summary['evaluated_classes'])} classes "
          f"evaluated; wrote {out_dir / 'per_class_iou.csv'} and {out_dir / 'miou.json'}")
    return miou


def main(argv=None) -> float:
    args = parse_args(argv)
    names = class_list(args)
    check_ignore_index(args.ignore_index, names, "--ignore_index")
    ignored = resolve_ignore_classes(background_classes(names) if args.background == "ignore" else [], names)
    score = SegmentationScore(names, args.ignore_index, ignored)
    if args.pred_dir:
        if args.fused_dir or args.checkpoint or args.train_fused_dir:
            raise PairingError("--pred_dir scores existing predictions; do not combine it with --fused_dir, "
                               "--checkpoint or --train_fused_dir")
        score_pred_dir(args, score, len(names))
        source = f"pred_dir {args.pred_dir}"
    elif args.fused_dir:
        score_segmenter(args, score, names, ignored)
        source = f"fused_dir {args.fused_dir}"
    else:
        raise PairingError("give --pred_dir, or --fused_dir with --checkpoint or --train_fused_dir/--train_label_dir")
    miou = report(score, Path(args.out_dir), source)
    print(f"mIoU {miou:.2f}" if math.isfinite(miou) else "mIoU nan")
    return miou


def cli(argv=None) -> int:
    """main() with the expected errors turned into one line on stderr and exit status 2."""
    try:
        main(argv)
    except (SemanticConfigError, PairingError, ImageReadError, DeviceError, FloatingPointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
