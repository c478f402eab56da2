"""Train a SegFormer segmenter from scratch (or from a local pretrained folder) on labelled images.

    # a judge for `semantic.backend: trained`, trained on the visible training images
    python scripts/train_segmenter.py --root_dir DATA/FMB/train --out checkpoints/segmenter_fmb

    # quick CPU demo
    python scripts/train_segmenter.py --root_dir data/demo/train --out result/segmenter_demo \
        --arch tiny --steps 50 --crop 128 128 --batch_size 2

The images are read as the judge sees the fused image during teacher training (VIS -> YCrCb -> RGB with
the release's constants). Training: AdamW, linear decay, random rescaling x0.5-2, random crop, flip.
The output folder holds config.json + model.safetensors (transformers' save_pretrained, class names in
id2label), preprocessor_config.json (ImageNet mean/std) and segmenter.json (how it was trained).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.dataset import LABEL_DIR_NAMES  # noqa: E402
from data.imageio import ImageReadError  # noqa: E402
from data.pairs import VIS_DIR_NAMES, PairingError, find_subdir  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402
from semantic.classes import (SemanticConfigError, background_classes, check_ignore_index,  # noqa: E402
                              check_num_classes, load_class_names, resolve_ignore_classes)
from semantic.segformer import ARCHS  # noqa: E402
from downstream.segmentation.data import SegmentationSet, pair_images_labels  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root_dir", help="folder holding Vis/ (or Vi, vi, VIS) and Label/ (pairs share a base name)")
    p.add_argument("--image_dir", help="image folder (instead of --root_dir; e.g. fused training images)")
    p.add_argument("--label_dir", help="label folder (with --image_dir): PNGs of class indices")
    p.add_argument("--out", required=True, help="output folder for the segmenter")
    p.add_argument("--class_names", default=None,
                   help="YAML file with the class list in label order (default: FMB's 15 classes, "
                        "configs/semantic/fmb_classes.yaml)")
    p.add_argument("--num_classes", type=int, default=None, help="checked against the class list")
    p.add_argument("--ignore_index", type=int, default=255, help="label value never trained on (default 255)")
    p.add_argument("--background", choices=("ignore", "include"), default="ignore",
                   help="train on the 'background' class or ignore its pixels (default ignore, as FMB's benchmark)")
    p.add_argument("--arch", choices=tuple(ARCHS), default="b0", help="SegFormer size (default b0; tiny for demos)")
    p.add_argument("--init", default=None, help="local SegFormer folder to start from (e.g. ImageNet MiT weights)")
    p.add_argument("--steps", type=int, default=4000, help="optimiser steps (default 4000)")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--lr", type=float, default=6e-4, help="AdamW learning rate, decayed linearly to 0")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--crop", type=int, nargs=2, default=(384, 384), metavar=("H", "W"), help="training crop")
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                   help="random rescaling range before cropping")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--eval_images", type=int, default=8,
                   help="whole training images whose loss is reported before and after training")
    p.add_argument("--save_every", type=int, default=1000, help="also save every N steps (0: only at the end)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def resolve_pairs(args: argparse.Namespace):
    if args.root_dir:
        root = Path(args.root_dir)
        image_dir = Path(args.image_dir) if args.image_dir else find_subdir(root, VIS_DIR_NAMES, "visible")
        label_dir = Path(args.label_dir) if args.label_dir else find_subdir(root, LABEL_DIR_NAMES, "label")
    elif args.image_dir and args.label_dir:
        image_dir, label_dir = Path(args.image_dir), Path(args.label_dir)
    else:
        raise PairingError("give --root_dir, or both --image_dir and --label_dir")
    return image_dir, pair_images_labels(image_dir, label_dir)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from downstream.segmentation.training import train_segmenter  # imports transformers

    names = load_class_names(args.class_names)
    check_num_classes(names, args.num_classes, "--num_classes")
    check_ignore_index(args.ignore_index, names, "--ignore_index")
    ignored = resolve_ignore_classes(background_classes(names) if args.background == "ignore" else [], names)
    device = pick_device(args.device)
    image_dir, pairs = resolve_pairs(args)
    if args.steps < 1 or args.batch_size < 1:
        raise SemanticConfigError("--steps and --batch_size must be at least 1")
    data = SegmentationSet(pairs, len(names), args.ignore_index, crop=tuple(args.crop), scale_range=tuple(args.scale),
                           seed=args.seed)
    return train_segmenter(data, args.out, names, arch=args.arch, init=args.init, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                           ignore_index=args.ignore_index, ignored=ignored, device=device, seed=args.seed,
                           workers=args.workers, eval_images=args.eval_images, save_every=args.save_every,
                           meta={"images": str(image_dir)}, progress=not args.no_progress)


def cli(argv=None) -> int:
    """main() with the expected errors turned into one line on stderr and exit status 2."""
    try:
        main(argv)
    except (SemanticConfigError, PairingError, ImageReadError, DeviceError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
