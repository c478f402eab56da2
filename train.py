"""Train a fusion method from a YAML config: SAGE (teacher distilled into the student) or SGAFusion.

    python train.py --config configs/fmb.yaml --root_dir path/to/FMB/train
    python train.py --config configs/demo.yaml                         # a few minutes on a CPU
    python train.py --config configs/sgafusion/stage2_joint.yaml ...    # SGAFusion, one stage per run
    python train.py --resume runs/sage_fmb/last.pt                      # continue an interrupted run
    torchrun --nproc_per_node=2 train.py --config configs/fmb.yaml ...  # DistributedDataParallel

The config's `method:` key picks the method (default sage); its defaults file lists every key
(configs/fmb.yaml for SAGE), and an unknown key or a value of the wrong type stops the run at once.
The release's flag names work (--batch_size --epochs --crop_size --root_dir --use_mask_num ...); any
config key can be set with --set section.key=value.

A run writes <run>/<network>/epoch_N.pt (SGAFusion: <run>/sgafusion/epoch_N.pt), <run>/last.pt (everything
needed to resume), <run>/train.log, <run>/tb/ (TensorBoard), <run>/losses.csv and <run>/loss_curves.png.
See docs/training.md (SAGE) and docs/sgafusion.md (SGAFusion).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from tqdm import tqdm

from data.imageio import ImageReadError
from data.pairs import PairingError
from losses.totals import NonFiniteLossError, check_finite
from models.checkpoint import CheckpointError
from training import METHODS, prepare_config, run_class
from training.logs import TrainLog, log, setup_logging
from training.run_state import Progress, check_replicas, restore, save_last, unwrap
from utils import distributed as dist_utils
from utils.config import ConfigError, apply_flags, apply_overrides, check_config, compose_config, load_config, merge
from utils.device import DeviceError, pick_device
from utils.errors import first_line
from utils.interrupt import GracefulStop
from utils.run_state import ResumeError, load_train_state, save_atomic

ROOT = Path(__file__).resolve().parent

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
    "export": ("export.student_to", str),
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
    """The method's defaults <- each --config in order (or the resumed run's config) <- flags <- --set, checked:
    an unknown key or a value of the wrong type is a ConfigError naming it, before any work starts."""
    files = args.config or ([] if resumed else [ROOT / "configs" / "fmb.yaml"])
    chosen: Dict[str, Any] = resumed["config"] if resumed and not args.config else {}
    for path in files:
        chosen = merge(chosen, load_config(path))
    method = chosen.get("method", "sage")
    if method not in METHODS:
        raise ConfigError(f"method={method!r}: unknown (choose {', '.join(METHODS)})")
    defaults = load_config(ROOT / METHODS[method].defaults)
    if files:
        cfg = compose_config(defaults, files, reference=defaults)  # each file checked on its own, named
    else:
        cfg = check_config(merge(defaults, chosen), defaults, where="resumed run's config")
    flags = {flag: key for flag, (key, _) in RELEASE_FLAGS.items()}
    flags.update(METHODS[method].flag_keys)
    apply_flags(cfg, vars(args), flags)
    if args.crop_size:
        cfg["data"]["crop_size"] = [args.crop_size[0], args.crop_size[-1]]
    return prepare_config(method, check_config(apply_overrides(cfg, args.set), defaults))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        resumed = load_train_state(args.resume) if args.resume else None
        cfg = build_config(args, resumed)
        device = pick_device(cfg["device"])
    except (ConfigError, DeviceError, ResumeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = dist_utils.init(device)
    device = dist_utils.local_device(device, info)
    try:
        return run(cfg, device, info, resumed, Path(args.resume).parent if args.resume else None)
    except (ConfigError, CheckpointError, PairingError, ImageReadError, ResumeError, TrainError,
            FileNotFoundError, ValueError) as exc:
        prefix = f"[rank {info.rank}] " if info.enabled else ""
        print(f"error: {prefix}{first_line(exc)}", file=sys.stderr)
        if info.enabled:
            raise  # torchrun stops the other ranks and reports this one
        return 1
    finally:
        dist_utils.cleanup()


def run(cfg: Dict[str, Any], device: torch.device, info: dist_utils.DistInfo,
        resumed: Optional[Dict[str, Any]], resume_dir: Optional[Path]) -> int:
    train = cfg["train"]
    if not Path(cfg["root_dir"]).is_dir():
        raise PairingError(f"{cfg['root_dir']}: no such training folder (set root_dir in the config or --root_dir)")
    run_dir = resume_dir or (Path(cfg["save_dir"]) / cfg["save"] if cfg["save"] else Path(cfg["save_dir"]))
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    dist_utils.barrier()
    setup_logging(run_dir, info.is_main)
    epochs, batch_size, world = int(train["epochs"]), int(train["batch_size"]), info.world_size
    log.info("run directory %s | device %s | %d process(es) | per-process batch %d (effective %d)",
             run_dir, device, world, batch_size, batch_size * world)

    torch.manual_seed(int(cfg["seed"]))
    trainer = run_class(cfg["method"])(cfg, device, info)
    per_epoch = len(trainer.loader)
    if per_epoch == 0:
        raise TrainError(f"{cfg['root_dir']}: no training pairs")
    log.info("%s: %d batches per epoch, %d epochs", trainer.description, per_epoch, epochs)
    warn_untrained(trainer, epochs)
    progress = Progress()
    if resumed is not None:
        progress = restore(resumed, trainer, batch_size, world)
        log.info("resumed from epoch %d, batch %d (update %d)", progress.epoch, progress.step_in_epoch,
                 progress.global_step)
    if info.enabled:
        trainer.wrap_distributed()

    board = TrainLog(run_dir, progress.history, int(train["report_freq"]), info.is_main,
                     purge_step=progress.global_step if resumed else None)
    every, max_steps = max(1, int(train["checkpoint_every"])), train["max_steps"]
    interrupt = GracefulStop(enabled=not info.enabled, on_request=lambda sig: log.warning(
        "%s: finishing this step, then writing last.pt and stopping (Ctrl-C again aborts at once)", sig))

    def stop_wanted() -> bool:
        return (max_steps is not None and progress.batches_done >= int(max_steps)) or bool(interrupt.requested)

    def save_position(epoch: int, position: int) -> None:
        progress.epoch, progress.step_in_epoch = epoch, position
        if info.is_main:
            save_last(run_dir / "last.pt", cfg, progress, trainer, batch_size, world)

    stopped, t0 = False, time.time()
    with interrupt:  # the signal handlers are restored whatever happens
        for epoch in range(progress.epoch, epochs + 1):
            first = progress.step_in_epoch if epoch == progress.epoch else 0
            trainer.sampler.set_epoch(epoch, start=first * batch_size)
            trainer.dataset.set_epoch(epoch)
            steps_of_batch: Dict[int, list] = {}
            for step in trainer.plan(epoch, per_epoch):  # a reused last batch has two steps
                steps_of_batch.setdefault(step.batch_index, []).append(step)
            bar = tqdm(trainer.loader, desc=f"epoch {epoch}/{epochs}", initial=first, total=per_epoch, unit="batch",
                       dynamic_ncols=True, disable=not info.is_main)
            for i, batch in enumerate(bar, start=first):
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                for step in steps_of_batch.get(i, ()):
                    terms = train_one(trainer, step.kind, batch, epoch, progress, board, device)
                    bar.set_postfix_str(f"{step.kind[0]} loss {terms['total']:.4g}")
                progress.batches_done += 1
                last_in_epoch = i + 1 == per_epoch
                if stop_wanted() and not last_in_epoch:
                    save_position(epoch, i + 1)
                    stopped = True
                    break
                if (i + 1) % every == 0 and not last_in_epoch:
                    save_position(epoch, i + 1)
            bar.close()
            if stopped:
                break
            if info.is_main:
                for rel, obj in trainer.exports(epoch).items():  # a network, or a ready checkpoint dict
                    (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                    save_atomic(obj if isinstance(obj, dict) else unwrap(obj).state_dict(), run_dir / rel)
            save_position(epoch + 1, 0)
            log.info("epoch %d done (%d updates, %.0f s)", epoch, progress.global_step, time.time() - t0)
            if stop_wanted():
                stopped = True
                break

    board.close(title=f"{trainer.description} ({run_dir.name})")
    if info.enabled:
        check_replicas(run_dir, trainer.networks, world, info.is_main)
    if info.is_main:
        if not stopped:
            trainer.export_final(progress)  # only where the config asks (--export)
        log.info("%s after %d updates; weights in %s", "stopped" if stopped else "finished", progress.global_step,
                 run_dir)
        if interrupt.requested:
            log.warning("interrupted (%s): continue with  python train.py --resume %s", interrupt.requested,
                        run_dir / "last.pt")
    return 130 if interrupt.requested else 0


def train_one(trainer, kind: str, batch: Dict[str, torch.Tensor], epoch: int, progress: Progress, board: TrainLog,
              device: torch.device) -> Dict[str, float]:
    """One update of one network: loss, a finite check agreed by every rank, optimiser and scheduler step, record."""
    loss, terms, images = trainer.step(kind, batch, epoch)
    try:
        check_finite(terms, progress.global_step + 1)
        bad = None
    except NonFiniteLossError as exc:
        bad = f"{kind} step: {exc}"
    if dist_utils.any_true(bad is not None, device):
        raise TrainError(bad or f"another process met a non-finite {kind} loss at update {progress.global_step + 1}")
    opt, sched = trainer.optimisers[kind]
    trainer.update(kind, loss)  # backward and optimiser step (SGAFusion: with its GradScaler and clipping)
    sched.step()
    progress.global_step += 1
    values = {k: float(v) for k, v in terms.items()}
    board.record(progress.global_step, epoch, kind, values, opt.param_groups[0]["lr"], batch, images)
    return values


def warn_untrained(trainer, epochs: int) -> None:
    """Say at the start when a network of the run will take no step at all (e.g. epochs < student_epoch)."""
    for name in trainer.networks:
        if not any(s.kind == name for e in range(1, epochs + 1) for s in trainer.plan(e, 2)):
            log.warning("the %s takes no step in this run (epochs=%d); it will not be trained or exported", name,
                        epochs)


if __name__ == "__main__":
    sys.exit(main())
