"""Reading IR/VIS images the way the release does, and writing outputs atomically.

The release reads VIS with OpenCV (BGR) -> COLOR_BGR2YCrCb and IR with COLOR_BGR2GRAY, both as
uint8 and then divided by 255 (docs/sage.md#colour). 8-bit inputs follow that path exactly so the
released outputs are reproduced bit for bit; 16-bit inputs are scaled by 65535 and converted in
float32 with the same OpenCV formulas.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

from utils.atomic import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageReadError(ValueError):
    """An input image that cannot be used; the message names the file and the problem."""


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as (H, W) gray or (H, W, 3) BGR, uint8 or uint16, at its stored bit depth.

    Like the release's cv2.imread, an EXIF orientation is applied and an alpha channel dropped.
    """
    path = Path(path)
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if buf.size == 0:
        raise ImageReadError(f"{path}: empty file")
    # ANYCOLOR | ANYDEPTH keeps gray files gray and 16-bit files 16-bit, and (unlike IMREAD_UNCHANGED)
    # rotates by the EXIF orientation as the release's IMREAD_COLOR does
    img = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: unsupported pixel type {img.dtype} (expected 8- or 16-bit)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]  # drop alpha
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ImageReadError(f"{path}: unsupported channel layout {img.shape}")
    return img


def _to_unit_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / float(np.iinfo(img.dtype).max)


def read_ir(path: str | os.PathLike) -> np.ndarray:
    """IR image as float32 (H, W) in [0, 1]; colour files are converted with BGR2GRAY like the release."""
    img = read_raw(path)
    if img.ndim == 3:
        if img.dtype == np.uint8:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # uint8 rounding as in the release
        else:
            return cv2.cvtColor(_to_unit_float(img), cv2.COLOR_BGR2GRAY)
    return _to_unit_float(img)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Visible image as float32 (H, W, 3) RGB in [0, 1] (8- or 16-bit; a grey file gives three equal channels)."""
    img = read_raw(path)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return _to_unit_float(img)


def read_vis(path: str | os.PathLike) -> Tuple[np.ndarray, bool]:
    """VIS image as float32 (3, H, W) YCrCb in [0, 1] (channel 0 = Y, 1 = Cr, 2 = Cb), and whether it is colour.

    A grayscale file gives Y = the image and Cr = Cb = 0.5 (so colour restoration is a no-op).
    """
    return bgr_to_ycrcb(read_raw(path))


def bgr_to_ycrcb(img: np.ndarray) -> Tuple[np.ndarray, bool]:
    """An 8- or 16-bit BGR (H, W, 3) or grey (H, W) array -> (float32 (3, H, W) YCrCb in [0, 1], colour), as
    read_vis converts a file: 8 bits through OpenCV's fixed-point path, 16 bits in float; grey: Cr = Cb = 0.5."""
    if img.ndim == 2:
        y = _to_unit_float(img)
        half = np.full_like(y, 0.5)
        return np.stack([y, half, half]), False
    if img.dtype == np.uint8:
        ycrcb = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2YCrCb).astype(np.float32) / 255.0
    else:
        ycrcb = cv2.cvtColor(_to_unit_float(img), cv2.COLOR_BGR2YCrCb)
    return np.ascontiguousarray(ycrcb.transpose(2, 0, 1)), True


def read_index_map(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int64 map of class indices from a single-channel PNG (or a colour PNG with three equal channels)."""
    img = read_raw(path)
    if img.ndim == 3:
        if not (np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 0], img[:, :, 2])):
            raise ImageReadError(f"{path}: a colour image, not a map of class indices (save one channel of "
                                 f"class values, not a colour visualisation)")
        img = img[:, :, 0]
    return img.astype(np.int64)


def image_size(path: str | os.PathLike) -> Tuple[int, int]:
    """(H, W) of an image file (decodes it; raises ImageReadError on a bad file)."""
    return read_raw(path).shape[:2]


def write_image_atomic(path: str | os.PathLike, img: np.ndarray) -> None:
    """Encode `img` (uint8 gray or BGR) next to `path` under a temporary name, then rename it into place.

    An interrupted run therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, enc = cv2.imencode(path.suffix or ".png", img)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    with atomic_path(path) as tmp:
        tmp.write_bytes(enc.tobytes())
