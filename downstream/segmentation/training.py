"""Training a SegFormer segmenter on (visible or fused) images, and scoring a segmenter on a labelled folder.

Used by scripts/train_segmenter.py (a judge for `semantic.backend: trained`) and by
scripts/eval_segmentation.py (the downstream protocol: train on fused training images, score the test set).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from data.imageio import write_image_atomic

from semantic.judge import SegmenterJudge
from semantic.mapping import identity_mapping
from .miou import SegmentationScore
from .data import SegmentationSet, read_rgb
from semantic.segformer import InputSpec, build_config, class_names_of, load_segformer, normalise, save_segmenter
from semantic.semantic_loss import labels_for_loss, masked_cross_entropy


def segmenter_loss(model, spec: InputSpec, rgb: torch.Tensor, label: torch.Tensor, ignore_index: int,
                   ignored: Sequence[int]) -> torch.Tensor:
    """Cross-entropy of a SegFormer on (B,3,H,W) RGB in [0,1] against (B,H,W) labels, logits upsampled to H, W."""
    logits = model(pixel_values=normalise(rgb, spec)).logits
    logits = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
    target = labels_for_loss(label, logits.shape[1], ignore_index, ignored)
    return masked_cross_entropy(logits, target, ignore_index)


@torch.no_grad()
def dataset_loss(model, spec: InputSpec, data: SegmentationSet, indices: Iterable[int], device: torch.device,
                 ignore_index: int, ignored: Sequence[int]) -> float:
    """Mean loss over whole images (no augmentation), pixel-weighted; the model is put in eval mode."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in indices:
        rgb, lab = data.load(i)
        lab_t = torch.from_numpy(lab)[None].to(device)
        n = int((labels_for_loss(lab_t, data.num_classes, ignore_index, ignored) != ignore_index).sum())
        loss = segmenter_loss(model, spec, torch.from_numpy(rgb)[None].to(device), lab_t, ignore_index, ignored)
        total, count = total + float(loss) * n, count + n
    model.train(was_training)
    return total / max(count, 1)


def new_model(arch: str, class_names: Sequence[str], init: Optional[str] = None):
    """A randomly initialised SegFormer of size `arch`, or one started from the local folder `init` with a new head."""
    from transformers import SegformerForSemanticSegmentation

    names = list(class_names)
    if init is None:
        return SegformerForSemanticSegmentation(build_config(arch, names)), InputSpec()
    _, spec, _ = load_segformer(init, where="--init", allow_hub=False)  # validates the folder
    model = SegformerForSemanticSegmentation.from_pretrained(
        init, id2label={i: n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True, local_files_only=True)
    return model, InputSpec(spec.mean, spec.std, spec.scale, None)


def train_segmenter(data: SegmentationSet, out_dir: str | Path, class_names: Sequence[str], *, arch: str = "b0",
                    init: Optional[str] = None, steps: int = 4000, batch_size: int = 8, lr: float = 6e-4,
                    weight_decay: float = 0.01, ignore_index: int = 255, ignored: Sequence[int] = (0,),
                    device: torch.device = torch.device("cpu"), seed: int = 0, workers: int = 0,
                    eval_images: int = 8, save_every: int = 0, meta: Optional[Dict[str, Any]] = None,
                    log: Callable[[str], None] = print, progress: bool = True) -> Dict[str, Any]:
    """Train with AdamW and polynomial (linear) decay; save to out_dir; return losses and the checkpoint path.

    The returned dict has `loss_before` / `loss_after`: the mean loss over the first `eval_images` whole
    training images before and after training (a deterministic check that training worked), and
    `history`: the loss of every step.
    """
    torch.manual_seed(seed)
    model, spec = new_model(arch, class_names, init)
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"segmenter: SegFormer-{arch}{' from ' + init if init else ' (random init)'}, {n_params / 1e6:.2f} M "
        f"parameters, {len(class_names)} classes, {len(data)} training images, device {device}")
    eval_idx = list(range(min(eval_images, len(data))))
    before = dataset_loss(model, spec, data, eval_idx, device, ignore_index, ignored)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / max(steps, 1)))
    loader = DataLoader(data, batch_size=min(batch_size, len(data)), shuffle=True, drop_last=len(data) >= batch_size,
                        num_workers=workers, generator=torch.Generator().manual_seed(seed))
    run_meta = dict(meta or {})
    run_meta.update(class_names=list(class_names), ignore_index=ignore_index, ignored_classes=list(ignored),
                    arch=arch, init=init, steps=steps, batch_size=batch_size, lr=lr, crop=data.crop,
                    created_by="scripts/train_segmenter.py")
    history: List[float] = []
    step, epoch = 0, 0
    bar = tqdm(total=steps, desc="train segmenter", disable=not progress, dynamic_ncols=True)
    while step < steps:
        data.set_epoch(epoch)
        for batch in loader:
            loss = segmenter_loss(model, spec, batch["rgb"].to(device), batch["label"].to(device),
                                  ignore_index, ignored)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"segmenter loss became {value} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(value)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            if save_every and step % save_every == 0 and step < steps:
                save_segmenter(model, out_dir, spec, dict(run_meta, steps_done=step))
            if step >= steps:
                break
        epoch += 1
    bar.close()
    after = dataset_loss(model, spec, data, eval_idx, device, ignore_index, ignored)
    run_meta.update(steps_done=step, loss_before=before, loss_after=after)
    path = save_segmenter(model.eval(), out_dir, spec, run_meta)
    log(f"loss on {len(eval_idx)} training images: before {before:.4f} -> after {after:.4f}")
    log(f"saved segmenter to {path}")
    return {"loss_before": before, "loss_after": after, "history": history, "checkpoint": str(path)}


def load_trained_judge(path: str | Path, class_names: Optional[Sequence[str]] = None,
                       input_size: Optional[Tuple[int, int]] = None, where: str = "--checkpoint") -> SegmenterJudge:
    """A segmenter folder (from train_segmenter or any SegFormer with these label classes) as a judge."""
    model, spec, _ = load_segformer(str(path), where=where, allow_hub=False)
    names = class_names_of(model)
    if class_names is not None and [n.lower() for n in names] != [n.lower() for n in class_names]:
        if not all(n == f"LABEL_{i}" for i, n in enumerate(names)) or len(names) != len(class_names):
            raise ValueError(f"{path}: the segmenter predicts {len(names)} classes ({', '.join(names[:4])}, ...) "
                             f"but the evaluation uses {len(class_names)} ({', '.join(list(class_names)[:4])}, ...)")
        names = list(class_names)
    return SegmenterJudge(model, spec, identity_mapping(names), input_size)


def score_folder(judge: SegmenterJudge, data: SegmentationSet, score: SegmentationScore, device: torch.device,
                 exclude: Sequence[int] = (), save_dir: Optional[str | Path] = None, progress: bool = True) -> None:
    """Predict every image of `data` (whole images) and add it to `score`; optionally write PNG class maps."""
    judge.to(device)
    for i in tqdm(range(len(data)), desc="segment", disable=not progress, dynamic_ncols=True):
        name, img_path, lab_path = data.pairs[i]
        rgb, lab = data.load(i)
        pred = judge.predict(torch.from_numpy(rgb)[None].to(device), exclude=exclude)[0].cpu().numpy()
        score.update(pred, lab, name=str(lab_path))
        if save_dir is not None:
            write_image_atomic(Path(save_dir) / f"{name}.png", pred.astype(np.uint8 if pred.max() < 256 else np.uint16))


__all__ = ["train_segmenter", "load_trained_judge", "score_folder", "segmenter_loss", "dataset_loss", "read_rgb"]
