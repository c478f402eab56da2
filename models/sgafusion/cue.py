"""The CLIP degradation cue: image -> (512-d cue, class logits, patch tokens) (docs/sgafusion.md).

`ClipCueEncoder` wraps an open_clip image tower (OpenAI ViT-B/32 in the paper) and the `CueHead`.
Preprocessing lives inside the module, so training and inference see the same pixels: resize to the
tower's input size (bicubic, antialiased), then CLIP's own mean/std normalisation. The release's
preprocessing (no normalisation; bilinear without antialias in stage 1) is available through
`normalize=False` and `resize="bilinear"` for comparisons only.

`load_clip_visual` reads the weights a user has: the OpenAI file that `clip.load` caches
(`~/.cache/clip/ViT-B-32.pt`, a TorchScript archive), an OpenAI-format state_dict, an open_clip
checkpoint (`.safetensors` / `.bin`) or an open_clip / Hugging Face model folder. `tiny_clip_visual`
builds a small randomly initialised tower for tests and demos; nothing here downloads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .classifier import CueHead

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("bicubic", "bilinear")


class CueWeightsError(ValueError):
    """CLIP weights that cannot be found or read; the message names the file."""


@dataclass
class Cue:
    """What the fusion network receives from the cue encoder."""
    feature: torch.Tensor            # (B, hidden) = ReLU(fc1(embedding)): the global cue
    logits: torch.Tensor             # (B, num_classes) degradation-class logits
    tokens: Optional[torch.Tensor]   # (B, N, hidden) = ReLU(fc1(patch tokens)), or None
    embedding: torch.Tensor          # (B, embed_dim) CLIP image embedding


def load_clip_visual(source: str | os.PathLike, arch: str = "ViT-B-32") -> nn.Module:
    """The image tower (open_clip VisionTransformer, float32, CPU) of the CLIP weights at `source`.

    source: OpenAI `ViT-B-32.pt` (TorchScript or state_dict), an open_clip `.safetensors`/`.bin`
    checkpoint of `arch`, or a folder with `open_clip_config.json` (open_clip / Hugging Face layout).
    """
    import open_clip

    path = Path(os.path.expanduser(str(source)))
    if not path.exists():
        raise CueWeightsError(f"{path}: no such CLIP weights file or folder (see docs/sgafusion.md, 'CLIP weights')")
    try:
        if path.is_dir():
            model = open_clip.create_model(f"local-dir:{path}", device="cpu")
        elif path.suffix in (".safetensors", ".bin"):
            model = open_clip.create_model(arch, pretrained=str(path), device="cpu")
        else:
            model = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
    except Exception as exc:  # open_clip and torch raise many types for foreign files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CueWeightsError(f"{path}: not readable CLIP weights ({first})") from None
    visual = model.visual.float()
    del model
    return visual


def tiny_clip_visual(embed_dim: int = 32, width: int = 64, layers: int = 2, patch_size: int = 16,
                     image_size: int = 64, seed: int = 0) -> nn.Module:
    """A small randomly initialised ViT image tower (QuickGELU, as OpenAI's) for tests and demos."""
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    g = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        cfg = CLIPVisionCfg(layers=layers, width=width, head_width=min(64, width), patch_size=patch_size,
                            image_size=image_size)
        return _build_vision_tower(embed_dim, cfg, quick_gelu=True)
    finally:
        torch.random.set_rng_state(g)


def _image_size(visual: nn.Module) -> Tuple[int, int]:
    size = getattr(visual, "image_size", 224)
    return tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))


class ClipCueEncoder(nn.Module):
    """image (B, 3, H, W) in [0, 1] -> Cue(feature, logits, tokens, embedding)."""

    def __init__(self, visual: nn.Module, num_classes: int = 9, hidden: int = 512, normalize: bool = True,
                 resize: str = "bicubic", tokens: bool = True, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD):
        """visual: open_clip image tower (LoRA may be injected with lora.add_lora); num_classes: degradation
        classes; hidden: cue width (512); normalize: apply CLIP mean/std (False only to mimic the release);
        resize: "bicubic" (antialiased) or "bilinear" (no antialias, the release's stage 1);
        tokens: also return patch tokens (working variant); mean/std: CLIP normalisation."""
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ValueError(f"models/sgafusion/cue.py: resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.visual = visual
        self.head = CueHead(int(visual.output_dim), hidden, num_classes)
        self.normalize = normalize
        self.resize = resize
        self.with_tokens = tokens
        self.image_size = _image_size(visual)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, S, S) at the tower's input size, CLIP-normalised."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"models/sgafusion/cue.py: expected an RGB batch (B, 3, H, W), got {tuple(image.shape)}")
        x = image.float()
        if tuple(x.shape[-2:]) != self.image_size:
            if self.resize == "bicubic":
                x = F.interpolate(x, size=self.image_size, mode="bicubic", align_corners=False, antialias=True)
            else:
                x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
            x = x.clamp(0.0, 1.0)
        if self.normalize:
            x = (x - self.mean) / self.std
        return x

    def encode(self, pixels: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Preprocessed pixels -> (embedding (B, D), patch tokens (B, N, D) projected like the embedding, or None)."""
        v = self.visual
        before = getattr(v, "output_tokens", False)
        v.output_tokens = True
        try:
            pooled, tokens = v(pixels)
        finally:
            v.output_tokens = before
        if not self.with_tokens:
            return pooled, None
        if getattr(v, "proj", None) is not None:
            tokens = tokens @ v.proj
        return pooled, tokens

    def forward(self, image: torch.Tensor) -> Cue:
        """image (B, 3, H, W) in [0, 1] -> Cue with feature (B, hidden), logits (B, classes), tokens (B, N, hidden)."""
        embedding, tokens = self.encode(self.preprocess(image))
        feature, logits = self.head(embedding)
        token_feature = self.head.features(tokens) if tokens is not None else None
        return Cue(feature, logits, token_feature, embedding)
