"""Sobel gradient magnitude and the max-gradient texture loss G (docs/sage.md#losses)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Unnormalised 3x3 Sobel kernels, stacked as the two output channels of one conv (2, 1, 3, 3).
# The sign and the cross-correlation vs convolution flip do not matter: only |.| is used.
_SOBEL = torch.tensor(
    [
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
        [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
    ]
).unsqueeze(1)


def sobel_gradient(x: torch.Tensor) -> torch.Tensor:
    """grad(X) = |Sobel_x * X| + |Sobel_y * X|, unnormalised kernels, zero padding 1.

    Not kornia.filters.spatial_gradient: it pads with 'replicate' (and by default divides the
    kernel by 8), which changes every border pixel; the release uses F.conv2d with zero padding,
    and the loss weights (9, 3, 2, ...) were tuned for that scale.

    Args:
        x: (B, C, H, W); every channel is filtered on its own.
    Returns:
        (B, C, H, W), non-negative.
    """
    b, c, h, w = x.shape
    kernel = _SOBEL.to(device=x.device, dtype=x.dtype)
    g = F.conv2d(x.reshape(b * c, 1, h, w), kernel, padding=1)  # (B*C, 2, H, W)
    return g.abs().sum(dim=1).reshape(b, c, h, w)


def gradient_loss(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """G(F; A, B) = mean |grad(F) - max(grad(A), grad(B))|.

    Args:
        fused, a, b: (B, C, H, W) of the same shape.
    Returns:
        scalar tensor.
    """
    assert fused.shape == a.shape == b.shape, (fused.shape, a.shape, b.shape)
    target = torch.maximum(sobel_gradient(a), sobel_gradient(b))
    return F.l1_loss(sobel_gradient(fused), target)
