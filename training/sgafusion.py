"""SGAFusion training through train.py: one run trains one of the three stages (config key `stage`).

    stage: cue       stage 1: the cue encoder's head + LoRA learn the degradation class of degraded
                     visible images (network "cue")
    stage: joint     stage 2: joint segmentation + fusion on clean pairs with Label/ (network "fusion";
                     the cue encoder comes frozen from init.checkpoint, the stage-1 file)
    stage: finetune  stage 3: fusion fine-tune on degraded/clean pairs (network and cue from
                     init.checkpoint, the stage-2 file)

The release's numbers are the defaults: a `null` in train.epochs / batch_size / lr / amp / grad_clip
means the stage's value in training/sgafusion_schedule.RELEASE_STAGES (`prepare_config` fills them in).
The learning rate is constant per epoch (`lr_schedule`; compounding decay only with
train.release_compounding_lr); AMP (CUDA only) and clipping run in `update`, the run class's
optimiser step that train.py calls. Every epoch writes sgafusion/epoch_N.pt in save_sgafusion's format
with the model and cue config sections inside (`model_config`, `cue_config`), so test.py rebuilds the
network from the file alone. See docs/sgafusion.md, "Training".
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, List, Optional

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from losses.sgafusion import FusionLossWeights
from models.checkpoint import CheckpointError, load_checkpoint, load_weights
from models.sgafusion.build import build_cue, build_net, load_cue_state, sgafusion_checkpoint
from data.sampler import ResumableSampler
from utils import distributed as dist_utils
from utils.config import ConfigError
from utils.run_state import save_atomic

from .run_state import unwrap
from .schedule import Step
from .sgafusion_data import SegPairSet, StageView, degraded_set
from .sgafusion_schedule import RELEASE_STAGES, clip_gradients, lr_schedule, set_lr
from .sgafusion_steps import LossSettings, stage1_step, stage2_step, stage3_step

log = logging.getLogger("sage.train")

STAGES = {"cue": "stage1_cue", "joint": "stage2_joint", "finetune": "stage3_finetune"}  # -> RELEASE_STAGES
NETWORK = {"cue": "cue", "joint": "fusion", "finetune": "fusion"}                     # the network trained
CHECKPOINT_FORMAT = "sgafusion-v1"


def prepare_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Fill the stage's release values into train.* keys left null; check the stage and cue sizes."""
    stage = cfg["stage"]
    if stage not in STAGES:
        raise ConfigError(f"config key 'stage': expected one of {', '.join(STAGES)}, got {stage!r}")
    release = RELEASE_STAGES[STAGES[stage]]
    train = cfg["train"]
    for key, value in (("epochs", release.epochs), ("batch_size", release.batch_size), ("lr", release.base_lr),
                       ("amp", release.amp), ("grad_clip", release.grad_clip or 0.0)):
        if train.get(key) is None:
            train[key] = value
    for key, typ in (("epochs", int), ("batch_size", int), ("lr", float), ("amp", bool), ("grad_clip", float)):
        if typ is float and isinstance(train[key], int) and not isinstance(train[key], bool):
            train[key] = float(train[key])
        if not isinstance(train[key], typ) or (typ is int and isinstance(train[key], bool)):
            raise ConfigError(f"config key 'train.{key}' expects {typ.__name__}, got {train[key]!r}")
    if int(cfg["cue"]["hidden"]) != int(cfg["model"]["cue_dim"]):
        raise ConfigError(f"cue.hidden ({cfg['cue']['hidden']}) must equal model.cue_dim ({cfg['model']['cue_dim']})")
    if len(cfg["data"]["classes"]) != int(cfg["cue"]["num_classes"]):
        raise ConfigError(f"data.classes has {len(cfg['data']['classes'])} names but cue.num_classes is "
                          f"{cfg['cue']['num_classes']}")
    return cfg


def model_section(cfg: Dict[str, Any]) -> Dict[str, Any]:
    return copy.deepcopy(cfg["model"])


def cue_section(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The cue section for build_cue: null keys take the variant's default; `lora: false` means no LoRA."""
    out = {k: copy.deepcopy(v) for k, v in cfg["cue"].items() if v is not None}
    if out.get("lora") is False:
        out["lora"] = None
    return out


class EpochLR:
    """The scheduler train.py steps after every update: it counts updates; the lr itself is set per epoch
    (`start_epoch`) from lr_schedule. Its state also carries the AMP GradScaler's, so last.pt resumes it."""

    def __init__(self, optimizer: torch.optim.Optimizer, lrs: List[float], scaler: "torch.amp.GradScaler"):
        self.optimizer, self.lrs, self.scaler, self.updates = optimizer, lrs, scaler, 0

    def start_epoch(self, epoch: int) -> None:
        """Set the lr of `epoch` (1-based)."""
        set_lr(self.optimizer, self.lrs[min(max(epoch, 1), len(self.lrs)) - 1])

    def step(self) -> None:
        self.updates += 1

    def get_last_lr(self) -> List[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"updates": self.updates, "lrs": list(self.lrs), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


class _DDP(DDP):
    """DDP that still answers the fusion network's `uses_tokens`."""

    @property
    def uses_tokens(self) -> bool:
        return self.module.uses_tokens


class SGAFusionTraining:
    """One SGAFusion stage as a train.py run (the interface of training/sage.py's SageTraining)."""
    method = "sgafusion"

    def __init__(self, cfg: Dict[str, Any], device: torch.device, info: dist_utils.DistInfo):
        self.cfg, self.device, self.info = cfg, device, info
        self.stage = cfg["stage"]
        train, data = cfg["train"], cfg["data"]
        seed = int(cfg["seed"])
        self.dataset = self._build_dataset(cfg["root_dir"], data, cfg, seed)
        self.sampler = ResumableSampler(self.dataset, num_replicas=info.world_size, rank=info.rank, seed=seed)
        self.loader = DataLoader(self.dataset, batch_size=int(train["batch_size"]), sampler=self.sampler,
                                 num_workers=int(data["num_workers"]), pin_memory=torch.cuda.is_available(),
                                 drop_last=False)
        torch.manual_seed(seed)
        self.net = build_net(model_section(cfg)).to(device)
        self.cue = build_cue(cue_section(cfg), self.net.variant).to(device)
        self._load_initial(cfg["init"]["checkpoint"])
        self.kind = NETWORK[self.stage]
        trained = self.cue if self.kind == "cue" else self.net
        if self.kind == "fusion":
            self.cue.eval()
            for p in self.cue.parameters():
                p.requires_grad_(False)
        self.params = [p for p in trained.parameters() if p.requires_grad]
        self.amp = bool(train["amp"]) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        opt = torch.optim.Adam(self.params, lr=float(train["lr"]))
        lrs = lr_schedule(int(train["epochs"]), float(train["lr"]), bool(train["release_compounding_lr"]))
        self.schedule = EpochLR(opt, lrs, self.scaler)
        self.optimisers = {self.kind: (opt, self.schedule)}
        self.grad_clip = float(train["grad_clip"]) or None
        self.release_scaled_clipping = bool(train["release_scaled_clipping"])
        loss = cfg["loss"]
        self.settings = LossSettings(fusion=FusionLossWeights(**{k: float(v) for k, v in loss["fusion"].items()}),
                                     seg_weight=float(loss["seg_weight"]))
        self.export_to: Optional[str] = cfg["export"]["checkpoint_to"]
        self.include_base = cfg["export"]["include_cue_base"]
        if self.include_base is None:
            self.include_base = cfg["cue"]["tiny"] is not None
        if train["amp"] and not self.amp:
            log.info("train.amp: float16 autocast runs on CUDA only; this %s run uses float32", device.type)

    # ---------------------------------------------------------------- building
    def _build_dataset(self, root: str, data: Dict[str, Any], cfg: Dict[str, Any], seed: int):
        crop, hflip = data["crop_size"], float(data["hflip"])
        if self.stage == "joint":
            return SegPairSet(root, num_classes=int(cfg["model"]["num_classes"]), crop_size=crop, seed=seed,
                              hflip=hflip, ignore_label=data["ignore_label"])
        base = degraded_set(root, data["labels"], data["classes"], crop, seed, hflip, data["strength_range"])
        return StageView(base, self.stage)

    def _load_initial(self, path: Optional[str]) -> None:
        """The cue (every stage) and, for finetune, the network from a save_sgafusion file of the previous stage."""
        if not path:
            if self.stage != "cue":
                log.warning("init.checkpoint is not set: stage %s starts from an untrained cue encoder "
                            "(set it to the previous stage's file)", self.stage)
            return
        obj = load_checkpoint(path)
        if not isinstance(obj, dict) or "cue" not in obj or "net" not in obj:
            raise CheckpointError(f"{path}: not an SGAFusion checkpoint (expected keys 'net' and 'cue')")
        load_cue_state(self.cue, obj["cue"], path)
        if self.stage == "finetune":
            load_weights(self.net, obj["net"], path, what="SGAFusion network")
        log.info("initialised the %s from %s", "cue and network" if self.stage == "finetune" else "cue", path)

    # ---------------------------------------------------------------- the interface train.py uses
    @property
    def networks(self) -> Dict[str, torch.nn.Module]:
        return {self.kind: self.cue if self.kind == "cue" else self.net}

    @property
    def description(self) -> str:
        return {"cue": "SGAFusion stage 1 (degradation cue: head + LoRA)",
                "joint": "SGAFusion stage 2 (joint segmentation + fusion)",
                "finetune": "SGAFusion stage 3 (fusion fine-tune on degraded pairs)"}[self.stage]

    def plan(self, epoch: int, num_batches: int) -> List[Step]:
        """One update of the stage's network per batch."""
        return [Step(self.kind, i) for i in range(num_batches)]

    def step(self, kind: str, batch: Dict[str, torch.Tensor], epoch: int):
        self.schedule.start_epoch(epoch)
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            if self.stage == "cue":
                self.cue.train()
                loss, terms = stage1_step(self.cue, batch)
            else:
                self.net.train()
                step = stage2_step if self.stage == "joint" else stage3_step
                loss, terms = step(self.net, self.cue, batch, self.settings)
        return loss, {"total": loss.detach(), **terms}, {}

    def update(self, kind: str, loss: torch.Tensor) -> None:
        """Backward and optimiser step with the AMP GradScaler and gradient clipping (train.py calls this
        for every update). Clipping acts on unscaled gradients unless
        train.release_scaled_clipping."""
        opt, _ = self.optimisers[kind]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip_gradients(self.params, self.grad_clip, opt, self.scaler, self.release_scaled_clipping)
        self.scaler.step(opt)
        self.scaler.update()

    def wrap_distributed(self) -> None:
        ids = [self.device.index] if self.device.type == "cuda" else None
        if self.kind == "cue":
            self.cue = DDP(self.cue, device_ids=ids)
        else:
            self.net = _DDP(self.net, device_ids=ids)

    def checkpoint(self, epoch: int) -> Dict[str, Any]:
        """save_sgafusion's object for the current weights, with the config sections that rebuild them."""
        net, cue = unwrap(self.net), unwrap(self.cue)
        meta = {"format": CHECKPOINT_FORMAT, "stage": self.stage, "epoch": int(epoch),
                "model_config": model_section(self.cfg), "cue_config": cue_section(self.cfg),
                "classes": list(self.cfg["data"]["classes"])}
        return sgafusion_checkpoint(net, cue, bool(self.include_base), meta)

    def exports(self, epoch: int) -> Dict[str, Dict[str, Any]]:
        """Files written at the end of every epoch: relative path -> checkpoint object."""
        return {f"sgafusion/epoch_{epoch}.pt": self.checkpoint(epoch)}

    def export_final(self, progress) -> None:
        """Write the final weights to export.checkpoint_to (--export); only when asked."""
        if not self.export_to:
            return
        save_atomic(self.checkpoint(progress.epoch - 1), self.export_to)
        log.info("SGAFusion checkpoint written to %s", self.export_to)
