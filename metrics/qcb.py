"""Chen-Blum perceptual metric Qcb as the toolkit computes it (docs/metrics.md).

The contrast-sensitivity filter is built in float32 in the toolkit's order, each operation correctly
rounded (docs/metrics.md, "Float32 recipes"): Qcb is a ratio of near-zero band-pass responses where a source sits at its
minimum, and the last bits of the CSF move it by up to 1e-2 there (a float64 CSF is 6.5e-3 off; this
one is within 1.1e-4 of the reference; torch's own float32 exp/sqrt on another CPU can be 1e-3 off).
Everything after the CSF is float64; the 31x31 Gaussian blurs run as zero-padded linear FFT convolution.
"""
from __future__ import annotations

import functools
import math

import torch

from .common import as_f64

_F0, _F1, _A = 15.3870, 1.3456, 0.7622


def _r32(x: torch.Tensor) -> torch.Tensor:
    """Round float64 values to the nearest float32 (kept as float64)."""
    return x.to(torch.float32).to(torch.float64)


def _frequencies(n: int) -> torch.Tensor:
    """fl32(fl32(k * fl32(1/n)) * fl32(n/30)) for k in fftfreq order: torch.fft.fftfreq(n) * (n / 30)."""
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64).round()  # integer indices 0..,-..-1
    return _r32(_r32(k * _r32(torch.tensor(1.0 / n, dtype=torch.float64))) * _r32(torch.tensor(n / 30, dtype=torch.float64)))


@functools.lru_cache(maxsize=8)
def csf(h: int, w: int) -> torch.Tensor:
    """(H, W) float32 CSF S(rho) on the unshifted FFT grid, rho = |fftfreq * size / 30| (half MATLAB's).

    S = exp(-(rho/f0)^2) - a exp(-(rho/f1)^2), every float32 step correctly rounded. Cached per size
    (callers must not modify it).
    """
    u, v = _frequencies(h), _frequencies(w)
    rho = _r32(torch.sqrt(_r32(_r32(u[:, None] ** 2) + _r32(v[None, :] ** 2))))
    f0, f1, a = (float(torch.tensor(c, dtype=torch.float32)) for c in (_F0, _F1, _A))
    e0 = _r32(torch.exp(-_r32(_r32(rho / f0) ** 2)))
    e1 = _r32(torch.exp(-_r32(_r32(rho / f1) ** 2)))
    return (e0 - _r32(a * e1)).to(torch.float32)


def _gauss31(sigma: float) -> torch.Tensor:
    """(31, 31) unnormalised kernel exp(-(x^2+y^2)/(2 s^2)) / (2 pi s^2), x, y in -15..15."""
    x = torch.arange(-15, 16, dtype=torch.float64)
    return torch.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2)) / (2 * math.pi * sigma ** 2)


def _fast_size(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 (fast FFT lengths)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@functools.lru_cache(maxsize=8)
def _gauss_spectra(size: tuple, sigmas: tuple) -> torch.Tensor:
    """(len(sigmas), size[0], size[1] // 2 + 1) rfft2 of the 31x31 Gaussians zero-padded to `size` (cached, CPU)."""
    return torch.stack([torch.fft.rfft2(_gauss31(s), s=size) for s in sigmas])


def _blur(x: torch.Tensor, sigmas) -> torch.Tensor:
    """(len(sigmas), H, W): 'same' zero-padded correlation of one (H, W) map with each 31x31 Gaussian,
    via one FFT of x (the kernels are symmetric, so correlation = convolution)."""
    h, w = x.shape[-2:]
    size = (_fast_size(h + 30), _fast_size(w + 30))  # >= H + 30: linear, not circular, convolution
    spec = torch.fft.rfft2(x, s=size)
    k = _gauss_spectra(size, tuple(sigmas)).to(x.device)
    # The inverse as two 1-D passes, keeping only the output rows before the second: the same numbers as
    # irfft2 followed by the crop, with less work and copying.
    rows = torch.fft.ifft(spec * k, dim=-2)[..., 15:15 + h, :].contiguous()
    return torch.fft.irfft(rows, n=size[1], dim=-1)[..., 15:15 + w]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    x = as_f64(x)
    return (x - x.min()) / (x.max() - x.min())  # constant image -> NaN, as the toolkit


def _contrast(x: torch.Tensor) -> torch.Tensor:
    """(H, W) float64 masked contrast C^P = |C|^3 / (|C|^2 + 1e-4) of one image, C = G2 / G4 - 1 of its
    CSF-filtered version. One image at a time keeps every temporary small (cache, no page faults)."""
    h, w = x.shape[-2:]
    x = _normalise(x)
    # S is real and even (S(-u, -v) = S(u, v) on the FFT grid), so the circular filtering is real: a
    # half spectrum suffices (the same numbers as the real part of the full complex inverse, to 1e-16).
    s = csf(h, w)[:, : w // 2 + 1].to(device=x.device, dtype=torch.float64)
    x = torch.fft.irfft2(torch.fft.rfft2(x) * s, s=(h, w))
    g2, g4 = _blur(x, (2.0, 4.0))
    c = g4 + 1e-10  # in-place steps below: fewer large temporaries
    c = torch.div(g2, c, out=c).sub_(1).abs_()  # |g2 / (g4 + 1e-10) - 1|; g2 and g4 nearly cancel in flat areas
    # float64 throughout: in flat areas c^3 reaches 1e-44 and below, which float32 flushes to 0 (0/0 = NaN).
    c2 = c * c
    return c.mul_(c2).div_(c2.add_(1e-4))


def qcb(ir: torch.Tensor, vis: torch.Tensor, fused: torch.Tensor) -> float:
    """Qcb = mean(lambda_A Q^{AF} + lambda_B Q^{BF}) from CSF-filtered local contrast. Higher is better."""
    c_a, c_b, c_f = (_contrast(x) for x in (ir, vis, fused))
    q_af = torch.minimum(c_a, c_f) / torch.maximum(c_a, c_f)  # the smaller over the larger
    q_bf = torch.minimum(c_b, c_f) / torch.maximum(c_b, c_f)
    a2, b2 = c_a * c_a, c_b * c_b
    q = (a2 * q_af + b2 * q_bf) / (a2 + b2 + 1e-10)
    return float(q.mean())
