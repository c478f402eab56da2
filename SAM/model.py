"""Building SAM (from a checkpoint or with random weights) and its automatic mask generator.

`build_sam` assembles the model from segment-anything's own modules exactly like
segment_anything.build_sam, with one extra knob, `image_size`: 1024 is SAM's input size and the only
value a real checkpoint fits; smaller sizes exist so that tests and demos with random weights run in
seconds on a CPU (a ViT-B forward pass at 1024 takes tens of seconds there).
"""
from __future__ import annotations

import os
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import cv2
import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from models.checkpoint import CheckpointError, read_state_dict
from utils.errors import first_line
from utils.hashing import sha256_of

from .settings import require_sam_checkpoint


# (embed_dim, depth, num_heads, global_attn_indexes) as in segment_anything/build_sam.py
ENCODER_SHAPES = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}
RANDOM_WEIGHTS_WARNING = ("SAM has RANDOM weights (no checkpoint given): the masks are meaningless; "
                          "use this only for tests and demos")





RANDOM_BANNER = ("!" * 78 + "\n!! WARNING: sam.checkpoint none: SAM has RANDOM weights. The masks and the SAM features\n"
                 "!! are MEANINGLESS; use this only for tests and demos.\n" + "!" * 78)


def resolve_sam_checkpoint(value: Optional[str], where: str = "sam.checkpoint") -> Optional[str]:
    """The SAM checkpoint a job uses: a path that exists, or None for random weights when the value is the
    explicit word 'none' (then a banner is printed and the per-module random-weight warnings are silenced).

    An unset value is an error (SAM.settings.require_sam_checkpoint says what to download): silently training
    or caching with random SAM weights would give meaningless segments. `where` names the flag or key.
    """
    path = require_sam_checkpoint(value, where)
    if path is None:
        print(RANDOM_BANNER, file=sys.stderr)
        warnings.filterwarnings("ignore", message=".*RANDOM weights.*")  # the banner said it
        return None
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: SAM checkpoint not found")
    return path

def checkpoint_id(checkpoint: Optional[str | os.PathLike], seed: int = 0) -> str:
    """What the cache records about the weights: 'sha256:<hex>' of the file, or 'random-init:seed=<seed>'."""
    if checkpoint is None:
        return f"random-init:seed={int(seed)}"
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"{path}: SAM checkpoint not found (give the path of sam_vit_b_01ec64.pth, or 'none' for random weights)")
    return "sha256:" + sha256_of(path)


def load_state_dict(path: str | os.PathLike) -> Dict[str, torch.Tensor]:
    """A tensor state_dict from a SAM .pth file (bare, or wrapped under 'state_dict' / 'model')."""
    return read_state_dict(path, missing="SAM checkpoint not found")


def build_sam(model_type: str = "vit_b", checkpoint: Optional[str | os.PathLike] = None,
              image_size: int = 1024, seed: int = 0) -> Sam:
    """SAM in eval mode. checkpoint None -> random weights drawn with `seed` (global RNG untouched), with a warning.

    Raises CheckpointError for a missing file or one whose keys/shapes do not fit `model_type`.
    """
    if model_type not in ENCODER_SHAPES:
        raise ValueError(f"model_type {model_type!r}: expected one of {', '.join(ENCODER_SHAPES)}")
    if checkpoint is not None and image_size != 1024:
        raise CheckpointError(f"{checkpoint}: real SAM checkpoints need sam.image_size 1024 (got {image_size}); "
                              "smaller sizes are for random weights only")
    state = load_state_dict(checkpoint) if checkpoint is not None else None
    embed_dim, depth, heads, global_idx = ENCODER_SHAPES[model_type]
    emb = image_size // 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        sam = Sam(
            image_encoder=ImageEncoderViT(
                depth=depth, embed_dim=embed_dim, img_size=image_size, mlp_ratio=4,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=heads, patch_size=16,
                qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_idx, window_size=14,
                out_chans=256),
            prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(emb, emb),
                                         input_image_size=(image_size, image_size), mask_in_chans=16),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    if state is None:
        warnings.warn(RANDOM_WEIGHTS_WARNING, stacklevel=2)
    else:
        try:
            sam.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{checkpoint}: not a SAM {model_type} checkpoint ({first_line(exc)[:160]})") from None
    return sam.eval()


def build_generator(sam: Sam, generator: Mapping[str, Any]) -> SamAutomaticMaskGenerator:
    """SamAutomaticMaskGenerator with binary-mask output and the given settings (sam.generator)."""
    return SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **dict(generator))


def to_sam_input(img: np.ndarray, bgr_input: bool) -> np.ndarray:
    """The (H, W, 3) uint8 array handed to SAM from an OpenCV image (gray (H,W) or BGR (H,W,3), 8/16 bit).

    SAM expects RGB. bgr_input=True reproduces the release's quirk (sam.bgr_input): OpenCV's BGR
    array is passed unchanged. Gray images become 3 equal channels either way.
    """
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if bgr_input:
        return np.ascontiguousarray(img)  # quirk of the release (sam.bgr_input): BGR fed as RGB
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def generate_masks(generator: SamAutomaticMaskGenerator, image: np.ndarray) -> List[np.ndarray]:
    """All masks SAM finds in `image` (H, W, 3) uint8, as bool (H, W) arrays in the generator's order."""
    with torch.no_grad():
        records = generator.generate(image)
    return [np.asarray(r["segmentation"], dtype=bool) for r in records]
