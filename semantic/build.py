"""Builders from the `semantic:` config section: the judge and the teacher's semantic loss.

    semantic:
      backend: none | segformer | trained | xdecoder   (xdecoder: keys in configs/semantic/xdecoder.yaml)
      model: <folder with config.json + model.safetensors>   (or an explicit hub id for segformer)
      mapping: configs/semantic/cityscapes_to_fmb.yaml        (segformer: judge classes -> label classes)
      class_names: null          # null = FMB's 15 classes; a list or a YAML file
      num_classes: 15            # checked against class_names
      ignore_index: 255
      ignore_classes: [background]
      input_size: [384, 384]     # or auto (the model's preprocessor size) or native (no resize)
      weight: 0.3                # read by train.py, not here
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch

from .classes import (DEFAULT_IGNORE_INDEX, SemanticConfigError, background_classes, check_ignore_index,
                      check_num_classes, load_class_names, resolve_ignore_classes)
from .judge import SegmenterJudge
from .mapping import build_mapping
from .segformer import class_names_of, load_segformer
from .semantic_loss import SemanticLoss

BACKENDS = ("none", "segformer", "trained")
DEFAULT_INPUT_SIZE = (384, 384)  # the release's X-Decoder input (docs/sage.md#semantic-term)


def parse_input_size(value: Any, model_size: Optional[Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """[H, W] | N | 'auto' (the model's own size) | 'native'/'none' (no resize) -> (H, W) or None."""
    if value is None:
        return DEFAULT_INPUT_SIZE
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "auto":
            if model_size is None:
                raise SemanticConfigError("semantic.input_size=auto: the model folder has no preprocessor_config.json "
                                          "size; give [H, W]")
            return tuple(model_size)  # type: ignore[return-value]
        if v in ("native", "none"):
            return None
        if "x" in v:
            value = v.split("x")
        else:
            value = v
    try:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            hw = (int(value[0]), int(value[1]))
        else:
            hw = (int(value), int(value))
    except (TypeError, ValueError):
        raise SemanticConfigError(f"semantic.input_size={value!r}: expected [H, W], N, auto or native") from None
    if min(hw) < 32:
        raise SemanticConfigError(f"semantic.input_size={hw}: too small for a segmenter (at least 32)")
    return hw


def build_judge(cfg: Dict[str, Any], device: Union[str, torch.device, None] = None) -> Optional[SegmenterJudge]:
    """The frozen segmenter of a `semantic:` section, on `device`; None for backend none."""
    cfg = dict(cfg or {})
    backend = str(cfg.get("backend") or "none").strip().lower()
    if backend in ("none", "off", "false"):
        return None
    if backend == "xdecoder":  # the native X-Decoder judge is itself the loss module (docs/xdecoder.md)
        from xdecoder.judge import build_xdecoder_judge
        return build_xdecoder_judge(cfg, device)
    if backend not in BACKENDS:
        raise SemanticConfigError(f"semantic.backend={backend}: unknown (choose {', '.join(BACKENDS)})")
    names = load_class_names(cfg.get("class_names"))
    check_num_classes(names, cfg.get("num_classes"))
    model, spec, meta = load_segformer(cfg.get("model"), allow_hub=backend == "segformer")
    model_names = class_names_of(model)
    if backend == "trained":
        if not meta:
            raise SemanticConfigError(f"semantic.model={cfg.get('model')}: not a checkpoint of "
                                      f"scripts/train_segmenter.py (no segmenter.json); use backend segformer for "
                                      f"other SegFormer models")
        if [n.lower() for n in model_names] != [n.lower() for n in names]:
            raise SemanticConfigError(f"{cfg.get('model')}: the segmenter was trained on {len(model_names)} classes "
                                      f"({', '.join(model_names[:4])}, ...) but semantic.class_names has {len(names)} "
                                      f"({', '.join(names[:4])}, ...); retrain it or fix class_names")
        mapping = build_mapping(None, model_names, names)
    else:
        mapping = build_mapping(cfg.get("mapping"), model_names, names)
    input_size = parse_input_size(cfg.get("input_size"), spec.size)
    judge = SegmenterJudge(model, spec, mapping, input_size)
    if device is not None:
        judge.to(device)
    return judge


def build_semantic_loss(cfg: Dict[str, Any], device: Union[str, torch.device, None] = None) -> Optional[SemanticLoss]:
    """The teacher's semantic term from the `semantic:` config section (None when backend is none).

    Returns an nn.Module `loss(fused_y (B,1,H,W), crcb (B,2,H,W), label (B,H,W) int64) -> scalar` that is
    the UNWEIGHTED cross-entropy; its judge is frozen and has no parameters visible to an optimiser.
    """
    judge = build_judge(cfg, device)
    if judge is None or not isinstance(judge, SegmenterJudge):  # None, or X-Decoder's judge (already the loss)
        return judge
    names = judge.mapping.target_names
    ignore_index = check_ignore_index(cfg.get("ignore_index", DEFAULT_IGNORE_INDEX), names)
    ignore_classes = cfg.get("ignore_classes")
    if ignore_classes is None:  # unset (null): the class list's background class(es); [] ignores none
        ignore_classes = background_classes(names)
    loss = SemanticLoss(judge, ignore_index, resolve_ignore_classes(ignore_classes, names))
    if device is not None:
        loss.to(device)
    return loss
