"""Builders of the SGAFusion network and cue encoder from config sections, and strict weight loading.

Config sections (docs/sgafusion.md, "Configuration"); every key is optional:

    model:                  # build_net
      variant: working      # "working" (default) or "release"
      num_classes: 9        # segmentation classes
      cue_dim: 512          # width of the global cue (= cue.hidden)
      token_dim: null       # width of the patch tokens (null: cue_dim)
      heads: 2              # cross-attention heads
      dehaze_pool: 32       # pool size feeding the dehaze expert's fc1 (release 32; tiny demos 4)
    cue:                    # build_cue
      clip_weights: ~/.cache/clip/ViT-B-32.pt   # OpenAI file, open_clip file or folder; null: random tower
      arch: ViT-B-32        # open_clip name for .safetensors/.bin files
      tiny: null            # {embed_dim, width, layers, patch_size, image_size, seed}: random tiny tower
      num_classes: 9        # degradation classes
      hidden: 512
      normalize: true       # CLIP mean/std (release: false)
      resize: bicubic       # "bicubic" (antialiased) or "bilinear" (release stage 1)
      tokens: true          # patch tokens for the working variant (release: false)
      lora: {r: 4, alpha: 1.0, dropout: 0.0, targets: [attn, mlp.c_fc, mlp.c_proj]}   # null: no LoRA

`VARIANTS` holds each variant's defaults for both sections; explicit keys win.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import torch

from ..checkpoint import check_keys, load_weights, read_state_dict
from .cue import ClipCueEncoder, load_clip_visual, tiny_clip_visual
from .lora import LORA_TARGETS, add_lora, is_lora_name
from .network import SGAFusionNet

VARIANTS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "working": {
        "model": {"variant": "working", "num_classes": 9, "cue_dim": 512, "token_dim": None, "heads": 2,
                  "dehaze_pool": 32},
        "cue": {"clip_weights": None, "arch": "ViT-B-32", "tiny": None, "num_classes": 9, "hidden": 512,
                "normalize": True, "resize": "bicubic", "tokens": True,
                "lora": {"r": 4, "alpha": 1.0, "dropout": 0.0, "targets": list(LORA_TARGETS)}},
    },
    "release": {
        "model": {"variant": "release", "num_classes": 9, "cue_dim": 512, "token_dim": None, "heads": 2,
                  "dehaze_pool": 32},
        "cue": {"clip_weights": None, "arch": "ViT-B-32", "tiny": None, "num_classes": 9, "hidden": 512,
                "normalize": False, "resize": "bicubic", "tokens": False, "lora": None},
    },
}


def _settings(section: Optional[Mapping[str, Any]], part: str, variant: Optional[str]) -> Dict[str, Any]:
    section = dict(section or {})
    name = variant or section.get("variant") or "working"
    if name not in VARIANTS:
        raise ValueError(f"SGAFusion: unknown variant {name!r} (one of {', '.join(VARIANTS)})")
    defaults = VARIANTS[name][part]
    unknown = sorted(set(section) - set(defaults) - {"variant"})
    if unknown:
        raise ValueError(f"SGAFusion config section '{part}': unknown keys {unknown} (known: {sorted(defaults)})")
    return {**defaults, **section}


def build_net(section: Optional[Mapping[str, Any]] = None) -> SGAFusionNet:
    """SGAFusionNet from a `model:` section."""
    s = _settings(section, "model", None)
    return SGAFusionNet(variant=s["variant"], num_classes=int(s["num_classes"]), cue_dim=int(s["cue_dim"]),
                        token_dim=s["token_dim"], heads=int(s["heads"]), dehaze_pool=int(s["dehaze_pool"]))


def build_cue(section: Optional[Mapping[str, Any]] = None, variant: str = "working") -> ClipCueEncoder:
    """ClipCueEncoder (CLIP tower + LoRA + head) from a `cue:` section and the network's variant."""
    s = _settings(section, "cue", variant)
    if s["tiny"] is not None:
        visual = tiny_clip_visual(**dict(s["tiny"]))
    elif s["clip_weights"]:
        visual = load_clip_visual(s["clip_weights"], s["arch"])
    else:
        import open_clip

        visual = open_clip.create_model(s["arch"], pretrained=None, device="cpu").visual
    if s["lora"]:
        lora = dict(s["lora"])
        add_lora(visual, r=int(lora.get("r", 4)), alpha=float(lora.get("alpha", 1.0)),
                 dropout=float(lora.get("dropout", 0.0)), targets=lora.get("targets", LORA_TARGETS))
    else:
        for p in visual.parameters():
            p.requires_grad_(False)
    return ClipCueEncoder(visual, num_classes=int(s["num_classes"]), hidden=int(s["hidden"]),
                          normalize=bool(s["normalize"]), resize=s["resize"], tokens=bool(s["tokens"]))


def cue_state_dict(cue: ClipCueEncoder, include_base: bool = False) -> Dict[str, torch.Tensor]:
    """The cue's trained tensors (head + LoRA); with include_base also the frozen CLIP tower (tiny demos)."""
    return {k: v.detach().cpu() for k, v in cue.state_dict().items()
            if include_base or k.startswith("head.") or is_lora_name(k)}


def load_cue_state(cue: ClipCueEncoder, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> ClipCueEncoder:
    """Strictly load head + LoRA tensors (and the tower when `state` has it) into `cue`.

    A bare head state_dict (`fc1.*`, `fc2.*`, as in the release fixture) is accepted as `head.*`.
    """
    state = {(f"head.{k}" if k.split(".")[0] in ("fc1", "fc2") else k): v for k, v in state.items()}
    own = cue.state_dict()
    full = any(k.startswith("visual.") and not is_lora_name(k) for k in state)
    required = [k for k in own if full or k.startswith("head.") or is_lora_name(k)]
    check_keys(own, state, path, "SGAFusion cue (for this configuration)", required)
    cue.load_state_dict(state, strict=False)
    return cue


def load_net(path: str | os.PathLike, section: Optional[Mapping[str, Any]] = None,
             device: torch.device | str = "cpu") -> SGAFusionNet:
    """SGAFusionNet in eval mode with the weights of `path` (weights_only, strict); keys `state_dict`/`model`/`net`."""
    net = build_net(section)
    load_weights(net, read_state_dict(path, keys=("net", "state_dict", "model")), path, what="SGAFusion network")
    return net.to(device).eval()


def load_cue(path: str | os.PathLike, section: Optional[Mapping[str, Any]] = None, variant: str = "working",
             device: torch.device | str = "cpu") -> ClipCueEncoder:
    """Cue encoder in eval mode: CLIP from the config, head + LoRA from `path` (keys `cue` or a bare state_dict)."""
    cue = build_cue(section, variant)
    load_cue_state(cue, read_state_dict(path, keys=("cue", "state_dict")), path)
    return cue.to(device).eval()


def save_sgafusion(path: str | os.PathLike, net: SGAFusionNet, cue: ClipCueEncoder, include_cue_base: bool = False,
                   meta: Optional[Mapping[str, Any]] = None) -> None:
    """Write {"net": net state_dict, "cue": head + LoRA (+ tower), "variant", **meta} atomically (torch.save).

    include_cue_base: also store the frozen CLIP tower (for small random towers, e.g. demos); a
    pretrained CLIP is not copied into every checkpoint but loaded from `cue.clip_weights`.
    """
    from utils.run_state import save_atomic

    save_atomic(sgafusion_checkpoint(net, cue, include_cue_base, meta), path)


def sgafusion_checkpoint(net: SGAFusionNet, cue: ClipCueEncoder, include_cue_base: bool = False,
                         meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The object save_sgafusion writes: {"net", "cue", "variant", **meta} (plain values, CPU tensors)."""
    obj = {"net": {k: v.detach().cpu() for k, v in net.state_dict().items()},
           "cue": cue_state_dict(cue, include_base=include_cue_base), "variant": net.variant}
    obj.update(dict(meta or {}))
    return obj


def load_sgafusion(path: str | os.PathLike, model: Optional[Mapping[str, Any]] = None,
                   cue: Optional[Mapping[str, Any]] = None, device: torch.device | str = "cpu"):
    """(net, cue encoder) in eval mode from a file written by save_sgafusion and the config sections."""
    net = load_net(path, model, device)
    encoder = load_cue(path, cue, net.variant, device)
    return net, encoder
