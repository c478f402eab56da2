"""SAGE training: what a run builds from its config, and one teacher or student step.

The step functions are plain functions of (networks, batch, loss settings): they compute the loss and
its logged terms and hand back the images worth showing; train.py checks the loss, takes the
optimiser step and records it. The order of steps in an epoch comes from `training.schedule`.
See docs/training.md.
"""
from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from data.dataset import FusionTrainSet
from data.sampler import ResumableSampler
from losses.totals import SegmentPrior, student_loss, teacher_loss
from losses.weights import LossWeights
from models.checkpoint import load_weights, read_state_dict
from models.student import Student
from models.teacher import Teacher, convert_legacy_teacher_state
from utils import distributed as dist_utils
from utils.run_state import save_atomic

from .run_state import unwrap
from .schedule import epoch_plan, make_scheduler, scheduler_period

log = logging.getLogger("sage.train")

Images = Dict[str, Optional[torch.Tensor]]


@dataclass
class SageNetworks:
    """The two networks being trained and the frozen helpers of the teacher's loss."""
    student: torch.nn.Module
    teacher: Optional[torch.nn.Module]     # None when training the student alone
    extractor: Optional[torch.nn.Module]   # frozen SAM features of the triplet (contrast) term
    judge: Optional[torch.nn.Module]       # frozen semantic judge: judge(F, crcb, label) -> loss


@dataclass
class SageLossSettings:
    weights: LossWeights
    contrast_mask: str        # "image" (release: segment images as weights) | "binary"
    semantic_weight: float
    student_epoch: int        # from this epoch on the student trains and the teacher's mutual term is on
    ini_epoch: int            # from this epoch on the teacher gets the semantic term


def segment_prior(nets: SageNetworks, b: Dict[str, torch.Tensor], s: SageLossSettings) -> SegmentPrior:
    return SegmentPrior(b["vm"], b["im"], nets.extractor, s.contrast_mask, b.get("vm_mask"), b.get("im_mask"))


def student_step(nets: SageNetworks, b: Dict[str, torch.Tensor], s: SageLossSettings
                 ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Images]:
    """Distillation step: the frozen teacher's output and taps guide the student."""
    nets.student.train()
    if nets.teacher is None:  # fusion and gradient terms only
        out, taps_s = nets.student(b["y"], b["ir"])
        loss, terms = student_loss(out, taps_s, b["y"], b["ir"], weights=s.weights)
        return loss, terms, {"student": out, "teacher": None}
    with torch.no_grad():
        ref, taps_t = nets.teacher(b["y"], b["ir"], b["vm"], b["im"])
    out, taps_s = nets.student(b["y"], b["ir"])
    loss, terms = student_loss(out, taps_s, b["y"], b["ir"], ref, taps_t, segment_prior(nets, b, s), s.weights)
    return loss, terms, {"student": out, "teacher": ref}


def teacher_step(nets: SageNetworks, b: Dict[str, torch.Tensor], s: SageLossSettings, epoch: int
                 ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Images]:
    """Teacher step: SAM-guided fusion loss, the mutual term once the student trains, the semantic term."""
    nets.teacher.train()
    out_t, taps_t = nets.teacher(b["y"], b["ir"], b["vm"], b["im"])
    mutual = epoch >= s.student_epoch
    ref_s = taps_s = None
    if mutual:
        with torch.no_grad():  # the student stays in train mode here, as in the release
            ref_s, taps_s = nets.student(b["y"], b["ir"])
    loss, terms = teacher_loss(out_t, taps_t, b["y"], b["ir"], ref_s, taps_s, segment_prior(nets, b, s),
                               mutual=mutual, weights=s.weights)
    terms = dict(terms)
    if nets.judge is not None and epoch >= s.ini_epoch:
        sem = nets.judge(out_t, b["crcb"], b["label"])
        loss = loss + s.semantic_weight * sem
        terms["semantic"] = sem.detach()
        terms["total"] = loss.detach()
    return loss, terms, {"teacher": out_t, "student": ref_s}


class SageTraining:
    """Everything a SAGE run builds from its config: data, networks, optimisers, step settings.

    The interface train.py uses (shared with the other methods): `loader`, `sampler`, `dataset`,
    `networks` and `optimisers` (name -> module / (optimizer, scheduler)), `plan(epoch, n)`,
    `step(kind, batch, epoch)`, `update(kind, loss)`, `wrap_distributed()`, `exports(epoch)`,
    `export_final(progress)` and `description`.
    """
    method = "sage"

    def __init__(self, cfg: Dict[str, Any], device: torch.device, info: dist_utils.DistInfo):
        from SAM.model import resolve_sam_checkpoint
        from SAM.settings import sam_settings  # the one place the `sam:` section is resolved

        self.device, self.info = device, info
        data, train = cfg["data"], cfg["train"]
        self.student_only = bool(train["student_only"])
        self.sam = sam_settings(cfg["sam"], cfg["presets"])
        self.sam_checkpoint = None if self.student_only else resolve_sam_checkpoint(self.sam.settings["checkpoint"])
        seed = int(cfg["seed"])
        self.dataset, self.sampler, self.loader = self._build_data(cfg["root_dir"], data, int(train["batch_size"]),
                                                                   seed)
        # Models are built right after seeding, so a resumed run rebuilds the same random SAM features.
        torch.manual_seed(seed)
        self.nets = self._build_networks(cfg, bool(train["sync_bn"]))
        self.settings = SageLossSettings(
            weights=LossWeights.from_config(cfg["loss"]), contrast_mask=cfg["loss"]["contrast_mask"],
            semantic_weight=float(cfg["semantic"]["weight"]), student_epoch=int(train["student_epoch"]),
            ini_epoch=int(train["ini_epoch"]))
        self.export_to: Optional[str] = cfg["export"]["student_to"]
        total_updates = scheduler_period(int(train["epochs"]), len(self.loader))
        self.optimisers = {"student": adam_cosine(self.nets.student, train["lr_student"], total_updates,
                                                  train["lr_min"])}
        if self.nets.teacher is not None:
            self.optimisers["teacher"] = adam_cosine(self.nets.teacher, train["lr_teacher"], total_updates,
                                                     train["lr_min"])

    # ---------------------------------------------------------------- building
    def _build_data(self, root: str, data: Dict[str, Any], batch_size: int, seed: int):
        segments = None if self.student_only else self._segments(Path(root))
        dataset = FusionTrainSet(Path(root), crop_size=tuple(data["crop_size"]), seed=seed, hflip=float(data["hflip"]),
                                 segments=segments, official_label_scaling=bool(data["official_label_scaling"]),
                                 crop=str(data["crop"]), require_labels=False)
        sampler = ResumableSampler(dataset, num_replicas=self.info.world_size, rank=self.info.rank, seed=seed)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=int(data["num_workers"]),
                            pin_memory=torch.cuda.is_available(), drop_last=False, worker_init_fn=_ignore_sigint)
        return dataset, sampler, loader

    def _segments(self, root: Path):
        """The segment-image provider (the cache is built first when the config asks for it)."""
        from SAM.segments import SegmentProvider

        s = self.sam
        cache_dir = Path(s.cache_dir or root / "Mask_cache")
        if s.build_cache_if_missing:
            from SAM.cache_builder import build_cache
            if self.info.is_main:
                summary = build_cache(root, sam_checkpoint=self.sam_checkpoint, settings=s.settings,
                                      cache_dir=cache_dir, progress=True)
                log.info("segment cache %s: %d built, %d already there", cache_dir, summary.built, summary.skipped)
            dist_utils.barrier()
        return SegmentProvider(cache_dir, use_mask_num=s.use_mask_num, expected_settings=s.settings,
                               allow_fill_missing=s.allow_fill_missing, expected_checkpoint=self.sam_checkpoint or "none")

    def _build_networks(self, cfg: Dict[str, Any], sync_bn: bool) -> SageNetworks:
        device = self.device
        student = Student().to(device)
        if sync_bn and self.info.enabled:
            student = torch.nn.SyncBatchNorm.convert_sync_batchnorm(student)
        if self.student_only:
            nets = SageNetworks(student, None, None, None)
        else:
            from SAM.features import build_sam_feature_extractor
            from semantic import build_semantic_loss
            teacher = Teacher(mask_channels=self.sam.use_mask_num).to(device)
            nets = SageNetworks(student, teacher, build_sam_feature_extractor(self.sam_checkpoint, device=device,
                                                                              resize=self.sam.feature_resize),
                                build_semantic_loss(cfg["semantic"], device))
        init = cfg["init"]
        load_initial(nets.student, init["checkpoint_student"], "student")
        load_initial(nets.teacher, init["checkpoint_teacher"], "teacher")
        return nets

    # ---------------------------------------------------------------- the interface train.py uses
    @property
    def networks(self) -> Dict[str, torch.nn.Module]:
        return {"student": self.nets.student, **({"teacher": self.nets.teacher} if self.nets.teacher else {})}

    @property
    def description(self) -> str:
        return "SAGE student only" if self.student_only else "SAGE teacher + student"

    def plan(self, epoch: int, num_batches: int):
        """The epoch's steps in order (training.schedule.Step: batch_index, kind, reuse)."""
        return epoch_plan(num_batches, epoch, self.settings.student_epoch, student_only=self.student_only)

    def step(self, kind: str, batch: Dict[str, torch.Tensor], epoch: int):
        if kind == "student":
            return student_step(self.nets, batch, self.settings)
        return teacher_step(self.nets, batch, self.settings, epoch)

    def update(self, kind: str, loss: torch.Tensor) -> None:
        """One optimiser step of the network `kind` (its scheduler is stepped by train.py)."""
        opt, _ = self.optimisers[kind]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def wrap_distributed(self) -> None:
        """DistributedDataParallel around both networks (after any resume, before the first step)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.nets.student = DDP(self.nets.student, device_ids=ids)
        if self.nets.teacher is not None:
            # Before student_epoch the distillation taps take no gradient: let DDP tolerate that.
            self.nets.teacher = DDP(self.nets.teacher, device_ids=ids, find_unused_parameters=True)

    def exports(self, epoch: int) -> Dict[str, torch.nn.Module]:
        """Files written at the end of every epoch: relative path -> network."""
        return {f"{name}/epoch_{epoch}.pt": net for name, net in self.networks.items()}

    def export_final(self, progress) -> None:
        """Copy the trained student to export.student_to (--export), only if it took at least one step."""
        if not self.export_to:
            return
        if not any(rec["kind"] == "student" for rec in progress.history):
            log.warning("student not exported to %s: it took no step in this run", self.export_to)
            return
        save_atomic(unwrap(self.nets.student).state_dict(), self.export_to)
        log.info("student copied to %s", self.export_to)


def adam_cosine(net: torch.nn.Module, lr: float, total_updates: float, lr_min: float):
    """Adam with cosine annealing over epochs x batches updates (the release's optimiser and scheduler)."""
    opt = torch.optim.Adam(net.parameters(), lr=float(lr))
    return opt, make_scheduler(opt, total_updates, float(lr_min))


def load_initial(net: Optional[torch.nn.Module], path: Optional[str], what: str) -> None:
    """Start `net` from a state_dict file; a teacher saved under this project's earlier names is converted."""
    if net is None or not path:
        return
    state = read_state_dict(path)
    if what == "teacher":
        state, converted = convert_legacy_teacher_state(state)
        if converted:
            log.info("%s: teacher saved under this project's earlier names; converted to the release's", path)
    load_weights(net, state, path, what=f"SAGE {what}")
    log.info("initialised the %s from %s", what, path)


def _ignore_sigint(_worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which stops after its current step."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

