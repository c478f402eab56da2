"""SAM features for the CR triplet loss: SAM ViT-B's patch embedding and first two blocks (docs/sage.md#triplet-loss).

As in the release: embed 768, 12 heads, patch 16, windowed attention (window 14) with relative
positions in both blocks (blocks 0 and 1 are windowed in ViT-B, whose global blocks are 2, 5, 8, 11);
the absolute position embedding is NOT added (quirk: SAM adds it, the release's truncated encoder does
not; kept because the published numbers were trained this way); no pixel normalisation and no padding
to 1024. The input is resized so that its long side equals its width, a no-op for landscape or square
inputs; a portrait (H > W) input is scaled down to height W (width W*W/H, rounded as SAM's
ResizeLongestSide rounds), so its maps are not H/16 x W/16. How it is resized (`resize`):
"antialias" (default) is bilinear with antialiasing, align_corners=False, a proper downscale;
"release" is the release's plain bilinear with align_corners=True (sam.feature_resize, see
docs/release_differences.md). Windows pad and unpad themselves for any H/16, W/16.
"""
from __future__ import annotations

import os
import warnings
from functools import partial
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Block, PatchEmbed

from .model import CheckpointError, load_state_dict
from .settings import is_random_checkpoint

RESIZE_MODES = ("antialias", "release")

RANDOM_FEATURES_WARNING = ("SAM feature extractor has RANDOM weights (no checkpoint given): the CR loss "
                           "is not the paper's; use this only for tests and demos")


class SAMFeatureExtractor(nn.Module):
    """x (N, 1 or 3, H, W) in [0, 1] -> [f1, f2], the outputs of blocks 0 and 1 as (N, 768, H/16, W/16).

    Frozen: parameters do not require gradients and the module stays in eval mode, but gradients
    flow through it to the input.
    """

    def __init__(self, embed_dim: int = 768, depth: int = 2, num_heads: int = 12, patch_size: int = 16,
                 window_size: int = 14, mlp_ratio: float = 4.0, resize: str = "antialias"):
        """
        Args:
            embed_dim: token width (ViT-B: 768).
            depth: number of blocks kept (the release: 2).
            num_heads: attention heads (ViT-B: 12).
            patch_size: patch side in pixels (16).
            window_size: attention window in tokens (14); relative positions sized for it.
            mlp_ratio: MLP hidden width / embed_dim (4).
            resize: how a portrait input is scaled to long side = width: "antialias" (default) or
                "release" (plain bilinear, align_corners=True, as the release does).
        """
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ValueError(f"SAM/features.py: resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.resize = resize
        self.patch_embed = PatchEmbed(kernel_size=(patch_size, patch_size), stride=(patch_size, patch_size),
                                      in_chans=3, embed_dim=embed_dim)
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                  norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU, use_rel_pos=True,
                  rel_pos_zero_init=True, window_size=window_size, input_size=(64, 64))
            for _ in range(depth))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "SAMFeatureExtractor":
        """Always eval: the extractor is frozen."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) -> (N, 3, H', W'): gray repeated to 3 channels, long side resized to W."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"SAM features expect (N, 1 or 3, H, W), got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return resize_long_side_to_width(x, self.resize)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.preprocess(x)
        t = self.patch_embed(x)  # (N, h, w, C); quirk: no absolute position embedding added
        feats = []
        for blk in self.blocks:
            t = blk(t)
            feats.append(t.permute(0, 3, 1, 2))
        return feats


def resize_long_side_to_width(x: torch.Tensor, resize: str = "antialias") -> torch.Tensor:
    """(N, C, H, W) -> long side = W, i.e. (int(H s + 0.5), int(W s + 0.5)) with s = W / max(H, W).

    The identity when W >= H. resize "antialias": bilinear, antialiased, align_corners=False;
    "release": plain bilinear with align_corners=True (the release's preprocessing).
    """
    h, w = x.shape[-2:]
    if max(h, w) == w:
        return x
    scale = w / max(h, w)
    size = (int(h * scale + 0.5), int(w * scale + 0.5))
    if resize == "release":
        return F.interpolate(x, size, mode="bilinear", align_corners=True)
    if resize != "antialias":
        raise ValueError(f"SAM/features.py: resize must be one of {RESIZE_MODES}, got {resize!r}")
    return F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)


def encoder_weights(state: dict, depth: int = 2) -> dict:
    """patch_embed.* and blocks.<i>.* (i < depth) from a full SAM state_dict (prefix 'image_encoder.') or
    an encoder-only one (no prefix)."""
    prefix = "image_encoder." if any(k.startswith("image_encoder.") for k in state) else ""
    keep = ("patch_embed.",) + tuple(f"blocks.{i}." for i in range(depth))
    out = {}
    for k, v in state.items():
        if k.startswith(prefix):
            k2 = k[len(prefix):]
            if k2.startswith(keep):
                out[k2] = v
    return out


def build_sam_feature_extractor(checkpoint: Optional[str | os.PathLike], device="cpu",
                                resize: str = "antialias") -> SAMFeatureExtractor:
    """The frozen 2-block SAM ViT-B extractor; checkpoint None (or 'none') -> random weights, with a warning.

    `resize` is the portrait resize mode (config sam.feature_resize: antialias | release).

    The checkpoint is a full SAM ViT-B file (sam_vit_b_01ec64.pth) or an encoder-only state_dict.
    Raises CheckpointError for a missing file or one without ViT-B encoder weights.
    """
    model = SAMFeatureExtractor(resize=resize)
    if is_random_checkpoint(checkpoint):
        warnings.warn(RANDOM_FEATURES_WARNING, stacklevel=2)
    else:
        weights = encoder_weights(load_state_dict(checkpoint), depth=len(model.blocks))
        expected = model.state_dict()
        missing = sorted(set(expected) - set(weights))
        if missing:
            raise CheckpointError(f"{checkpoint}: no SAM image-encoder weights for {missing[0]} (and {len(missing) - 1} "
                                  "more); expected a SAM ViT-B checkpoint such as sam_vit_b_01ec64.pth")
        for k, v in weights.items():
            if v.shape != expected[k].shape:
                raise CheckpointError(f"{checkpoint}: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)} "
                                      "(not a ViT-B checkpoint?)")
        model.load_state_dict(weights, strict=True)
    return model.to(device)
