"""Shared helpers for the fusion metrics: dtype conversion, Pearson correlation, filtering.

Every metric takes (H, W) tensors of integer grey levels 0..255 (any dtype, any device), the way the
reference toolkit sees `Image.open(path).convert('L')`. Helpers here never rescale to [0, 1].
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F


def as_f32(x: torch.Tensor) -> torch.Tensor:
    """(H, W) float32 copy of grey levels (exact for 0..255)."""
    return x.to(torch.float32)


def as_f64(x: torch.Tensor) -> torch.Tensor:
    """(H, W) float64 copy of grey levels."""
    return x.to(torch.float64)


def as_levels(x: torch.Tensor) -> torch.Tensor:
    """(H, W) int64 grey levels clipped to 0..255 (histogram bin of each pixel)."""
    return x.to(torch.float64).round().clamp(0, 255).to(torch.int64)


def pearson(x: torch.Tensor, y: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Pearson correlation of two same-shape tensors over all elements (float64; NaN if one is constant)."""
    x = x.to(torch.float64).flatten()
    y = y.to(torch.float64).flatten()
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (torch.sqrt((xc * xc).sum() * (yc * yc).sum()) + eps)


def correlate(x: torch.Tensor, kernel: torch.Tensor, padding=0) -> torch.Tensor:
    """Float32 cross-correlation (kernel not flipped) of one (H, W) map with one (n, m) kernel.

    Reproduces the reference run's float32 rounding (METRICS.md Appendix B.2), on which SSIM, MS-SSIM
    and VIF depend: on the CPU, where the reference used oneDNN (fused multiply-adds), torch's own
    conv2d is called with a (1, 1, H, W) input (a larger batch could change the algorithm); elsewhere
    (small maps of the native path, or a GPU) the tap-by-tap emulation below is used.
    """
    kh, kw = kernel.shape
    if x.device.type == "cpu" and _uses_fma(x.numel(), kh, kw):
        k = kernel.to(device=x.device, dtype=torch.float32)
        return F.conv2d(x.to(torch.float32)[None, None], k[None, None], padding=padding)[0, 0]
    return correlate_reference_f32(x, kernel, padding)


def correlate_1d(x: torch.Tensor, taps, dim: int, pad: int) -> torch.Tensor:
    """Cross-correlation of a (C, H, W) stack with a 1-D kernel along `dim` (-2 rows, -1 columns).

    `pad` zeros are added on both ends of that axis (pad = (n - 1) / 2 gives 'same', 0 gives 'valid').
    Shifted slices and in-place adds: for float64 this is several times faster than torch's conv2d,
    which has no fast float64 CPU path. Used by the float64 metrics (Qy, Qcb, EI, Qabf, Nabf).
    """
    taps = [float(t) for t in taps]
    n = len(taps)
    if pad:
        x = F.pad(x, (pad, pad, 0, 0) if dim == -1 else (0, 0, pad, pad))
    size = x.shape[dim] - n + 1
    out = x.narrow(dim, 0, size) * taps[0]
    for i in range(1, n):
        if taps[i] != 0.0:
            out.add_(x.narrow(dim, i, size), alpha=taps[i])
    return out


def correlate_separable(x: torch.Tensor, vertical, horizontal, pad_v: int, pad_h: int) -> torch.Tensor:
    """(C, H, W) stack correlated with the outer product vertical x horizontal ('same' if pads are half-sizes)."""
    return correlate_1d(correlate_1d(x, vertical, -2, pad_v), horizontal, -1, pad_h)


def _uses_fma(numel: int, kh: int, kw: int) -> bool:
    """Whether PyTorch's reference CPU float32 conv (oneDNN) fuses multiply-adds (METRICS.md Appendix B.2)."""
    return numel > 20480 or (kh > 3 and kw > 3)


def correlate_reference_f32(x: torch.Tensor, kernel: torch.Tensor, padding: int | tuple = 0) -> torch.Tensor:
    """Float32 cross-correlation of an (H, W) map reproducing the reference run's rounding bit for bit.

    Taps are visited in row-major order; each output is fl32(w0 x0), then either fused multiply-adds
    (emulated exactly in float64: the product of two float32 values is exact there) or separately
    rounded product and sum, by the rule of METRICS.md Appendix B.2. Independent of the machine's own
    conv kernels, which on other CPUs (or GPUs) round differently and move SSIM/MS-SSIM by ~1e-4.
    Costs one pass per tap: meant for small kernels or small maps.
    """
    kh, kw = kernel.shape
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    fma = _uses_fma(x.numel(), kh, kw)
    x = x.to(torch.float32)
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    h, w = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    taps = kernel.to(torch.float32).flatten().tolist()  # exact float32 values as Python floats
    acc = None
    x64 = x.to(torch.float64) if fma else None
    for t, wt in enumerate(taps):
        a, b = divmod(t, kw)
        if acc is None:
            acc = x[a:a + h, b:b + w] * wt  # fl32(w0 x0)
        elif fma:
            acc = (acc.to(torch.float64) + x64[a:a + h, b:b + w] * wt).to(torch.float32)
        else:
            acc = acc + x[a:a + h, b:b + w] * wt
    return acc


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Disable TF32 for convolutions and matmuls on CUDA (the reference is plain float32)."""
    if not torch.cuda.is_available():
        yield
        return
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul
