"""X-Decoder as the frozen judge of the teacher's semantic term (same call as semantic.SemanticLoss).

`loss = judge(fused_y (B,1,H,W), crcb (B,2,H,W), label (B,h,w))`, unweighted (the caller applies
semantic.weight). The fused luminance is colourised with the batch's Cr/Cb, clamped to [0, 1],
bicubic-resized to the judge's input size (384 x 384) and scaled to 0..255; X-Decoder's `sem_seg` is
bilinear-resized to the label size and scored with cross-entropy. Two modes (docs/xdecoder.md):

- release_quirks=True: the release's 15 prompts in its order ('motocycle' included, 'background' last
  and dropped as X-Decoder's no-object slot), 14 maps of scores used as logits.
- release_quirks=False (default): one prompt per label class in label order, every class kept
  (background is whatever the labels call it, ignorable through ignore_classes), and the per-pixel
  log-probabilities log(sem_seg[c] / sum_k sem_seg[k]) as logits.

Batches go through X-Decoder in one call; per image the result is the release's one-image call (every
operation acts per image).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from semantic.semantic_loss import judged_cross_entropy, labels_for_loss

from .model import XDecoder


class XDecoderJudge(nn.Module):
    """Frozen X-Decoder semantic loss.

    The model is held outside the module's registry (like SemanticLoss's judge): `.parameters()` and
    `.state_dict()` are empty, `.to()` moves it, `.train()` leaves it in eval mode.

    Args:
        model: X-Decoder (any layout) with weights loaded.
        text_embeddings: (C, dim_proj) class embeddings, in the order of `class_names`.
        class_names: the prompt classes (release mode: the release's 15, background last).
        release_quirks: the release's behaviour (see the module docstring) instead of the default.
        input_size: (H, W) the colourised image is bicubic-resized to, or None for no resize.
        ignore_index: label value never scored.
        ignore_classes: label classes scored as ignored (default mode).
        checkpointing: recompute the backbone blocks during backward instead of storing their activations
            (same numbers; Focal-L at 384 x 384 then needs well under 8 GB for a batch of 4).
    """

    def __init__(self, model: XDecoder, text_embeddings: torch.Tensor, class_names: Sequence[str],
                 release_quirks: bool = False, input_size: Optional[Tuple[int, int]] = (384, 384),
                 ignore_index: int = 255, ignore_classes: Sequence[int] = (), checkpointing: bool = False):
        super().__init__()
        model.backbone.grad_checkpointing = bool(checkpointing)
        if text_embeddings.shape[0] != len(class_names):
            raise ValueError(f"{text_embeddings.shape[0]} text embeddings for {len(class_names)} class names")
        if text_embeddings.dim() != 2 or text_embeddings.shape[1] != model.cfg.dim_proj:
            raise ValueError(f"text embeddings must be (C, {model.cfg.dim_proj}), got {tuple(text_embeddings.shape)}")
        model.eval().requires_grad_(False)
        # the judge's own classes (several judges may share one model); moved by .to(), never saved
        self.register_buffer("text_embeddings", text_embeddings.detach().clone(), persistent=False)
        self.__dict__["model"] = model  # not a submodule on purpose (see the class docstring)
        self.class_names = list(class_names)
        self.release_quirks = bool(release_quirks)
        self.input_size = tuple(int(v) for v in input_size) if input_size is not None else None
        self.ignore_index = int(ignore_index)
        self.num_classes = len(class_names) - 1 if self.release_quirks else len(class_names)
        self.ignored = [] if self.release_quirks else sorted(set(int(k) for k in ignore_classes))

    def logits(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, H, W) in [0, 1] -> (B, num_classes, h, w) at the judge's input size.

        Release mode: X-Decoder's sem_seg scores; default: log-probabilities over all classes.
        """
        self.model.eval()
        x = rgb
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bicubic", align_corners=False)
        sem = self.model.sem_seg(x * 255.0, keep_last=not self.release_quirks, text_embeddings=self.text_embeddings)
        if self.release_quirks:
            return sem
        sem = sem.float().clamp_min(1e-30)
        return sem.log() - sem.sum(dim=1, keepdim=True).log()

    def targets(self, label: torch.Tensor) -> torch.Tensor:
        """Labels to score: default mode checks values and drops ignored classes; release mode scores classes
        0..13 and ignores any other value (the release itself would fail on them)."""
        if self.release_quirks:
            label = label.long()
            outside = (label < 0) | (label >= self.num_classes)
            return label.masked_fill(outside, self.ignore_index)
        return labels_for_loss(label.long(), self.num_classes, self.ignore_index, self.ignored)

    def forward(self, fused_y: torch.Tensor, crcb: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """fused_y (B,1,H,W), crcb (B,2,H,W) = (Cr, Cb) in [0,1], label (B,h,w) int64 -> scalar loss."""
        return judged_cross_entropy(self.logits, self.targets, fused_y, crcb, label, self.ignore_index)

    @torch.no_grad()
    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, H, W) int64 class map at the input size (ignored classes excluded)."""
        logits = F.interpolate(self.logits(rgb), size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        if self.ignored and len(self.ignored) < logits.shape[1]:
            logits[:, self.ignored] = float("-inf")
        return logits.argmax(dim=1)

    def train(self, mode: bool = True) -> "XDecoderJudge":
        super().train(mode)
        self.model.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.model._apply(fn)
        return self

    def extra_repr(self) -> str:
        return (f"release_quirks={self.release_quirks}, classes={self.num_classes}, input_size={self.input_size}, "
                f"ignore_index={self.ignore_index}, ignored={self.ignored}")


def build_xdecoder_judge(cfg: Dict[str, Any], device: Union[str, torch.device, None] = None) -> XDecoderJudge:
    """The judge from a `semantic:` section with backend xdecoder (keys: configs/semantic/xdecoder.yaml)."""
    from semantic.build import parse_input_size
    from semantic.classes import (DEFAULT_IGNORE_INDEX, SemanticConfigError, background_classes, check_ignore_index,
                                  check_num_classes, load_class_names, resolve_ignore_classes, resolve_path)

    from .converted import load_converted

    path = cfg.get("model")
    if not path:
        raise SemanticConfigError("semantic.model: give the converted X-Decoder file (scripts/convert_xdecoder.py "
                                  "--checkpoint xdecoder_focall_last.pt --out checkpoints/xdecoder_focall.safetensors)")
    model, sets = load_converted(resolve_path(path), device or "cpu")
    release = bool(cfg.get("release_quirks", False))
    input_size = parse_input_size(cfg.get("input_size"), None)
    ignore_index = int(cfg.get("ignore_index", DEFAULT_IGNORE_INDEX))
    checkpointing = bool(cfg.get("checkpointing", True))
    if release:
        from .prompts import RELEASE_CLASS_NAMES

        names, emb = _find_set(sets, RELEASE_CLASS_NAMES, path)
        return XDecoderJudge(model, emb, names, True, input_size, ignore_index,
                             checkpointing=checkpointing).to(device or "cpu")
    names = load_class_names(cfg.get("class_names"))
    check_num_classes(names, cfg.get("num_classes"))
    ignore_index = check_ignore_index(ignore_index, names)
    ignored = resolve_ignore_classes(cfg.get("ignore_classes", background_classes(names)), names)
    _, emb = _find_set(sets, names, path)
    return XDecoderJudge(model, emb, names, False, input_size, ignore_index, ignored,
                         checkpointing=checkpointing).to(device or "cpu")


def _find_set(sets, names: Sequence[str], path) -> Tuple[list, torch.Tensor]:
    """The cached embeddings whose class list equals `names` (case-insensitive: the tokenizer lower-cases)."""
    from semantic.classes import SemanticConfigError

    want = [n.lower() for n in names]
    for set_names, emb in sets.values():
        if [n.lower() for n in set_names] == want:
            return list(set_names), emb
    have = "; ".join(f"{k}: {', '.join(v[0][:3])}, ..." for k, v in sets.items())
    raise SemanticConfigError(f"{path}: no cached text embeddings for the classes {', '.join(names[:4])}, ... "
                              f"(it has {have}); rerun scripts/convert_xdecoder.py with --classes")
