"""Seeded synthesis of degraded visible/infrared images at graded strengths (docs/degradation.md).

    vis_d, ir_d = degrade_pair(vis, ir, "haze", strength=0.6, seed=7)
    img_d = degrade(img, "blur", 0.5, seed=(0, epoch, index))

Images are float arrays in [0, 1]: numpy (H, W) or (H, W, C), or torch tensors (C, H, W) or (H, W), C = 1
or 3 (visible RGB or grey, infrared grey). Every output has the input's type, layout, dtype and device,
and lies in [0, 1]. Strength 0 returns the input unchanged; strength 1 is the heaviest degradation.
The same (kind, strength, seed) gives the same output, and every model draws its random numbers without
regard to the strength, so with one seed a larger strength strengthens the same haze, the same rain
streaks, the same noise pattern (strengths are comparable image by image).

Which degradation exists is the registry `DEGRADATIONS` (name -> Degradation); which of them form the
classes of the degradation classifier is a config value (`DEFAULT_CLASSES` is only the default).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

Image = Union[np.ndarray, torch.Tensor]
Seed = Union[int, Sequence[int]]
# A degradation model: (H, W, C) float32 in [0, 1], strength in (0, 1], generator -> (H, W, C) float32.
Model = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


class DegradationError(ValueError):
    """An unknown degradation name, a strength outside [0, 1], or an image that is not in [0, 1]."""


@dataclass(frozen=True)
class Degradation:
    """One registered degradation: which image it affects and its model."""

    name: str
    target: str  # "vis", "ir" or "none" (the clean class)
    model: Model
    summary: str  # one line for listings and docs


DEGRADATIONS: Dict[str, Degradation] = {}

# Default class list of the degradation classifier (9 classes, the clean one first). See
# docs/degradation.md for why these: the degradations the method targets, plus rain, the other common
# weather degradation of visible images in degradation-aware fusion benchmarks.
DEFAULT_CLASSES: Tuple[str, ...] = ("clean", "haze", "rain", "low_light", "over_exposure", "blur", "noise",
                                    "ir_noise", "ir_low_contrast")


def register_degradation(name: str, target: str, model: Model, summary: str = "") -> None:
    """Add a degradation to the registry (a new name, or replacing one)."""
    if target not in ("vis", "ir", "none"):
        raise DegradationError(f"degradation {name}: target must be 'vis', 'ir' or 'none', not {target!r}")
    DEGRADATIONS[name] = Degradation(name, target, model, summary)


def get_degradation(kind: str) -> Degradation:
    """The registered degradation `kind`, or a DegradationError listing the known names."""
    try:
        return DEGRADATIONS[kind]
    except KeyError:
        raise DegradationError(f"unknown degradation '{kind}' (known: {', '.join(DEGRADATIONS)})") from None


def parse_kinds(spec: Optional[Union[str, Iterable[str]]], default: Sequence[str] = DEFAULT_CLASSES) -> List[str]:
    """Degradation names from 'haze,blur' or a list (None: `default`); each checked, duplicates refused."""
    if spec is None:
        items = list(default)
    elif isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in spec]
    if not items:
        raise DegradationError("no degradation named")
    for k in items:
        get_degradation(k)
    dup = sorted({k for k in items if items.count(k) > 1})
    if dup:
        raise DegradationError(f"degradation(s) listed twice: {', '.join(dup)}")
    return items


def level_to_strength(level: int, levels: int = 5) -> float:
    """Level 0..levels (0 = clean) -> strength level/levels in [0, 1]."""
    if not 0 <= level <= levels:
        raise DegradationError(f"level {level} outside 0..{levels}")
    return level / levels


def pair_seed(base_seed: int, name: str, kind: str) -> int:
    """A stable seed for degrading image `name` with `kind` (the same for every strength)."""
    return (int(base_seed) * 1_000_003 + zlib.crc32(f"{name}\0{kind}".encode("utf-8"))) % (2 ** 63)


# ---------------------------------------------------------------------------------------------------
# helpers

def _luminance(x: np.ndarray) -> np.ndarray:
    """(H, W) luma: Rec. 601 weights for RGB, the image itself for grey."""
    if x.shape[2] == 3:
        return x @ np.array([0.299, 0.587, 0.114], np.float32)
    return x[:, :, 0]


def _blur_gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (H, W) or (H, W, C) with reflected borders; a no-op for tiny sigma."""
    if sigma < 1e-3:
        return x
    out = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return out.reshape(x.shape)


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line (motion-blur) kernel of `length` pixels at `angle_deg` (0 = horizontal)."""
    size = max(1, int(math.ceil(length)) | 1)  # odd
    k = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    dx, dy = math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, 4 * size)):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for xx, yy, w in ((x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)),
                          (x0, y0 + 1, (1 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)):
            if 0 <= xx < size and 0 <= yy < size:
                k[yy, xx] += w
    return k / k.sum()


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT).reshape(x.shape)


def _signal_dependent_noise(x: np.ndarray, a: float, b: float, n: np.ndarray) -> np.ndarray:
    """x + sqrt(a x + b^2) n: the Gaussian approximation of Poisson (shot, a) + Gaussian (read, b) noise."""
    return x + np.sqrt(np.maximum(a * x + b * b, 0.0)) * n


# ---------------------------------------------------------------------------------------------------
# the models (strength s in (0, 1]; parameters in docs/degradation.md)

HAZE_BETA_MAX = 2.5  # scattering coefficient at s = 1 (transmission exp(-2.5) = 0.08 at the farthest point)
HAZE_NEAR = 0.2  # depth of the nearest point on the [0, 1] depth scale


def haze_depth(x: np.ndarray, row_weight: float) -> np.ndarray:
    """(H, W) depth proxy in [HAZE_NEAR, 1]: rows higher up are farther, and so are bright smooth regions
    (sky, distant walls), taken from the luminance blurred at 5% of the image size."""
    h, w = x.shape[:2]
    row = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    sigma = 0.05 * max(h, w)
    f = max(1, int(sigma // 4))  # a blur this wide is computed at 1/f of the resolution (same result, faster)
    lum = _luminance(x)
    if f > 1:
        small = cv2.resize(lum, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        lum = cv2.resize(_blur_gauss(small, sigma / f), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        lum = _blur_gauss(lum, sigma)
    span = float(lum.max() - lum.min())
    lum = (lum - lum.min()) / span if span > 1e-6 else np.zeros_like(lum)
    d = row_weight * row + (1.0 - row_weight) * lum
    return HAZE_NEAR + (1.0 - HAZE_NEAR) * d


def haze(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta d), beta = 2.5 s."""
    row_weight = rng.uniform(0.4, 0.8)
    airlight = rng.uniform(0.8, 1.0) + rng.uniform(-0.03, 0.03, size=x.shape[2]) * (x.shape[2] == 3)
    t = np.exp(-HAZE_BETA_MAX * s * haze_depth(x, row_weight))[:, :, None]
    return x * t + np.clip(airlight, 0, 1).astype(np.float32) * (1.0 - t)


def rain(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Rain streaks: sparse drops smeared along one direction, screen-blended: I = 1 - (1 - J)(1 - a R)."""
    h, w = x.shape[:2]
    u = rng.random((h, w), dtype=np.float32)
    brightness = rng.uniform(0.5, 1.0, size=(h, w)).astype(np.float32)
    angle = 90.0 + rng.uniform(-20.0, 20.0)
    drops = np.where(u < 0.015 * s, brightness, 0.0).astype(np.float32)
    length = max(3.0, 0.06 * max(h, w) * (0.5 + 0.5 * s))
    streaks = _filter(drops, _line_kernel(length, angle)) * length  # each streak keeps its drop's brightness
    streaks = np.clip(_blur_gauss(streaks, 0.6), 0.0, 1.0)[:, :, None]
    alpha = 0.4 + 0.5 * s
    return 1.0 - (1.0 - x) * (1.0 - alpha * streaks)


def low_light(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Dark, noisy, colour-cast: g * J^gamma * cast + Poisson-Gaussian noise (gamma 1+2s, g 1-0.6s)."""
    direction = rng.normal(size=3)
    direction -= direction.mean()
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    n = rng.standard_normal(x.shape, dtype=np.float32)
    y = (1.0 - 0.6 * s) * np.power(x, 1.0 + 2.0 * s)
    if x.shape[2] == 3:
        y = y * (1.0 + 0.25 * s * direction).astype(np.float32)
    return _signal_dependent_noise(y, 0.02 * s, 0.03 * s, n)


def over_exposure(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Exposure +2.5 s stops with flare 0.1 s, clipped, highlights washed out: (J 2^(2.5 s) + 0.1 s), desaturated by s/2."""
    y = np.clip(x * 2.0 ** (2.5 * s) + 0.1 * s, 0.0, 1.0)
    if x.shape[2] == 3:
        lum = _luminance(y)[:, :, None]
        y = lum + (y - lum) * (1.0 - 0.5 * s)
    return y


def blur(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma = s max(2, 1.2% of the image size)) or motion blur (a line of 1 + s max(6, 4% of
    the size) pixels at a random angle), chosen by the seed."""
    motion = rng.random() < 0.5
    angle = rng.uniform(0.0, 180.0)
    size = max(x.shape[:2])
    if motion:
        return _filter(x, _line_kernel(1.0 + s * max(6.0, 0.04 * size), angle))
    return _blur_gauss(x, s * max(2.0, 0.012 * size))


def noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Visible sensor noise, per channel: x + sqrt(a x + b^2) n with a = 0.02 s, b = 0.08 s."""
    return _signal_dependent_noise(x, 0.02 * s, 0.08 * s, rng.standard_normal(x.shape, dtype=np.float32))


def ir_noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Thermal sensor noise: x + sqrt(a x + b^2) n with a = 0.01 s, b = 0.1 s."""
    return _signal_dependent_noise(x, 0.01 * s, 0.1 * s, rng.standard_normal(x.shape, dtype=np.float32))


def ir_stripe(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Fixed-pattern column noise of uncooled sensors: per-column gain 1 + 0.05 s g and offset 0.06 s o."""
    w = x.shape[1]
    gain = 1.0 + 0.05 * s * rng.standard_normal(w).astype(np.float32)
    offset = 0.06 * s * rng.standard_normal(w).astype(np.float32)
    return x * gain[None, :, None] + offset[None, :, None]


def ir_low_contrast(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Thermal crossover: contrast around the mean scaled by c = 1 - 0.8 s, I = m + c (x - m)."""
    m = float(x.mean())
    return m + (1.0 - 0.8 * s) * (x - m)


def clean(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """No degradation."""
    return x


for _name, _target, _model in (("clean", "none", clean), ("haze", "vis", haze), ("rain", "vis", rain),
                               ("low_light", "vis", low_light), ("over_exposure", "vis", over_exposure),
                               ("blur", "vis", blur), ("noise", "vis", noise), ("ir_noise", "ir", ir_noise),
                               ("ir_stripe", "ir", ir_stripe), ("ir_low_contrast", "ir", ir_low_contrast)):
    register_degradation(_name, _target, _model, (_model.__doc__ or "").strip().splitlines()[0])


# ---------------------------------------------------------------------------------------------------
# public API

def _to_hwc(img: Image) -> Tuple[np.ndarray, Callable[[np.ndarray], Image]]:
    """(H, W, C) float32 numpy view of `img` and a function turning such an array back into img's form."""
    if isinstance(img, torch.Tensor):
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[0] not in (1, 3)):
            raise DegradationError(f"expected a (C, H, W) or (H, W) tensor with C = 1 or 3, got {tuple(img.shape)}")
        if not img.is_floating_point():
            raise DegradationError(f"expected a float tensor in [0, 1], got {img.dtype}")
        dtype, device, ndim = img.dtype, img.device, img.ndim
        arr = img.detach().float().cpu().numpy()
        arr = arr[:, :, None] if ndim == 2 else arr.transpose(1, 2, 0)

        def back(out: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(out[:, :, 0] if ndim == 2 else out.transpose(2, 0, 1)))
            return t.to(device=device, dtype=dtype)
        return np.ascontiguousarray(arr, dtype=np.float32), back
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3)):
            raise DegradationError(f"expected an (H, W) or (H, W, C) array with C = 1 or 3, got {img.shape}")
        if not np.issubdtype(img.dtype, np.floating):
            raise DegradationError(f"expected a float array in [0, 1], got {img.dtype} (divide 8-bit images by 255)")
        dtype, ndim = img.dtype, img.ndim
        arr = img[:, :, None] if ndim == 2 else img

        def back(out: np.ndarray) -> np.ndarray:
            return (out[:, :, 0] if ndim == 2 else out).astype(dtype, copy=False)
        return np.ascontiguousarray(arr, dtype=np.float32), back
    raise DegradationError(f"expected a numpy array or torch tensor, got {type(img).__name__}")


def _copy(img: Image) -> Image:
    """An unchanged copy (same values, dtype and device)."""
    return img.clone() if isinstance(img, torch.Tensor) else img.copy()


def _check_strength(strength: float) -> float:
    s = float(strength)
    if not 0.0 <= s <= 1.0 or math.isnan(s):
        raise DegradationError(f"strength {strength} outside [0, 1]")
    return s


def _apply(model: Model, img: Image, s: float, rng: np.random.Generator) -> Image:
    arr, back = _to_hwc(img)
    if arr.size and (float(arr.min()) < -1e-6 or float(arr.max()) > 1.0 + 1e-6 or not np.isfinite(arr).all()):
        raise DegradationError(f"image values must lie in [0, 1] (got {float(arr.min()):.3g}..{float(arr.max()):.3g})")
    if s == 0.0 or model is clean:
        return _copy(img)
    out = model(np.clip(arr, 0.0, 1.0), s, rng)
    return back(np.clip(out, 0.0, 1.0).astype(np.float32, copy=False))


def degrade(img: Image, kind: str, strength: float, seed: Seed = 0) -> Image:
    """`img` degraded by `kind` at `strength` in [0, 1], whatever image the kind targets (seeded)."""
    deg = get_degradation(kind)
    return _apply(deg.model, img, _check_strength(strength), np.random.default_rng(seed))


def degrade_pair(vis: Image, ir: Image, kind: str, strength: float, seed: Seed = 0) -> Tuple[Image, Image]:
    """(vis_d, ir_d): the image that `kind` targets degraded (seeded), the other one returned as a copy.

    vis: visible RGB or grey, ir: infrared grey; both float in [0, 1] as described in the module docstring.
    """
    deg = get_degradation(kind)
    s = _check_strength(strength)
    rng = np.random.default_rng(seed)
    vis_d = _apply(deg.model if deg.target == "vis" else clean, vis, s, rng)
    ir_d = _apply(deg.model if deg.target == "ir" else clean, ir, s, rng)
    return vis_d, ir_d


__all__ = ["DEFAULT_CLASSES", "DEGRADATIONS", "Degradation", "DegradationError", "degrade", "degrade_pair",
           "get_degradation", "haze_depth", "level_to_strength", "pair_seed", "parse_kinds", "register_degradation"]
