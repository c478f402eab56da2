"""X-Decoder's FocalNet backbone: timm's FocalNet plus four per-stage LayerNorms (res2..res5).

The network is timm's `FocalNet` (the structure of `focalnet_large_fl4` for Focal-L: conv embedding,
post-LN blocks, layerscale, scaling modulator, 4 focal levels). X-Decoder names its weights the way the
original FocalNet code does; this module's state_dict uses those names (`patch_embed`, `gamma_1`,
`norm1`, linear weights as matrices, downsampling under the stage that precedes it), so checkpoints in
X-Decoder's layout load strictly. See docs/xdecoder.md.
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from timm.models.focalnet import FocalNet
from torch.utils.checkpoint import checkpoint

# timm keeps these linear layers as 1x1 convolutions; X-Decoder stores them as matrices
_LINEAR_AS_CONV = re.compile(r"\.(modulation\.f|modulation\.proj|mlp\.fc1|mlp\.fc2)\.weight$")


def timm_to_xdecoder_key(key: str) -> str:
    """A key of timm's FocalNet -> X-Decoder's name for the same tensor."""
    key = re.sub(r"^stem\.", "patch_embed.", key)
    key = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", key)
    key = re.sub(r"\.ls([12])\.gamma$", r".gamma_\1", key)
    return re.sub(r"\.norm([12])_post\.", r".norm\1.", key)


def xdecoder_to_timm_key(key: str) -> str:
    """X-Decoder's FocalNet key -> timm's (the inverse of `timm_to_xdecoder_key`)."""
    key = re.sub(r"^patch_embed\.", "stem.", key)
    key = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", key)
    key = re.sub(r"\.gamma_([12])$", r".ls\1.gamma", key)
    return re.sub(r"\.norm([12])\.", r".norm\1_post.", key)


class FocalNetBackbone(nn.Module):
    """FocalNet returning the per-stage-normed maps res2..res5 (strides 4, 8, 16, 32).

    Args:
        embed_dim: stage-1 channels; stage i has embed_dim * 2**i.
        depths: blocks per stage (4 stages).
        focal_levels: focal levels per stage.
        focal_windows: kernel size of focal level 0 per stage.
        mlp_ratio: MLP expansion of each block.
        patch_size: stem stride (the input is padded to a multiple of it).
        grad_checkpointing: when a gradient is needed, keep only each block's input and recompute the block
            during backward (same numbers, several times less memory, about a third more time).
    """

    def __init__(self, embed_dim: int = 192, depths: Tuple[int, ...] = (2, 2, 18, 2),
                 focal_levels: Tuple[int, ...] = (4, 4, 4, 4), focal_windows: Tuple[int, ...] = (3, 3, 3, 3),
                 mlp_ratio: float = 4.0, patch_size: int = 4, grad_checkpointing: bool = False):
        super().__init__()
        self.grad_checkpointing = grad_checkpointing
        if patch_size != 4:
            raise ValueError(f"FocalNet patch_size {patch_size}: only the conv embedding with stride 4 is implemented")
        self.patch_size = patch_size
        self.net = FocalNet(in_chans=3, num_classes=0, embed_dim=embed_dim, depths=tuple(depths),
                            mlp_ratio=mlp_ratio, focal_levels=tuple(focal_levels), focal_windows=tuple(focal_windows),
                            use_overlap_down=True, use_post_norm=True, use_post_norm_in_modulation=False,
                            normalize_modulator=True, layerscale_value=1e-4, drop_path_rate=0.0)
        self.net.norm = nn.Identity()  # X-Decoder has a norm per stage instead of timm's final norm
        self.channels = [embed_dim * 2 ** i for i in range(4)]
        for i, c in enumerate(self.channels):
            self.add_module(f"norm{i}", LayerNorm2d(c, eps=1e-5))
        self.register_state_dict_post_hook(_to_xdecoder_names)
        self.register_load_state_dict_pre_hook(_from_xdecoder_names)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x (B, 3, H, W) normalised image -> {'res2': (B, C0, H/4, W/4), ..., 'res5': (B, C3, H/32, W/32)}."""
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.patch_size, 0, -h % self.patch_size))
        x = self.net.stem(x)
        out: Dict[str, torch.Tensor] = {}
        for i, stage in enumerate(self.net.layers):
            if i > 0:
                x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
                x = stage.downsample(x)
            for block in stage.blocks:
                if self.grad_checkpointing and torch.is_grad_enabled() and x.requires_grad:
                    x = checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            out[f"res{i + 2}"] = getattr(self, f"norm{i}")(x)
        return out


def _to_xdecoder_names(module: nn.Module, state_dict: Dict[str, torch.Tensor], prefix: str, local_metadata) -> None:
    inner = prefix + "net."
    keys: List[str] = [k for k in state_dict if k.startswith(inner)]
    moved = {}
    for k in keys:
        v = state_dict.pop(k)
        new = timm_to_xdecoder_key(k[len(inner):])
        if _LINEAR_AS_CONV.search(new) and v.dim() == 4:
            v = v.flatten(1)
        moved[prefix + new] = v
    rest = {k: state_dict.pop(k) for k in list(state_dict) if k.startswith(prefix)}
    state_dict.update(moved)
    state_dict.update(rest)


def _from_xdecoder_names(module: nn.Module, state_dict: Dict[str, torch.Tensor], prefix: str, local_metadata,
                         strict, missing_keys, unexpected_keys, error_msgs) -> None:
    own = {f"norm{i}" for i in range(4)}
    for k in [k for k in state_dict if k.startswith(prefix)]:
        rel = k[len(prefix):]
        if rel.split(".")[0] in own or rel.startswith("net."):
            continue
        v = state_dict.pop(k)
        if _LINEAR_AS_CONV.search(rel) and v.dim() == 2:
            v = v[:, :, None, None]
        state_dict[prefix + "net." + xdecoder_to_timm_key(rel)] = v
