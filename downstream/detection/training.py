"""Loop pieces for training and running a detector (used by scripts/train_detector.py and eval_detection.py).

The loop itself (epochs, resume, DDP, TensorBoard) lives in the script; these functions do one thing each:
an optimiser and schedule, one training step, the loss of fixed images without updating anything, and
predictions for a dataset. docs/downstream.md.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .dataset import DetectionSet
from .labels import Boxes


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9
                    ) -> torch.optim.Optimizer:
    """SGD (momentum, torchvision's detection recipe) or AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer '{name}': choose sgd or adamw")


def warmup_cosine(opt: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_factor: float = 0.01):
    """Linear warm-up from 0.1x over `warmup_steps`, then cosine decay to `min_factor` x lr at `total_steps`."""
    total, warm = max(1, int(total_steps)), max(0, int(warmup_steps))

    def factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def to_device(images: Sequence[torch.Tensor], targets: Sequence[Dict[str, torch.Tensor]], device: torch.device):
    return ([im.to(device, non_blocking=True) for im in images],
            [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets])


def train_step(model: nn.Module, opt: torch.optim.Optimizer, sched, images: Sequence[torch.Tensor],
               targets: Sequence[Dict[str, torch.Tensor]], device: torch.device, clip_grad: float = 10.0,
               step: int = 0) -> Dict[str, float]:
    """One optimiser step on a batch; returns the loss terms and 'total' (FloatingPointError if not finite)."""
    model.train()
    images, targets = to_device(images, targets, device)
    terms = model(images, targets)
    total = sum(terms.values())
    value = float(total.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"detector loss became {value} at step {step + 1}; lower --lr")
    opt.zero_grad(set_to_none=True)
    total.backward()
    if clip_grad and clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    opt.step()
    if sched is not None:
        sched.step()
    out = {k: float(v.detach()) for k, v in terms.items()}
    out["total"] = value
    return out


@torch.no_grad()
def fixed_loss(model: nn.Module, data: DetectionSet, indices: Sequence[int], device: torch.device) -> float:
    """Mean total loss over images `indices` without augmentation or any update (BatchNorm in eval mode)."""
    was_training = model.training
    model.train()  # torchvision detectors only compute losses in training mode
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    total = 0.0
    for i in indices:
        rgb, boxes = data.load(i)
        target = {"boxes": torch.as_tensor(boxes.xyxy, dtype=torch.float32).reshape(-1, 4).to(device),
                  "labels": torch.as_tensor(boxes.labels, dtype=torch.int64).to(device)}
        terms = model([torch.from_numpy(rgb).to(device)], [target])
        total += float(sum(terms.values()))
    model.train(was_training)
    return total / max(1, len(indices))


@torch.no_grad()
def predict(model: nn.Module, images: Sequence[torch.Tensor], device: torch.device) -> List[Boxes]:
    """Detections of a list of (3, H, W) images as Boxes with scores (pixels of each image)."""
    model.eval()
    out = model([im.to(device) for im in images])
    return [Boxes(o["boxes"].cpu().double().numpy(), o["labels"].cpu().numpy().astype(np.int64),
                  o["scores"].cpu().double().numpy()) for o in out]


@torch.no_grad()
def predict_dataset(model: nn.Module, data: DetectionSet, device: torch.device, batch_size: int = 4,
                    progress: bool = True, desc: str = "detect"
                    ) -> Tuple[List[Boxes], List[Boxes], List[Tuple[int, int]]]:
    """(ground truths, predictions, (width, height) sizes) over every image of `data`, in its order."""
    gts, preds, sizes = [], [], []
    idx = list(range(len(data)))
    bar = tqdm(total=len(idx), desc=desc, disable=not progress, dynamic_ncols=True, unit="img")
    for start in range(0, len(idx), max(1, batch_size)):
        batch = [data.load(i) for i in idx[start:start + batch_size]]
        preds += predict(model, [torch.from_numpy(rgb) for rgb, _ in batch], device)
        for rgb, boxes in batch:
            gts.append(boxes)
            sizes.append((rgb.shape[2], rgb.shape[1]))
        bar.update(len(batch))
    bar.close()
    return gts, preds, sizes


__all__ = ["build_optimizer", "warmup_cosine", "train_step", "fixed_loss", "predict", "predict_dataset",
           "to_device"]
