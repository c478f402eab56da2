"""X-Decoder (Focal-L by default), semantic-segmentation inference path, assembled under X-Decoder's names.

`XDecoder.state_dict()` has exactly the keys and shapes of X-Decoder's own model (and of its released
checkpoints), including the parts this path never uses (retrieval, captioning, the training criterion);
checkpoint.py says which are which. `sem_seg` reproduces X-Decoder's output for one image batch:
docs/xdecoder.md writes out each step.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbone import FocalNetBackbone
from .config import XDecoderConfig
from .decoder import MaskedDecoder
from .language import LanguageEncoder
from .pixel_decoder import PixelDecoder


class SemSegHead(nn.Module):
    """Pixel decoder + predictor (X-Decoder's `sem_seg_head`). Args: the two modules."""

    def __init__(self, pixel_decoder: PixelDecoder, predictor: MaskedDecoder):
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = predictor


class Criterion(nn.Module):
    """Holds only the training loss's no-object weights (`criterion.empty_weight`), unused at inference.

    Args:
        num_classes: training classes (the buffer has num_classes + 1 entries).
    """

    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("empty_weight", torch.ones(num_classes + 1))


def resize_bicubic_aa(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bicubic with antialias (align_corners False), as X-Decoder resizes masks; no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


class XDecoder(nn.Module):
    """X-Decoder built from an `XDecoderConfig`.

    Args:
        cfg: sizes (Focal-L by default).
        inference_only: leave out the text transformer (its class embeddings are cached) and the parts the
            semantic path never runs (retrieval, captioning, criterion): the layout of a converted file.
    """

    def __init__(self, cfg: Optional[XDecoderConfig] = None, inference_only: bool = False):
        super().__init__()
        cfg = cfg or XDecoderConfig()
        self.cfg = cfg
        self.inference_only = inference_only
        full = not inference_only
        self.backbone = FocalNetBackbone(cfg.embed_dim, cfg.depths, cfg.focal_levels, cfg.focal_windows,
                                         cfg.mlp_ratio, cfg.patch_size)
        if full:
            self.backbone_proj = nn.Parameter(torch.empty(cfg.backbone_dim, cfg.dim_proj))  # retrieval: unused here
            nn.init.trunc_normal_(self.backbone_proj, std=0.02)
        language = LanguageEncoder(cfg.vocab_size, cfg.context_length, cfg.text_width, cfg.text_heads,
                                   cfg.text_layers, cfg.dim_proj, with_text=full)
        pixel = PixelDecoder(cfg.stage_channels, cfg.convs_dim, cfg.mask_dim, cfg.nheads, cfg.dim_feedforward,
                             cfg.enc_layers)
        predictor = MaskedDecoder(cfg.hidden_dim, cfg.num_queries, cfg.nheads, cfg.dim_feedforward, cfg.dec_layers,
                                  cfg.mask_dim, cfg.dim_proj, language, cfg.context_length, with_unused=full)
        self.sem_seg_head = SemSegHead(pixel, predictor)
        if full:
            self.criterion = Criterion(cfg.train_classes)
        self.register_buffer("pixel_mean", torch.zeros(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.ones(1, 3, 1, 1), persistent=False)
        self.reset_constant_buffers()

    def reset_constant_buffers(self, device: Optional[torch.device] = None) -> None:
        """(Re)create the buffers that are not in a state_dict (needed after building on the meta device)."""
        dev = device if device is not None else self.sem_seg_head.predictor.level_embed.weight.device
        self.pixel_mean = torch.tensor(self.cfg.pixel_mean, device=dev).view(1, 3, 1, 1)
        self.pixel_std = torch.tensor(self.cfg.pixel_std, device=dev).view(1, 3, 1, 1)
        p = self.sem_seg_head.predictor
        p.text_embeddings = torch.zeros(0, self.cfg.dim_proj, device=dev)

    @property
    def language(self) -> LanguageEncoder:
        return self.sem_seg_head.predictor.lang_encoder

    def set_text_embeddings(self, emb: torch.Tensor) -> None:
        """emb (C, dim_proj): the class text embeddings the classifier compares against (cached, unit norm)."""
        p = self.sem_seg_head.predictor
        if emb.dim() != 2 or emb.shape[1] != self.cfg.dim_proj:
            raise ValueError(f"text embeddings must be (C, {self.cfg.dim_proj}), got {tuple(emb.shape)}")
        p.text_embeddings = emb.detach().to(device=p.class_embed.device, dtype=p.class_embed.dtype)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) RGB in 0..255 -> normalised, zero-padded bottom/right to size_divisibility."""
        x = (image - self.pixel_mean) / self.pixel_std
        d = self.cfg.size_divisibility
        h, w = x.shape[-2:]
        return F.pad(x, (0, -w % d, 0, -h % d))

    def predict(self, image: torch.Tensor, taps: Optional[Dict[str, object]] = None,
                text_embeddings: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """image (B, 3, H, W) in 0..255 -> (class logits (B, Q, C), mask logits (B, Q, Hp/4, Wp/4)).

        Hp, Wp: the padded size. `taps` (optional dict) receives the intermediate tensors. text_embeddings
        (C, dim_proj): the classes (default: those of set_text_embeddings).
        """
        x = self.preprocess(image)
        feats = self.backbone(x)
        mask_features, multi_scale = self.sem_seg_head.pixel_decoder(feats, taps)
        if taps is not None:
            taps.update(normalized_padded_image=x, backbone=feats, multi_scale_features=multi_scale,
                        mask_features=mask_features)
        return self.sem_seg_head.predictor(multi_scale, mask_features, taps, text_embeddings)

    def mask_logits(self, image: torch.Tensor, out_size: Optional[Tuple[int, int]] = None,
                    taps: Optional[Dict[str, object]] = None,
                    text_embeddings: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """image (B, 3, H, W) in 0..255 -> (class logits (B, Q, C), mask logits (B, Q, h, w)), (h, w) = out_size
        (default (H, W)): resized to the padded size, cropped to (H, W), resized to out_size (bicubic, antialias)."""
        h, w = image.shape[-2:]
        logits, masks = self.predict(image, taps, text_embeddings)
        d = self.cfg.size_divisibility
        masks = resize_bicubic_aa(masks, (-(-h // d) * d, -(-w // d) * d))  # the padded input size
        if taps is not None:
            taps["mask_pred_upsampled"] = masks
        masks = resize_bicubic_aa(masks[..., :h, :w], out_size or (h, w))
        return logits, masks

    def sem_seg(self, image: torch.Tensor, out_size: Optional[Tuple[int, int]] = None, keep_last: bool = False,
                taps: Optional[Dict[str, object]] = None,
                text_embeddings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """image (B, 3, H, W) RGB in 0..255 -> sem_seg (B, C', h, w), X-Decoder's semantic inference.

        sem_seg[c] = sum over queries of softmax(class logits)[c] * sigmoid(mask logit). The last class is
        dropped (X-Decoder's no-object slot, C' = C - 1) unless keep_last.
        """
        logits, masks = self.mask_logits(image, out_size, taps, text_embeddings)
        prob = logits.softmax(dim=-1)
        if not keep_last:
            prob = prob[..., :-1]
        return torch.einsum("bqc,bqhw->bchw", prob, masks.sigmoid())
