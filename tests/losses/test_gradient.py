"""losses/gradient.py: Sobel magnitude with zero padding, and the max-gradient loss G."""
from __future__ import annotations

import numpy as np
import torch

from losses.gradient import gradient_loss, sobel_gradient

KX = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
KY = KX.T


def numpy_sobel(img: np.ndarray) -> np.ndarray:
    """|Sobel_x * X| + |Sobel_y * X| by explicit loops over a zero-padded 2-D image."""
    h, w = img.shape
    p = np.zeros((h + 2, w + 2))
    p[1:-1, 1:-1] = img
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            win = p[i:i + 3, j:j + 3]
            out[i, j] = abs((win * KX).sum()) + abs((win * KY).sum())
    return out


def test_constant_image_shows_zero_padding_at_the_border():
    g = sobel_gradient(torch.ones(1, 1, 4, 5))[0, 0]
    # Worked by hand: interior 0, edge pixels 4 (one missing row/column), corners 3 + 3 = 6.
    expected = torch.tensor([[6, 4, 4, 4, 6], [4, 0, 0, 0, 4], [4, 0, 0, 0, 4], [6, 4, 4, 4, 6]], dtype=torch.float32)
    torch.testing.assert_close(g, expected)


def test_vertical_step_edge():
    x = torch.zeros(1, 1, 5, 6)
    x[..., 3:] = 1.0
    g = sobel_gradient(x)[0, 0]
    # Interior rows: the two columns beside the step see 1 + 2 + 1 = 4, the others 0.
    torch.testing.assert_close(g[2], torch.tensor([0.0, 0.0, 4.0, 4.0, 0.0, 4.0]))  # last: zero padding
    np.testing.assert_allclose(g.numpy(), numpy_sobel(x[0, 0].numpy()), atol=1e-6)


def test_random_images_match_numpy_per_channel():
    x = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    g = sobel_gradient(x)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(g[b, c].numpy(), numpy_sobel(x[b, c].double().numpy()), atol=1e-5)


def test_gradient_loss_values():
    gen = torch.Generator().manual_seed(1)
    a, b, f = (torch.rand(2, 1, 8, 8, generator=gen) for _ in range(3))
    # G is zero when F is the source with the larger gradient everywhere (B constant zero).
    assert gradient_loss(a, a, torch.zeros_like(a)).item() == 0.0
    # Symmetric in the sources and equal to the numpy formula.
    torch.testing.assert_close(gradient_loss(f, a, b), gradient_loss(f, b, a))
    ga, gb, gf = (np.stack([numpy_sobel(t[i, 0].double().numpy()) for i in range(2)]) for t in (a, b, f))
    expected = np.abs(gf - np.maximum(ga, gb)).mean()
    assert abs(gradient_loss(f, a, b).item() - expected) < 1e-5
    # F = 0 has no gradient: G = mean of the target gradient.
    assert abs(gradient_loss(torch.zeros_like(a), a, a).item() - ga.mean()) < 1e-5
