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
    if x.dtype == torch.uint8:
        return x.to(torch.int64)  # already 0..255 integers
    return x.to(torch.float64).round().clamp(0, 255).to(torch.int64)


def pearson(x: torch.Tensor, y: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Pearson correlation of two same-shape tensors over all elements (float64; NaN if one is constant)."""
    x = x.to(torch.float64).flatten()
    y = y.to(torch.float64).flatten()
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (torch.sqrt((xc * xc).sum() * (yc * yc).sum()) + eps)


def correlate(x: torch.Tensor, kernel: torch.Tensor, padding: int | tuple = 0, stride: int = 1) -> torch.Tensor:
    """Float32 cross-correlation (kernel not flipped) of one (H, W) map with one (n, m) kernel, tap by tap.

    Follows the reference run's float32 recipe (docs/metrics.md, "Float32 recipes"): taps visited in
    row-major order, the first giving fl32(w0 x0), each later one either a fused multiply-add or a
    separately rounded product and sum (the rule of `uses_fma`). One in-place pass per tap over the
    whole map: `add_(x, alpha=w)` is torch's vectorised fused multiply-add on x86-64 (AVX2, AVX-512),
    ARM and CUDA, so this equals PyTorch's oneDNN convolution of the reference run bit for bit where
    torch fuses; a build that does not fuse rounds each sum a little differently (errors of the same
    size: a few float32 ulps per sample, ~1e-4 at most on the metrics, inside the 1e-3 goal). For a
    17x17 kernel on one channel this is ~40x faster than conv2d on a 2-core AVX2 CPU.
    `stride` 2 evaluates only the even output rows and columns (the same values as [::2, ::2]).
    """
    kh, kw = kernel.shape
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    fma = uses_fma(x.numel(), kh, kw)
    x = x.to(torch.float32)
    h = (x.shape[0] + 2 * ph - kh) // stride + 1
    w = (x.shape[1] + 2 * pw - kw) // stride + 1
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    taps = kernel.to(torch.float32).flatten().tolist()  # exact float32 values as Python floats
    # With a stride, read each tap from the matching phase (rows a mod s, columns b mod s) of the input,
    # made contiguous once: the per-tap slices are then contiguous rows (vectorised fused multiply-adds).
    phases = {(r, c): x[r::stride, c::stride].contiguous() for r in range(min(stride, kh)) for c in range(min(stride, kw))}
    out = None
    for t, wt in enumerate(taps):
        a, b = divmod(t, kw)
        p = phases[(a % stride, b % stride)]
        src = p[a // stride:a // stride + h, b // stride:b // stride + w]
        if out is None:
            out = torch.mul(src, wt)  # fl32(w0 x0), a fresh map
        elif wt == 0.0:
            continue  # contributes exactly 0 (fl32(acc + 0) = acc)
        elif fma:
            out.add_(src, alpha=wt)
        else:
            out.add_(src * wt)  # product rounded on its own, then the sum
    return out


def correlate_1d(x: torch.Tensor, taps, dim: int, pad: int) -> torch.Tensor:
    """Cross-correlation of an (H, W) map or (C, H, W) stack with a 1-D kernel along `dim` (-2 rows, -1 columns).

    `pad` zeros are added on both ends of that axis (pad = (n - 1) / 2 gives 'same', 0 gives 'valid').
    Shifted slices and in-place adds: for float64 this is several times faster than torch's conv2d,
    which has no fast float64 CPU path. Used by Qy (float64) and the Sobel filters of EI, Qabf and
    Nabf (float32, exact on grey levels).
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


def uses_fma(numel: int, kh: int, kw: int) -> bool:
    """Whether the reference run's float32 conv fused multiply-adds: an input of more than 20480 elements or
    a kernel larger than 3 in both directions (oneDNN); otherwise PyTorch's native path rounded each product."""
    return numel > 20480 or (kh > 3 and kw > 3)


def correlate_reference_f32(x: torch.Tensor, kernel: torch.Tensor, padding: int | tuple = 0) -> torch.Tensor:
    """Float32 cross-correlation of an (H, W) map reproducing the reference run's rounding bit for bit.

    Taps are visited in row-major order; each output is fl32(w0 x0), then either fused multiply-adds
    (emulated exactly in float64: the product of two float32 values is exact there) or separately
    rounded product and sum, by the rule of `uses_fma` (docs/metrics.md, "Float32 recipes").
    Independent of the machine's own arithmetic (plain float64 operations only), so it is the
    CPU-independent yardstick for `correlate` in the tests. Several float64 passes per tap: slow.
    """
    kh, kw = kernel.shape
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    fma = uses_fma(x.numel(), kh, kw)
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
