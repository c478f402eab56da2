"""Strict loading of X-Decoder weights (the authors' `xdecoder_focall_last.pt` or a converted file).

Every key of the authors' checkpoint is either used by this project's model or listed in UNUSED_KEYS
(parts semantic segmentation never runs); a missing or unexpected key, a shape of another X-Decoder
variant or an unreadable file stops with one line naming the file and the problem.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping

import torch
import torch.nn as nn

from models.checkpoint import CheckpointError, key_mismatch, key_names, read_state_dict  # the project's one reader and error type
from utils.errors import first_line

# in the checkpoint, but not run by the semantic-segmentation path (kept in the model for strict loading)
UNUSED_KEYS = ("backbone_proj", "sem_seg_head.predictor.caping_embed", "sem_seg_head.predictor.pos_embed_caping.weight",
               "criterion.empty_weight")
# used only to compute the class text embeddings once (at conversion)
TEXT_PREFIXES = ("sem_seg_head.predictor.lang_encoder.lang_encoder.", "sem_seg_head.predictor.lang_encoder.lang_proj")


__all__ = ["CheckpointError", "UNUSED_KEYS", "is_text_key", "read_checkpoint", "load_state_dict_strict"]


def is_text_key(key: str) -> bool:
    return key.startswith(TEXT_PREFIXES)


def read_checkpoint(path: str | Path) -> Dict[str, torch.Tensor]:
    """A state_dict from a .pt/.pth file (the project's one torch.load, weights only) or a .safetensors file.

    Wrapped checkpoints ('state_dict' / 'model') are unwrapped and 'module.' / 'model.' prefixes stripped.
    """
    p = Path(path)
    if p.suffix != ".safetensors":
        sd = read_state_dict(p, keys=("state_dict", "model"))
    else:
        if not p.is_file():
            raise CheckpointError(f"{p}: no such checkpoint file")
        try:
            from safetensors.torch import load_file

            sd = load_file(str(p))
        except Exception as exc:
            raise CheckpointError(f"{p}: not a readable safetensors file (truncated or corrupt? "
                                  f"{first_line(exc)[:120]})") from None
    return {str(k[len("model."):] if k.startswith("model.") else k): v for k, v in sd.items()}


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                           allow_missing_text: bool = False, assign: bool = False) -> None:
    """Load into `model` requiring the same keys and shapes; `source` names the file in errors.

    allow_missing_text: the text-encoder keys may be absent (only the image path is needed).
    assign: take the tensors themselves (for a model built on the meta device).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not (allow_missing_text and is_text_key(k))]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{source}: not this X-Decoder ({key_mismatch(missing, unexpected, sep=' ')})")
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})" for k, v in state_dict.items()
             if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise CheckpointError(f"{source}: another X-Decoder variant or size: {key_names(wrong, 3)}")
    result = model.load_state_dict(dict(state_dict), strict=False, assign=assign)
    left = [k for k in result.missing_keys if not (allow_missing_text and is_text_key(k))]
    if left or result.unexpected_keys:
        raise CheckpointError(f"{source}: keys did not load: {key_names(left + list(result.unexpected_keys))}")
