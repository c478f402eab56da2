"""Tiny randomly initialised SGAFusion pieces for tests (nothing is downloaded)."""
from __future__ import annotations

import torch

from models.sgafusion.build import build_cue, build_net

CUE_DIM = 32
TINY_CLIP = {"embed_dim": 16, "width": 64, "layers": 2, "patch_size": 16, "image_size": 64, "seed": 0}


def tiny_cue(lora=True, num_classes: int = 9, **extra):
    section = {"tiny": dict(TINY_CLIP), "hidden": CUE_DIM, "num_classes": num_classes, **extra}
    if not lora:
        section["lora"] = None
    return build_cue(section, "working")


def tiny_net(variant: str = "working", seed: int = 0):
    torch.manual_seed(seed)
    return build_net({"variant": variant, "cue_dim": CUE_DIM})


def images(b: int = 1, h: int = 24, w: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    vi = torch.rand(b, 3, h, w, generator=g)
    ir = torch.rand(b, 1, h, w, generator=g)
    return vi, ir


@torch.no_grad()
def spread_init(net, seed: int = 0):
    """Re-draw weights N(0, 2/fan_in) and biases N(0, 0.01), so random features vary over the image
    (PyTorch's default init leaves deep features of this net nearly constant in space)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in net.named_parameters():
        if p.dim() == 1:
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        else:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return net
