"""The student with BatchNorm folded into its convolutions: the network the fast engines run.

Every Conv -> BatchNorm(eval) -> LeakyReLU block becomes one convolution with folded weights,
followed by the activation. On CPU, the convolution and its activation run as one oneDNN call
(`mkldnn::_convolution_pointwise`, the kernel torch.compile's freezing pass emits) on channels-last
tensors, so no intermediate map is written and re-read. Two further rewrites save memory traffic:

* adjust_channels4/5 apply a 1x1 convolution to cat([upsample(low), skip]); the concatenation is
  never built: conv1x1(cat([a, b])) = conv1x1_a(a) + conv1x1_b(b), and a 1x1 convolution commutes
  with bilinear upsampling (each output is a convex combination of inputs), so the `low` half is
  computed at the low resolution and upsampled (4x fewer pixels), then added to the skip half.
* the input concatenation of Y and IR (2 channels) is built once, then made channels-last.

These are exact in real arithmetic; in float32 the output differs from the reference module by
float rounding only (~1e-6).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..student import Student

LEAKY_SLOPE = 0.01  # the student's LeakyReLU slope (models/student.py cbl)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """(weight (O, I, k, k), bias (O,)) of one convolution equal to conv followed by bn in eval mode.

    bn(conv(x)) = gamma * (W x + b - mean) / sqrt(var + eps) + beta
                = (s W) x + s (b - mean) + beta   with s = gamma / sqrt(var + eps).
    Computed in float64 so the folding itself adds no rounding beyond the final cast.
    """
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    weight = w * scale[:, None, None, None]
    bias = (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()
    return weight.to(conv.weight.dtype), bias.to(conv.weight.dtype)


def _cbl_params(seq: nn.Sequential) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Folded (weight, bias) of each Conv-BN-LeakyReLU triple of a release-layout nn.Sequential."""
    layers = list(seq)
    if len(layers) % 3 or not all(isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d)
                                  for i in range(0, len(layers), 3)):
        raise ValueError("expected a sequence of Conv2d, BatchNorm2d, LeakyReLU triples (models/student.py cbl)")
    return [fold_batchnorm(layers[i], layers[i + 1]) for i in range(0, len(layers), 3)]


def oneDNN_fusion_available() -> bool:
    """Whether this PyTorch build exposes oneDNN's fused convolution + activation kernel."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


class FoldedStudent(nn.Module):
    """Inference-only student: BatchNorm folded, concatenations removed, fused conv + activation.

    Build with `FoldedStudent.from_student(student)` (the student must be in eval mode semantics:
    its BatchNorm running statistics are used). forward(y, ir) with (B, 1, H, W) inputs returns the
    fused (B, 1, H, W) in (-1, 1); `features(y, ir)` also returns the taps [x1..x5] of the student.

    Args:
        stacks: folded (weight, bias) lists of module1..module5 (3 convs each).
        adjust4, adjust5: folded (weight (32, 64, 1, 1), bias) of adjust_channels4/5.
        final: (weight (1, 32, 3, 3), bias (1,)) of the final decoder conv (followed by Tanh).
        fused_ops: run conv + activation as one oneDNN kernel on CPU when available.
    """

    def __init__(self, stacks, adjust4, adjust5, final, fused_ops: bool = True):
        super().__init__()
        self.fused_ops = bool(fused_ops) and oneDNN_fusion_available()
        self.width = adjust4[0].shape[0]
        names = []
        for s, stack in enumerate(stacks):
            for i, (w, b) in enumerate(stack):
                names.append((f"m{s + 1}_{i}", w, b))
        w4, b4 = adjust4
        w5, b5 = adjust5
        c = self.width
        # adjust convs split into the half applied to the upsampled (low) input and the skip half
        names += [("a4_low", w4[:, :c], None), ("a4_skip", w4[:, c:], b4),
                  ("a5_low", w5[:, :c], None), ("a5_skip", w5[:, c:], b5), ("final", final[0], final[1])]
        for name, w, b in names:
            self.register_buffer(f"{name}_w", w.detach().clone().contiguous(memory_format=torch.channels_last))
            self.register_buffer(f"{name}_b", None if b is None else b.detach().clone().contiguous())
        self.depths = [len(s) for s in stacks]

    @classmethod
    def from_student(cls, student: Student, fused_ops: bool = True) -> "FoldedStudent":
        """Fold a (trained, eval-mode) Student; the result lives on the student's device."""
        stacks = [_cbl_params(getattr(student, f"module{i}")) for i in range(1, 6)]
        a4 = fold_batchnorm(student.adjust_channels4[0], student.adjust_channels4[1])
        a5 = fold_batchnorm(student.adjust_channels5[0], student.adjust_channels5[1])
        conv = student.final_decoder[0]
        final = (conv.weight.detach(), conv.bias.detach())
        return cls(stacks, a4, a5, final, fused_ops=fused_ops).eval()

    # ---- building blocks -------------------------------------------------------------------
    def _w(self, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{name}_w"), getattr(self, f"{name}_b")

    def _conv_act(self, x: torch.Tensor, name: str, act: str = "leaky_relu") -> torch.Tensor:
        w, b = self._w(name)
        pad = w.shape[-1] // 2
        if self.fused_ops and x.device.type == "cpu":
            scalars = [LEAKY_SLOPE] if act == "leaky_relu" else []
            return torch.ops.mkldnn._convolution_pointwise(x, w, b, [pad, pad], [1, 1], [1, 1], 1, act, scalars, "")
        y = F.conv2d(x, w, b, padding=pad)
        return F.leaky_relu_(y, LEAKY_SLOPE) if act == "leaky_relu" else torch.tanh_(y)

    def _stack(self, x: torch.Tensor, index: int) -> torch.Tensor:
        for i in range(self.depths[index]):
            x = self._conv_act(x, f"m{index + 1}_{i}")
        return x

    def _adjust(self, low: torch.Tensor, skip: torch.Tensor, name: str) -> torch.Tensor:
        """LeakyReLU(conv1x1(cat([upsample(low), skip]))) without building the concatenation."""
        w_low, _ = self._w(f"{name}_low")
        w_skip, b_skip = self._w(f"{name}_skip")
        up = F.interpolate(F.conv2d(low, w_low), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        up = up.contiguous(memory_format=torch.channels_last)
        if self.fused_ops and skip.device.type == "cpu":
            out = torch.ops.mkldnn._convolution_pointwise.binary(
                skip, up, w_skip, b_skip, [0, 0], [1, 1], [1, 1], 1, "add", 1.0, None, [], None)
        else:
            out = F.conv2d(skip, w_skip, b_skip).add_(up)
        return F.leaky_relu_(out, LEAKY_SLOPE)

    # ---- forward -----------------------------------------------------------------------------
    def features(self, y: torch.Tensor, ir: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """(fused (B, 1, H, W), [x1, x2, x3, x4, x5]) exactly as Student.forward returns them."""
        x = torch.cat([y, ir], dim=1).contiguous(memory_format=torch.channels_last)
        x1 = self._stack(x, 0)
        x2 = self._stack(F.max_pool2d(x1, 2), 1)
        x3 = self._stack(F.max_pool2d(x2, 2), 2)
        x4 = self._stack(self._adjust(x3, x2, "a4"), 3)
        x5 = self._stack(self._adjust(x4, x1, "a5"), 4)
        fused = self._conv_act(x5, "final", act="tanh")
        return fused.contiguous(), [x1, x2, x3, x4, x5]

    def forward(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.features(y, ir)[0]
