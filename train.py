"""Train the SAGE teacher and distil it into the student (SPEC-SAGE.md sections 4-6).

    python train.py --config configs/fmb.yaml --root_dir path/to/FMB/train
    python train.py --config configs/demo.yaml                       # a few minutes on a CPU
    python train.py --resume runs/sage_fmb/last.pt                     # continue an interrupted run
    torchrun --nproc_per_node=2 train.py --config configs/fmb.yaml ... # DistributedDataParallel

The release's flag names work (--batch_size --epochs --crop_size --root_dir --use_mask_num
--cache_mask_num --checkpoint_teacher --checkpoint_student --learning_rate_Teacher
--learning_rate_Student --learning_rate_min --report_freq --seed --student_epoch --ini_epoch --save);
any config key can be set with --set section.key=value.

Schedule (the release's): from `student_epoch` on, even-numbered batches of an epoch train the student
(teacher forward without gradients) and odd ones the teacher; an epoch that ends on a student step
reuses its last batch once for a teacher step. Before `student_epoch` every batch trains the teacher.
A run writes <run>/teacher/epoch_N.pt, <run>/student/epoch_N.pt, <run>/last.pt (everything needed to
resume), <run>/train.log, <run>/tb/ (TensorBoard), <run>/losses.csv and <run>/loss_curves.png.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.colour import ycrcb_to_rgb
from data.dataset import FusionTrainSet
from data.imageio import ImageReadError
from data.pairs import PairingError
from data.sampler import ResumableSampler
from losses.totals import NonFiniteLossError, check_finite, student_loss, teacher_loss
from losses.weights import LossWeights
from models.checkpoint import CheckpointError, load_weights, read_state_dict
from models.student import Student
from models.teacher import Teacher
from utils import distributed as dist_utils
from utils.config import ConfigError, apply_flags, apply_overrides, get_dotted, load_config, merge
from utils.device import DeviceError, pick_device
from utils.interrupt import GracefulStop
from utils.plots import plot_loss_curves
from utils.run_state import ResumeError, load_train_state, rng_state, save_atomic, set_rng_state

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("sage.train")

# release flag -> config key (type)
RELEASE_FLAGS = {
    "root_dir": ("root_dir", str), "save": ("save", str), "save_dir": ("save_dir", str),
    "seed": ("seed", int), "device": ("device", str),
    "batch_size": ("train.batch_size", int), "epochs": ("train.epochs", int),
    "student_epoch": ("train.student_epoch", int), "ini_epoch": ("train.ini_epoch", int),
    "learning_rate_Teacher": ("train.lr_teacher", float), "learning_rate_Student": ("train.lr_student", float),
    "learning_rate_min": ("train.lr_min", float), "report_freq": ("train.report_freq", int),
    "max_steps": ("train.max_steps", int),
    "use_mask_num": ("sam.use_mask_num", int), "cache_mask_num": ("sam.cache_mask_num", int),
    "sam_checkpoint": ("sam.checkpoint", str),
    "checkpoint_teacher": ("init.checkpoint_teacher", str), "checkpoint_student": ("init.checkpoint_student", str),
}


class TrainError(RuntimeError):
    """A run that cannot go on; the message says why (one line)."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", metavar="YAML",
                   help="YAML config (default configs/fmb.yaml; with --resume: the run's own config). Repeat it "
                        "to merge several in order, e.g. --config configs/fmb.yaml --config configs/semantic/trained.yaml")
    p.add_argument("--resume", help="last.pt of an earlier run: continue it where it stopped")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.epochs=10 (repeatable)")
    p.add_argument("--crop_size", type=int, nargs="+", help="crop H W (one value: square)")
    for flag, (key, typ) in RELEASE_FLAGS.items():
        p.add_argument(f"--{flag}", type=typ, help=f"config key {key}")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace, resumed: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if args.config or resumed is None:
        cfg: Dict[str, Any] = {}
        for path in args.config or [ROOT / "configs" / "fmb.yaml"]:
            cfg = merge(cfg, load_config(path))
    else:
        cfg = resumed["config"]
    apply_flags(cfg, vars(args), {flag: key for flag, (key, _) in RELEASE_FLAGS.items()})
    if args.crop_size:
        cs = args.crop_size
        cfg.setdefault("data", {})["crop_size"] = [cs[0], cs[-1]]
    return apply_overrides(cfg, args.set)


# ----------------------------------------------------------------------------- building blocks

TRAIN_ONLY_SAM_KEYS = ("cache_dir", "build_cache_if_missing", "preset")


def sam_settings(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The config's `sam` section resolved against SAM/settings.py (preset from configs/sam.yaml applied)."""
    from SAM.settings import resolve_settings

    sam = dict(cfg.get("sam", {}))
    preset = sam.get("preset")
    sam = {k: v for k, v in sam.items() if k not in TRAIN_ONLY_SAM_KEYS}
    presets = load_config(ROOT / "configs" / "sam.yaml").get("presets", {})
    return resolve_settings(sam, None if preset in (None, "release") else preset, presets)


def build_segments(cfg: Dict[str, Any], root: Path, info: dist_utils.DistInfo):
    """The segment-image provider for the dataset (the cache is built first when configured)."""
    from SAM.segments import SegmentProvider

    settings = sam_settings(cfg)
    cache_dir = Path(get_dotted(cfg, "sam.cache_dir") or root / "Mask_cache")
    checkpoint = settings.get("checkpoint")
    if get_dotted(cfg, "sam.build_cache_if_missing"):
        from SAM.cache_builder import build_cache
        if info.is_main:
            summary = build_cache(root, sam_checkpoint=checkpoint, settings=settings, cache_dir=cache_dir,
                                  progress=True)
            log.info("segment cache %s: %d built, %d already there", cache_dir, summary.built, summary.skipped)
        dist_utils.barrier()
    return SegmentProvider(cache_dir, use_mask_num=settings["use_mask_num"], expected_settings=settings,
                           allow_fill_missing=settings["allow_fill_missing"],
                           expected_checkpoint=checkpoint or "none")


def build_loader(cfg: Dict[str, Any], info: dist_utils.DistInfo):
    data, train = cfg.get("data", {}), cfg["train"]
    root = Path(cfg["root_dir"])
    segments = None if train.get("student_only") else build_segments(cfg, root, info)
    dataset = FusionTrainSet(root, crop_size=data.get("crop_size", (192, 256)), seed=int(cfg.get("seed", 0)),
                             hflip=float(data.get("hflip", 0.5)), segments=segments,
                             official_label_scaling=bool(data.get("official_label_scaling", False)),
                             require_labels=False)
    sampler = ResumableSampler(dataset, num_replicas=info.world_size, rank=info.rank, seed=int(cfg.get("seed", 0)))
    workers = int(data.get("num_workers", 0))
    loader = DataLoader(dataset, batch_size=int(train["batch_size"]), sampler=sampler, num_workers=workers,
                        pin_memory=torch.cuda.is_available(), persistent_workers=False, drop_last=False,
                        worker_init_fn=ignore_sigint)
    return dataset, sampler, loader


def ignore_sigint(_worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which stops after its current step."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def maybe_load(model: torch.nn.Module, path: Optional[str], what: str) -> None:
    if path:
        load_weights(model, read_state_dict(path), path, what=what)
        log.info("initialised the %s from %s", what, path)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DDP) else model


def cosine(opt: torch.optim.Optimizer, total: int, lr_min: float):
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total), eta_min=lr_min)


def update(loss: torch.Tensor, opt: torch.optim.Optimizer, sched) -> None:
    """One optimiser step of one network, then its scheduler (each is stepped once per own update)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def colourise(f: torch.Tensor, crcb: torch.Tensor) -> torch.Tensor:
    return ycrcb_to_rgb(f, crcb[:, 0:1], crcb[:, 1:2]).clamp(0, 1)


# ----------------------------------------------------------------------------- the run

def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        resumed = load_train_state(args.resume) if args.resume else None
        cfg = build_config(args, resumed)
        device = pick_device(cfg.get("device", "auto"))
    except (ConfigError, DeviceError, ResumeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = dist_utils.init(device)
    device = dist_utils.local_device(device, info)
    try:
        return run(cfg, device, info, resumed, Path(args.resume).parent if args.resume else None)
    except (ConfigError, CheckpointError, PairingError, ImageReadError, ResumeError, TrainError,
            FileNotFoundError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        prefix = f"[rank {info.rank}] " if info.enabled else ""
        print(f"error: {prefix}{msg}", file=sys.stderr)
        if info.enabled:
            raise  # torchrun stops the other ranks and reports this one
        return 1
    finally:
        dist_utils.cleanup()


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


def run(cfg: Dict[str, Any], device: torch.device, info: dist_utils.DistInfo,
        resumed: Optional[Dict[str, Any]], resume_dir: Optional[Path]) -> int:
    train = cfg["train"]
    if not Path(cfg["root_dir"]).is_dir():
        raise PairingError(f"{cfg['root_dir']}: no such training folder (set root_dir in the config or --root_dir)")
    run_dir = resume_dir or (Path(cfg["save_dir"]) / cfg["save"] if cfg.get("save") else Path(cfg["save_dir"]))
    if info.is_main:
        (run_dir / "teacher").mkdir(parents=True, exist_ok=True)
        (run_dir / "student").mkdir(parents=True, exist_ok=True)
    dist_utils.barrier()
    setup_logging(run_dir, info)
    student_only = bool(train.get("student_only"))
    log.info("run directory %s | device %s | %d process(es) | per-process batch %d (effective %d)",
             run_dir, device, info.world_size, train["batch_size"], train["batch_size"] * info.world_size)

    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    dataset, sampler, loader = build_loader(cfg, info)
    if len(loader) == 0:
        raise TrainError(f"{cfg['root_dir']}: no training pairs")

    # Models are built right after seeding, so a resumed run rebuilds the same random SAM features.
    torch.manual_seed(seed)
    k = int(cfg["sam"].get("use_mask_num", 4))
    student = Student().to(device)
    if bool(train.get("sync_bn")) and info.enabled:
        student = torch.nn.SyncBatchNorm.convert_sync_batchnorm(student)
    teacher = None if student_only else Teacher(mask_channels=k).to(device)
    extractor, judge = None, None
    if not student_only:
        from SAM.features import build_sam_feature_extractor
        extractor = build_sam_feature_extractor(cfg["sam"].get("checkpoint"), device=device)
        from semantic import build_semantic_loss
        judge = build_semantic_loss(cfg.get("semantic", {}), device)
    maybe_load(student, get_dotted(cfg, "init.checkpoint_student"), "student")
    if teacher is not None:
        maybe_load(teacher, get_dotted(cfg, "init.checkpoint_teacher"), "teacher")

    epochs, per_epoch = int(train["epochs"]), len(loader)
    total_updates = epochs * per_epoch
    opt_s = torch.optim.Adam(student.parameters(), lr=float(train["lr_student"]))
    sched_s = cosine(opt_s, total_updates, float(train["lr_min"]))
    opt_t = sched_t = None
    if teacher is not None:
        opt_t = torch.optim.Adam(teacher.parameters(), lr=float(train["lr_teacher"]))
        sched_t = cosine(opt_t, total_updates, float(train["lr_min"]))

    start_epoch, start_pos, global_step, batches_done = 1, 0, 0, 0
    history: List[Dict[str, float]] = []
    if resumed is not None:
        student.load_state_dict(resumed["student"])
        opt_s.load_state_dict(resumed["opt_student"])
        sched_s.load_state_dict(resumed["sched_student"])
        if teacher is not None:
            teacher.load_state_dict(resumed["teacher"])
            opt_t.load_state_dict(resumed["opt_teacher"])
            sched_t.load_state_dict(resumed["sched_teacher"])
        set_rng_state(resumed["rng"])
        start_epoch, global_step, batches_done = resumed["epoch"], resumed["global_step"], resumed["batches_done"]
        # Position in the epoch as a sample count over all processes: valid for any process count.
        samples = resumed["step_in_epoch"] * int(resumed["batch_size"]) * int(resumed["world_size"])
        start_pos = samples // (int(train["batch_size"]) * info.world_size)
        if start_pos * int(train["batch_size"]) * info.world_size != samples:
            log.warning("resuming with another process count: position rounded down to batch %d", start_pos)
        history = list(resumed.get("history", []))
        log.info("resumed from epoch %d, batch %d (update %d)", start_epoch, start_pos, global_step)

    if info.enabled:
        student = DDP(student, device_ids=[device.index] if device.type == "cuda" else None)
        if teacher is not None:
            # Before student_epoch the distillation taps take no gradient: let DDP tolerate that.
            teacher = DDP(teacher, device_ids=[device.index] if device.type == "cuda" else None,
                          find_unused_parameters=True)

    writer = None
    if info.is_main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run_dir / "tb"), purge_step=global_step if resumed else None)

    student_epoch, ini_epoch = int(train.get("student_epoch", 1)), int(train.get("ini_epoch", 1))
    report = max(1, int(train.get("report_freq", 50)))
    every = max(1, int(train.get("checkpoint_every", 200)))
    max_steps = train.get("max_steps")
    contrast_mask = get_dotted(cfg, "loss.contrast_mask", "image")
    sem_weight = float(get_dotted(cfg, "semantic.weight", 0.3))
    weights = LossWeights.from_config(cfg.get("loss"))

    def to_dev(batch):
        return {k_: v.to(device, non_blocking=True) for k_, v in batch.items()}

    def finite_or_stop(terms: Dict[str, torch.Tensor], kind: str) -> None:
        """Every rank learns whether any rank saw a non-finite loss, and all stop together."""
        try:
            check_finite(terms, global_step + 1)
            bad = None
        except NonFiniteLossError as exc:
            bad = f"{kind} step: {exc}"
        if dist_utils.any_true(bad is not None, device):
            raise TrainError(bad or f"another process met a non-finite {kind} loss at update {global_step + 1}")

    def student_step(b, epoch: int) -> Tuple[Dict[str, float], Dict[str, Optional[torch.Tensor]]]:
        student.train()
        if student_only:
            out, taps_s = student(b["y"], b["ir"])  # fusion and gradient terms only: no teacher
            ref = None
            loss, terms = student_loss(out, taps_s, b["y"], b["ir"], None, None, None, None, None, weights=weights)
        else:
            with torch.no_grad():
                ref, taps_t = teacher(b["y"], b["ir"], b["vm"], b["im"])
            out, taps_s = student(b["y"], b["ir"])
            loss, terms = student_loss(out, taps_s, b["y"], b["ir"], ref, taps_t, b["vm"], b["im"], extractor,
                                       contrast_mask=contrast_mask, vm_masks=b.get("vm_mask"),
                                       im_masks=b.get("im_mask"), weights=weights)
        finite_or_stop(terms, "student")
        update(loss, opt_s, sched_s)
        return {k_: float(v) for k_, v in terms.items()}, {"student": out, "teacher": ref}

    def teacher_step(b, epoch: int) -> Tuple[Dict[str, float], Dict[str, Optional[torch.Tensor]]]:
        teacher.train()
        out_t, taps_t = teacher(b["y"], b["ir"], b["vm"], b["im"])
        mutual = epoch >= student_epoch
        ref_s = taps_s = None
        if mutual:
            with torch.no_grad():  # the student stays in train mode here, as in the release
                ref_s, taps_s = student(b["y"], b["ir"])
        loss, terms = teacher_loss(out_t, taps_t, b["y"], b["ir"], ref_s=ref_s, taps_s=taps_s, vm=b["vm"],
                                   im=b["im"], extractor=extractor, mutual=mutual, contrast_mask=contrast_mask,
                                   vm_masks=b.get("vm_mask"), im_masks=b.get("im_mask"), weights=weights)
        terms = dict(terms)
        if judge is not None and epoch >= ini_epoch:
            sem = judge(out_t, b["crcb"], b["label"])
            loss = loss + sem_weight * sem
            terms["semantic"] = sem.detach()
            terms["total"] = loss.detach()
        finite_or_stop(terms, "teacher")
        update(loss, opt_t, sched_t)
        return {k_: float(v) for k_, v in terms.items()}, {"teacher": out_t, "student": ref_s}

    def record(kind: str, epoch: int, terms: Dict[str, float], b, outs) -> None:
        nonlocal global_step
        global_step += 1
        history.append({"step": global_step, "epoch": epoch, "kind": kind, **terms})
        if writer is None:
            return
        for name, val in terms.items():
            writer.add_scalar(f"{kind}/{name}", val, global_step)
        opt = opt_s if kind == "student" else opt_t
        writer.add_scalar(f"lr/{kind}", opt.param_groups[0]["lr"], global_step)
        if global_step % report == 0:
            log_images(writer, b, outs, global_step)
            log.info("epoch %d update %d %s %s", epoch, global_step, kind,
                     " ".join(f"{n}={v:.4g}" for n, v in terms.items()))

    def save_last(epoch: int, pos: int) -> None:
        if not info.is_main:
            return
        state = {
            "format": "sage-train-state-v1", "config": cfg, "epoch": epoch, "step_in_epoch": pos,
            "global_step": global_step, "batches_done": batches_done, "world_size": info.world_size,
            "batch_size": int(train["batch_size"]), "student": unwrap(student).state_dict(),
            "opt_student": opt_s.state_dict(), "sched_student": sched_s.state_dict(), "rng": rng_state(),
            "history": history,
        }
        if teacher is not None:
            state.update(teacher=unwrap(teacher).state_dict(), opt_teacher=opt_t.state_dict(),
                         sched_teacher=sched_t.state_dict())
        save_atomic(state, run_dir / "last.pt")

    stopped = False
    t0 = time.time()
    interrupt = GracefulStop(enabled=not info.enabled, on_request=lambda sig: log.warning(
        "%s: finishing this step, then writing last.pt and stopping (Ctrl-C again aborts at once)", sig))

    def stop_wanted() -> bool:
        return (max_steps is not None and batches_done >= int(max_steps)) or interrupt.requested is not None

    with interrupt:  # the handlers are restored whatever happens
        for epoch in range(start_epoch, epochs + 1):
            first = start_pos if epoch == start_epoch else 0
            sampler.set_epoch(epoch, start=first * int(train["batch_size"]))
            dataset.set_epoch(epoch)
            bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", initial=first, total=per_epoch, unit="batch",
                       dynamic_ncols=True, disable=not info.is_main)
            kind, b = None, None
            for i, batch in enumerate(bar, start=first):
                b = to_dev(batch)
                kind = "student" if student_only or (epoch >= student_epoch and i % 2 == 0) else "teacher"
                terms, outs = (student_step if kind == "student" else teacher_step)(b, epoch)
                record(kind, epoch, terms, b, outs)
                batches_done += 1
                bar.set_postfix_str(f"{kind[0]} loss {terms['total']:.4g}")
                last_in_epoch = i + 1 == per_epoch
                if stop_wanted() and not last_in_epoch:
                    save_last(epoch, i + 1)
                    stopped = True
                    break
                if (i + 1) % every == 0 and not last_in_epoch:
                    save_last(epoch, i + 1)
            bar.close()
            if stopped:
                break
            if kind == "student" and not student_only:  # the release reuses the last batch for a teacher step
                terms, outs = teacher_step(b, epoch)
                record("teacher", epoch, terms, b, outs)
            if info.is_main:
                save_atomic(unwrap(student).state_dict(), run_dir / "student" / f"epoch_{epoch}.pt")
                if teacher is not None:
                    save_atomic(unwrap(teacher).state_dict(), run_dir / "teacher" / f"epoch_{epoch}.pt")
            save_last(epoch + 1, 0)
            log.info("epoch %d done (%d updates, %.0f s)", epoch, global_step, time.time() - t0)
            if stop_wanted():
                stopped = True
                break

    if writer is not None:
        writer.close()
    if info.enabled:
        check_replicas(run_dir, info, {"student": unwrap(student), "teacher": unwrap(teacher) if teacher else None})
    if info.is_main:
        write_history(history, run_dir)
        if not stopped:
            export = get_dotted(cfg, "export.student_to")
            if export:
                save_atomic(unwrap(student).state_dict(), export)
                log.info("student copied to %s", export)
        log.info("%s after %d updates; weights in %s", "stopped" if stopped else "finished", global_step, run_dir)
        if interrupt.requested:
            log.warning("interrupted (%s): continue with  python train.py --resume %s", interrupt.requested,
                        run_dir / "last.pt")
    return 130 if interrupt.requested else 0


def weights_digest(model: Optional[torch.nn.Module]) -> Optional[str]:
    """SHA-256 of a network's parameters (not its buffers: per-process BatchNorm statistics may differ)."""
    if model is None:
        return None
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_replicas(run_dir: Path, info: dist_utils.DistInfo, models: Dict[str, Optional[torch.nn.Module]]) -> None:
    """Distributed runs: every rank must end with identical weights; rank 0 records the digests."""
    import torch.distributed as dist

    mine = {k: weights_digest(m) for k, m in models.items()}
    gathered: List[Dict[str, Optional[str]]] = [None] * info.world_size  # type: ignore[list-item]
    dist.all_gather_object(gathered, mine)
    if info.is_main:
        (run_dir / "rank_digests.json").write_text(json.dumps(gathered, indent=1) + "\n")
        same = all(g == gathered[0] for g in gathered)
        (log.info if same else log.error)("weights %s on all %d ranks", "identical" if same else "DIFFER",
                                          info.world_size)


def log_images(writer, b: Dict[str, torch.Tensor], outs: Dict[str, Optional[torch.Tensor]], step: int) -> None:
    """IR, VIS, the teacher's and the student's outputs (colourised) and the segment images, first sample."""
    from torchvision.utils import make_grid
    crcb = b["crcb"][:1]
    writer.add_image("input/ir", b["ir"][0], step)
    writer.add_image("input/vis", colourise(b["y"][:1], crcb)[0], step)
    for name, out in outs.items():
        if out is not None:
            writer.add_image(f"output/{name}", colourise(out[:1].detach().float(), crcb)[0], step)
    for key in ("vm", "im"):
        if key in b:
            writer.add_image(f"segments/{key}", make_grid(b[key][0][:, None], nrow=b[key].shape[1], padding=2), step)


def write_history(history: List[Dict[str, float]], run_dir: Path) -> None:
    """losses.csv (one row per update) and loss_curves.png."""
    if not history:
        return
    keys = sorted({k for rec in history for k in rec} - {"step", "epoch", "kind"})
    lines = [",".join(["step", "epoch", "kind"] + keys)]
    for rec in history:
        lines.append(",".join([str(rec["step"]), str(rec["epoch"]), rec["kind"]] +
                              [f"{rec[k]:.6g}" if k in rec else "" for k in keys]))
    (run_dir / "losses.csv").write_text("\n".join(lines) + "\n")
    plot_loss_curves(history, run_dir / "loss_curves.png", title=f"SAGE training ({run_dir.name})")


if __name__ == "__main__":
    sys.exit(main())
