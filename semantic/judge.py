"""A frozen segmenter used as a judge: RGB in [0, 1] -> logits over the label classes.

It bundles the network, its input normalisation, the resolution it is run at and the mapping from its
own classes to the label classes. Its parameters never require gradients and it always runs in eval
mode, but it is differentiable with respect to its input image.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .mapping import ClassMapping, map_logits
from .segformer import InputSpec, normalise


class SegmenterJudge:
    """Frozen SegFormer-style segmenter mapped onto the label classes.

    Args:
        model: a `transformers` SegformerForSemanticSegmentation (any module whose output has `.logits`
            of shape (B, S, h, w)); frozen here (eval mode, requires_grad False).
        spec: the model's input normalisation.
        mapping: its S classes -> the T label classes.
        input_size: (H, W) the image is bicubic-resized to before the model, or None to run at the
            image's own size.
    """

    def __init__(self, model: torch.nn.Module, spec: InputSpec, mapping: ClassMapping,
                 input_size: Optional[Tuple[int, int]] = (384, 384)):
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.spec = spec
        self.mapping = mapping
        self.input_size = tuple(int(v) for v in input_size) if input_size is not None else None
        if model.config.num_labels != mapping.num_source:
            raise ValueError(f"judge outputs {model.config.num_labels} classes but the mapping has {mapping.num_source}")

    @property
    def num_classes(self) -> int:
        return self.mapping.num_target

    def logits(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, T, h, w) label-class logits at the model's output resolution."""
        self.model.eval()  # a caller's .train() on an enclosing module must not reach the judge
        x = rgb
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bicubic", align_corners=False)
        out = self.model(pixel_values=normalise(x, self.spec)).logits
        return out if self.mapping.is_identity() else map_logits(out, self.mapping.groups)

    @torch.no_grad()
    def predict(self, rgb: torch.Tensor, exclude: Sequence[int] = ()) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, H, W) int64 class map at the input size.

        Classes in `exclude` (e.g. an ignored background) and classes without a source are never predicted.
        """
        logits = F.interpolate(self.logits(rgb), size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        banned = sorted(set(exclude) | set(self.mapping.unmapped_targets))
        if banned and len(banned) < logits.shape[1]:
            logits[:, banned] = float("-inf")
        return logits.argmax(dim=1)

    def to(self, *args, **kwargs) -> "SegmenterJudge":
        self.model.to(*args, **kwargs)
        return self
