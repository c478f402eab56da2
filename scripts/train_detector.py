"""Train a torchvision detector on (fused) images with box labels: the paper's downstream detection protocol.

    python scripts/train_detector.py --images FUSED_TRAIN/ --labels LABELS/ --out runs/det_sage
    python scripts/train_detector.py --config configs/detection/demo.yaml \
        --images result/demo_fused/train --labels data/demo/train/Boxes --out runs/det_demo
    python scripts/train_detector.py --resume runs/det_sage/last.pt          # continue an interrupted run
    torchrun --nproc_per_node=4 scripts/train_detector.py ...                 # one process per GPU

Labels: YOLO text (`class cx cy w h`, normalised) or M3FD's VOC XML, one file per image with the same
base name; every image/label mismatch is listed. Settings come from --config (default
configs/detection/m3fd.yaml); flags override it. The run folder gets last.pt (everything to resume,
written atomically), detector.pt (the final weights: give it to scripts/eval_detection.py
--checkpoint), train.log, losses.csv and tb/ (TensorBoard). Ctrl-C finishes the current step, writes
last.pt and exits 130. docs/downstream.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

from data.imageio import ImageReadError  # noqa: E402
from data.pairs import PairingError  # noqa: E402
from data.sampler import ResumableSampler  # noqa: E402
from utils import distributed as dist_utils  # noqa: E402
from utils.config import ConfigError, apply_flags, load_config  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402
from utils.interrupt import GracefulStop  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from utils.run_state import ResumeError, rng_state, save_atomic, set_rng_state  # noqa: E402
from downstream.detection.dataset import (DetectionSet, checked_pairs, collate, pair_images_labels,  # noqa: E402
                                          validate_label_files)
from downstream.detection.labels import LabelError  # noqa: E402
from downstream.detection.model import (ARCHS, WeightsError, build_detector, count_parameters,  # noqa: E402
                                        freeze_batchnorm, load_pretrained, save_checkpoint)
from downstream.detection.training import (build_optimizer, fixed_loss, predict_dataset, train_step,  # noqa: E402
                                           warmup_cosine)

ROOT = Path(__file__).resolve().parents[1]
STATE_FORMAT = "sage-detector-train-v1"
log = logging.getLogger("train_detector")

# command-line flag -> config key
FLAG_KEYS = {"images": "images", "labels": "labels", "val_images": "val_images", "val_labels": "val_labels",
             "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr", "device": "device",
             "arch": "model.arch", "weights": "model.weights", "workers": "train.workers", "seed": "seed"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", help="training images (fused, or IR / VIS for a baseline)")
    p.add_argument("--labels", help="box files (.txt YOLO or .xml VOC) named like the images")
    p.add_argument("--out", help="run folder (must not hold a run already, unless --resume)")
    p.add_argument("--config", help="YAML settings (default configs/detection/m3fd.yaml; with --resume the run's own)")
    p.add_argument("--resume", help="last.pt of an earlier run: continue it where it stopped")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch_size", type=int, help="images per step and process")
    p.add_argument("--lr", type=float)
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--arch", choices=ARCHS, help="detector architecture")
    p.add_argument("--weights", help="local ImageNet backbone or COCO detector weights (.pth) to start from")
    p.add_argument("--val_images", help="validation images scored (mAP) every train.eval_every epochs")
    p.add_argument("--val_labels", help="their box files")
    p.add_argument("--workers", type=int, help="data loader processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--max_steps", type=int, help="stop after this many steps in total (writes last.pt; not kept "
                                                 "for --resume)")
    p.add_argument("--allow_missing_labels", action="store_true",
                   help="skip images without a label file instead of stopping (each is listed)")
    return p.parse_args(argv)


def load_resume_state(path: str) -> Dict[str, Any]:
    """A last.pt written by this script (weights_only=True), with a one-line error on a wrong file."""
    path = Path(path)
    state = load_checkpoint(path, missing="no such file (give the last.pt of an earlier run)", error=ResumeError)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResumeError(f"{path}: not a last.pt of scripts/train_detector.py (no 'format: {STATE_FORMAT}' entry)")
    return state


def build_config(args: argparse.Namespace, resumed: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if resumed is not None and not args.config:
        cfg = resumed["config"]
    else:
        cfg = load_config(args.config or ROOT / "configs" / "detection" / "m3fd.yaml")
    cfg = apply_flags(cfg, vars(args), FLAG_KEYS)
    for key in ("images", "labels"):
        if not cfg.get(key):
            raise ConfigError(f"give --{key} (or set '{key}' in the config)")
    return cfg


def setup_logging(run_dir: Path, info: dist_utils.DistInfo) -> None:
    log.handlers.clear()
    log.setLevel(logging.INFO if info.is_main else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    log.addHandler(console)
    if info.is_main:
        fh = logging.FileHandler(run_dir / "train.log")
        fh.setFormatter(fmt)
        log.addHandler(fh)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        resumed = load_resume_state(args.resume) if args.resume else None
        cfg = build_config(args, resumed)
        device = pick_device(cfg.get("device", "auto"))
        if resumed is None:
            if not args.out:
                raise ConfigError("give --out (the run folder) or --resume RUN/last.pt")
            if (Path(args.out) / "last.pt").exists():
                raise ConfigError(f"{args.out} already holds a run (last.pt); continue it with --resume "
                                  f"{Path(args.out) / 'last.pt'} or choose another --out")
    except (ConfigError, DeviceError, ResumeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = dist_utils.init(device)
    device = dist_utils.local_device(device, info)
    run_dir = Path(args.resume).parent if args.resume else Path(args.out)
    try:
        return run(cfg, device, info, resumed, run_dir, args.allow_missing_labels, args.max_steps)
    except (ConfigError, PairingError, ImageReadError, LabelError, WeightsError, ResumeError, FloatingPointError,
            ValueError) as exc:
        print(f"error: {f'[rank {info.rank}] ' if info.enabled else ''}{one_line(exc)}", file=sys.stderr)
        if info.enabled:
            raise
        return 1
    finally:
        dist_utils.cleanup()


def one_line(exc: BaseException) -> str:
    """The message of an error, also when a DataLoader worker re-raised it ("Caught X in DataLoader worker ...")."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = text.splitlines()
    if lines[0].startswith("Caught ") and len(lines) > 1:  # the original message ends the worker's traceback
        last = [ln for ln in lines if ln.strip()][-1]
        prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return lines[0]


def run(cfg: Dict[str, Any], device: torch.device, info: dist_utils.DistInfo, resumed: Optional[Dict[str, Any]],
        run_dir: Path, allow_missing: bool = False, max_steps: Optional[int] = None) -> int:
    model_cfg, train = cfg.get("model", {}), cfg.get("train", {})
    classes = list(cfg.get("classes"))
    seed = int(cfg.get("seed", 0))
    report = print if info.is_main else (lambda _line: None)
    pairs = checked_pairs(pair_images_labels(cfg["images"], cfg["labels"]), cfg["labels"], allow_missing,
                          report=report)
    n_boxes = validate_label_files(pairs, classes)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist_utils.barrier()
    setup_logging(run_dir, info)
    log.info("%d images with %d boxes (%s)", len(pairs), n_boxes, cfg["labels"])
    batch = int(train.get("batch_size", 4))
    dataset = DetectionSet(pairs, classes, hflip=float(train.get("hflip", 0.5)), seed=seed)
    sampler = ResumableSampler(dataset, num_replicas=info.world_size, rank=info.rank, seed=seed)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=int(train.get("workers", 0)),
                        collate_fn=collate, pin_memory=device.type == "cuda")
    per_epoch, epochs = len(loader), int(train.get("epochs", 1))
    total_steps = per_epoch * epochs

    torch.manual_seed(seed)
    detector = build_detector(model_cfg.get("arch", "fasterrcnn_mobilenet_v3_large_fpn"), classes,
                              int(model_cfg.get("min_size", 800)), int(model_cfg.get("max_size", 1333)))
    weights = model_cfg.get("weights")
    if resumed is not None:
        if resumed.get("frozen_bn"):
            freeze_batchnorm(detector.net.backbone)
            detector.frozen_bn = True
    elif weights:
        log.info("initialised from %s", load_pretrained(detector, weights, bool(model_cfg.get("freeze_bn", True))))
    detector.to(device)
    n_all, n_train = count_parameters(detector)
    log.info("detector %s: %.2f M parameters (%.2f M trained), %d classes | %d training images (%d steps/epoch) | "
             "device %s | %d process(es), batch %d each", detector.arch, n_all / 1e6, n_train / 1e6, len(classes),
             len(dataset), per_epoch, device, info.world_size, batch)
    opt = build_optimizer(detector, str(train.get("optimizer", "sgd")), float(train.get("lr", 0.01)),
                          float(train.get("weight_decay", 1e-4)))
    sched = warmup_cosine(opt, total_steps, int(train.get("warmup_steps", 0)))

    start_epoch, start_pos, step = 1, 0, 0
    history: List[Dict[str, float]] = []
    eval_idx = list(range(min(4, len(dataset))))
    if resumed is not None:
        detector.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["scheduler"])
        set_rng_state(resumed["rng"])
        start_epoch, step, history = int(resumed["epoch"]), int(resumed["global_step"]), list(resumed["history"])
        samples = int(resumed["step_in_epoch"]) * int(resumed["batch_size"]) * int(resumed["world_size"])
        start_pos = samples // (batch * info.world_size)
        loss_before = float(resumed["loss_before"])
        log.info("resumed from epoch %d, batch %d (step %d)", start_epoch, start_pos, step)
    else:
        loss_before = fixed_loss(detector, dataset, eval_idx, device)
    model = DDP(detector, device_ids=[device.index] if device.type == "cuda" else None) if info.enabled else detector

    writer = None
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if resumed else None)

    def save_last(epoch: int, pos: int) -> None:
        if info.is_main:
            save_atomic({"format": STATE_FORMAT, "config": cfg, "epoch": epoch, "step_in_epoch": pos,
                         "global_step": step, "world_size": info.world_size, "batch_size": batch,
                         "model": detector.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "rng": rng_state(), "history": history,
                         "loss_before": loss_before, "frozen_bn": detector.frozen_bn}, run_dir / "last.pt")

    val = None
    if cfg.get("val_images") and cfg.get("val_labels") and info.is_main:
        val = DetectionSet(checked_pairs(pair_images_labels(cfg["val_images"], cfg["val_labels"]), cfg["val_labels"],
                                         allow_missing, report=report), classes)
    eval_every = int(train.get("eval_every", 1))
    every = int(train.get("checkpoint_every", 0))
    clip = float(train.get("clip_grad", 10.0))
    stopped = False
    t0 = time.time()
    interrupt = GracefulStop(enabled=not info.enabled, on_request=lambda sig: log.warning(
        "%s: finishing this step, then writing last.pt and stopping (Ctrl-C again aborts at once)", sig))
    with interrupt:
        for epoch in range(start_epoch, epochs + 1):
            first = start_pos if epoch == start_epoch else 0
            sampler.set_epoch(epoch, start=first * batch)
            dataset.set_epoch(epoch)
            bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", initial=first, total=per_epoch, unit="batch",
                       dynamic_ncols=True, disable=not info.is_main)
            for i, (images, targets, _) in enumerate(bar, start=first):
                terms = train_step(model, opt, sched, images, targets, device, clip, step)
                step += 1
                history.append({"step": step, "epoch": epoch, **terms})
                bar.set_postfix_str(f"loss {terms['total']:.4g}")
                if writer is not None:
                    for k, v in terms.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("lr", opt.param_groups[0]["lr"], step)
                last_in_epoch = i + 1 == per_epoch
                if ((max_steps is not None and step >= int(max_steps)) or interrupt.requested) and not last_in_epoch:
                    save_last(epoch, i + 1)
                    stopped = True
                    break
                if every and (i + 1) % every == 0 and not last_in_epoch:
                    save_last(epoch, i + 1)
            bar.close()
            if stopped:
                break
            save_last(epoch + 1, 0)
            if val is not None and (epoch % max(1, eval_every) == 0 or epoch == epochs):
                scores = validate(detector, val, classes, device)
                writer.add_scalar("val/mAP50", scores.mAP50, step)
                writer.add_scalar("val/mAP50_95", scores.mAP50_95, step)
                log.info("epoch %d: validation mAP50 %.2f mAP50-95 %.2f", epoch, 100 * scores.mAP50,
                         100 * scores.mAP50_95)
            log.info("epoch %d done (step %d, loss %.4g, %.0f s)", epoch, step, history[-1]["total"] if history
                     else float("nan"), time.time() - t0)
            if (max_steps is not None and step >= int(max_steps)) or interrupt.requested:
                stopped = epoch < epochs
                break
    if writer is not None:
        writer.close()
    if info.is_main:
        write_history(history, run_dir)
        if not stopped:
            loss_after = fixed_loss(detector, dataset, eval_idx, device)
            save_checkpoint(detector, run_dir / "detector.pt", {"loss_before": loss_before, "loss_after": loss_after,
                                                                "images": str(cfg["images"]), "steps": step})
            log.info("loss on %d training images: before %.4f -> after %.4f", len(eval_idx), loss_before, loss_after)
            log.info("finished after %d steps (%.0f s); detector weights in %s", step, time.time() - t0,
                     run_dir / "detector.pt")
        else:
            log.warning("stopped at step %d: continue with  python scripts/train_detector.py --resume %s", step,
                        run_dir / "last.pt")
    return 130 if interrupt.requested else 0


def validate(detector, data: DetectionSet, classes: List[str], device: torch.device):
    from downstream.detection.evaluation import evaluate_detections

    gts, preds, sizes = predict_dataset(detector, data, device, progress=False)
    detector.train()
    return evaluate_detections(gts, preds, sizes, classes)


def write_history(history: List[Dict[str, float]], run_dir: Path) -> None:
    """losses.csv: one row per step."""
    if not history:
        return
    keys = sorted({k for rec in history for k in rec} - {"step", "epoch"})
    lines = [",".join(["step", "epoch"] + keys)]
    lines += [",".join([str(r["step"]), str(r["epoch"])] + [f"{r[k]:.6g}" if k in r else "" for k in keys])
              for r in history]
    (run_dir / "losses.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
