"""Reading images for evaluation the way the reference toolkit does: Pillow `convert('L')`.

This deliberately differs from data/imageio.py (OpenCV, used for fusion): Pillow's fixed-point ITU-R 601
luma and its JPEG decoder are what the published metric values were computed from (docs/metrics.md, "Conventions").
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class MetricImageError(ValueError):
    """An image that cannot be read for evaluation; the message names the file."""


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """(H, W) uint8 grey levels of an image file, via Pillow `Image.open(path).convert('L')`."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise MetricImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MetricImageError(f"{path}: not a readable image ({exc})") from None
