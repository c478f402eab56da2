"""Fusing one batch with SGAFusion: the release's pre- and post-processing (docs/sgafusion.md, "Inference").

- visible: RGB (B, 3, H, W) in [0, 1] at full resolution (a grey visible image: repeat it to 3 channels);
- infrared: (B, 1, H, W) in [0, 1]; a 3-channel IR is turned grey as PIL's convert("L") does
  (ITU-R 601-2 luma with PIL's integer rounding when the values are 8-bit levels);
- the cue comes from the visible image (`ClipCueEncoder` resizes and normalises it itself);
- the network sees IR repeated to 3 channels; its raw fused output is clamped to [1e-5, 1].
  The release then writes floor(255 x) (`to_uint8_release`).

The network never downsamples, so any H, W works (`PAD_MULTIPLE` = 1); the dehaze expert's
atmospheric light and the cue are global per image, so tiles would not give the whole-image result.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .cue import ClipCueEncoder, Cue
from .network import SGAFusionNet

PAD_MULTIPLE = 1
CLAMP_MIN = 1e-5


def ir_to_gray(ir: torch.Tensor) -> torch.Tensor:
    """(B, 1 or 3, H, W) in [0, 1] -> (B, 1, H, W); 3 channels as PIL convert("L") does."""
    if ir.dim() != 4 or ir.shape[1] not in (1, 3):
        raise ValueError(f"models/sgafusion/inference.py: IR must be (B, 1, H, W) or (B, 3, H, W), got {tuple(ir.shape)}")
    if ir.shape[1] == 1:
        return ir
    levels = ir * 255
    rounded = levels.round()
    if bool(((levels - rounded).abs() < 1e-3).all()):  # 8-bit levels: PIL's fixed-point luma
        r, g, b = rounded.long().unbind(1)
        lum = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
        return (lum.to(ir.dtype) / 255)[:, None]
    return 0.299 * ir[:, 0:1] + 0.587 * ir[:, 1:2] + 0.114 * ir[:, 2:3]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Reflect-pad bottom/right to a multiple of `multiple`; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    return x, (h, w)


def to_uint8_release(fused: torch.Tensor) -> torch.Tensor:
    """The release's 8-bit output: floor(255 * clamp(x, 1e-5, 1)) (truncation), (B, 3, H, W) uint8."""
    return (fused.clamp(CLAMP_MIN, 1.0) * 255).to(torch.uint8)


def _check_pair(vi: torch.Tensor, ir: torch.Tensor) -> None:
    if vi.dim() != 4 or vi.shape[1] != 3:
        raise ValueError(f"models/sgafusion/inference.py: visible must be RGB (B, 3, H, W), got {tuple(vi.shape)}")
    if vi.shape[0] != ir.shape[0] or vi.shape[-2:] != ir.shape[-2:]:
        raise ValueError(f"models/sgafusion/inference.py: visible {tuple(vi.shape)} and IR {tuple(ir.shape)} "
                         "differ in batch or size")


@torch.no_grad()
def fuse(net: SGAFusionNet, cue_encoder: Optional[ClipCueEncoder], vi: torch.Tensor, ir: torch.Tensor,
         cue: Optional[Cue] = None, autocast: bool = False) -> torch.Tensor:
    """Fused RGB (B, 3, H, W) in [1e-5, 1] from visible RGB (B, 3, H, W) and IR (B, 1 or 3, H, W) in [0, 1].

    net/cue_encoder should be in eval mode on the inputs' device; pass `cue` to reuse a computed cue.
    autocast: run the network under float16 autocast on CUDA, as the release does.
    """
    _check_pair(vi, ir)
    ir1 = ir_to_gray(ir)
    if cue is None:
        if cue_encoder is None:
            raise ValueError("models/sgafusion/inference.py: fuse needs a cue encoder or a computed cue")
        cue = cue_encoder(vi)
    tokens = cue.tokens if net.uses_tokens else None
    x_vi, size = pad_to_multiple(vi, PAD_MULTIPLE)
    x_ir, _ = pad_to_multiple(ir1, PAD_MULTIPLE)
    use_amp = autocast and vi.device.type == "cuda"
    with torch.autocast(device_type=vi.device.type, dtype=torch.float16, enabled=use_amp):
        _, fused = net(x_vi, x_ir.expand(-1, 3, -1, -1), cue.feature, tokens)
    fused = fused[..., :size[0], :size[1]].float()
    return fused.clamp(CLAMP_MIN, 1.0)
