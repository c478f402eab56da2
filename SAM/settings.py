"""Settings of the SAM segment cache: the release's defaults, presets, and the record kept in the cache.

The `sam` config section (configs/sam.yaml) holds:
    checkpoint       path to the SAM ViT-B checkpoint, or "none"/null for random weights (tests, demos)
    model_type       vit_b (the release), vit_l or vit_h
    image_size       SAM's input size (1024; smaller only with random weights, for fast tests)
    bgr_input        feed OpenCV's BGR array to SAM like the release (quirk); default RGB
    seed             seed of the random initialisation when there is no checkpoint
    cache_mask_num   masks kept per modality and image (release: 20)
    use_mask_num     segment images given to the networks (release: 4)
    allow_fill_missing  an image missing from the cache gets whole-image slots instead of an error
    device           auto | cpu | cuda
    generator        keyword arguments of segment_anything.SamAutomaticMaskGenerator

Only what changes the masks is recorded in the cache (`recorded_settings`); points_per_batch and the
device are speed knobs and are not.

A training config's `sam:` section also holds run keys (RUN_KEYS): cache_dir, build_cache_if_missing,
preset, and feature_resize, the portrait resize of the triplet loss's SAM features (antialias, the
default, or release: plain bilinear with align_corners=True; SAM/features.py).

`require_sam_checkpoint` is the check a real training run makes: an unset checkpoint fails fast instead
of silently training with random SAM features; only the explicit string "none" (demos, tests) allows them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

from utils.config import ConfigError, apply_overrides, load_config, merge

# The defaults (the authors' SamAutomaticMaskGenerator settings, docs/sam_prior.md) live in one file,
# configs/sam.yaml; training configs include it with `base: sam.yaml`.
DEFAULTS_FILE = Path(__file__).resolve().parents[1] / "configs" / "sam.yaml"
DEFAULT_SETTINGS: Dict[str, Any] = load_config(DEFAULTS_FILE)["sam"]
RELEASE_GENERATOR: Dict[str, Any] = DEFAULT_SETTINGS["generator"]

# Keys of a training config's `sam:` section that are not SAM settings (where the cache lives, when to build it,
# which preset of `presets:` to apply).
RUN_KEYS = ("cache_dir", "build_cache_if_missing", "preset", "feature_resize")
FEATURE_RESIZE_MODES = ("antialias", "release")  # SAM/features.py RESIZE_MODES
SAM_CHECKPOINT_FILE = "sam_vit_b_01ec64.pth"
SAM_CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"

# Keys of `generator` that do not change the masks (not recorded, not compared).
SPEED_ONLY_GENERATOR_KEYS = ("points_per_batch",)
MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


def resolve_settings(sam_cfg: Optional[Mapping[str, Any]] = None, preset: Optional[str] = None,
                     presets: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Complete `sam` settings: DEFAULT_SETTINGS <- sam_cfg <- presets[preset], checked.

    A preset is a partial `sam` mapping (e.g. configs/sam.yaml `presets.fast`); it wins over sam_cfg so
    `--preset fast` means the same thing whatever the base config holds. Command-line `--set` overrides
    are applied by the caller after this (see scripts/build_mask_cache.py).
    """
    out = merge(DEFAULT_SETTINGS, dict(sam_cfg or {}))
    if preset:
        if not presets or preset not in presets:
            known = ", ".join(sorted(presets or {})) or "none"
            raise ConfigError(f"preset '{preset}' is not defined (known presets: {known}; see configs/sam.yaml)")
        out = merge(out, presets[preset])
    return check_settings(out)


@dataclass(frozen=True)
class SamRunSettings:
    """A training config's `sam:` section resolved once, for the cache builder, the segment provider, the
    teacher (use_mask_num) and the SAM feature extractor (settings["checkpoint"], checked by
    SAM.model.resolve_sam_checkpoint)."""
    settings: Dict[str, Any]          # complete, checked SAM settings (what the cache records)
    cache_dir: Optional[str]          # None: <root_dir>/Mask_cache
    build_cache_if_missing: bool
    feature_resize: str = "antialias"  # portrait resize of the SAM features: antialias | release

    @property
    def use_mask_num(self) -> int:
        return int(self.settings["use_mask_num"])

    @property
    def allow_fill_missing(self) -> bool:
        return bool(self.settings["allow_fill_missing"])


def sam_settings(section: Mapping[str, Any], presets: Optional[Mapping[str, Any]] = None) -> SamRunSettings:
    """The `sam:` section of a training config (+ its `presets:`) -> SamRunSettings; the preset is applied."""
    section = dict(section)
    preset = section.get("preset")
    core = {k: v for k, v in section.items() if k not in RUN_KEYS}
    settings = resolve_settings(core, None if preset in (None, "release") else preset, presets)
    resize = section.get("feature_resize") or "antialias"
    if resize not in FEATURE_RESIZE_MODES:
        raise ConfigError(f"sam.feature_resize={resize!r}: expected one of {', '.join(FEATURE_RESIZE_MODES)}")
    return SamRunSettings(settings, section.get("cache_dir"), bool(section.get("build_cache_if_missing")), resize)


def load_settings(config_path: str | os.PathLike, preset: Optional[str] = None,
                  sets: Iterable[str] = ()) -> Dict[str, Any]:
    """Settings from a YAML file's `sam:` section, a preset of its `presets:`, then `key=value` overrides
    (keys relative to `sam`; a leading 'sam.' is accepted), e.g. load_settings("configs/sam.yaml", "tiny")."""
    cfg = load_config(config_path)
    s = resolve_settings(cfg.get("sam") or {}, preset, cfg.get("presets") or {})
    sets = [x[len("sam."):] if x.startswith("sam.") else x for x in sets]
    return check_settings(apply_overrides(s, sets))


def check_settings(s: Dict[str, Any]) -> Dict[str, Any]:
    """Validate types and ranges; raises ConfigError with the offending key. Returns `s`."""
    unknown = set(s) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ConfigError(f"sam: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(DEFAULT_SETTINGS)})")
    gen = s.get("generator")
    if not isinstance(gen, dict):
        raise ConfigError("sam.generator must be a mapping of SamAutomaticMaskGenerator arguments")
    unknown = set(gen) - set(RELEASE_GENERATOR)
    if unknown:
        raise ConfigError(f"sam.generator: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(RELEASE_GENERATOR)})")
    if s["model_type"] not in MODEL_TYPES:
        raise ConfigError(f"sam.model_type={s['model_type']!r}: expected one of {', '.join(MODEL_TYPES)}")
    for key in ("image_size", "cache_mask_num", "use_mask_num", "seed"):
        if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 0:
            raise ConfigError(f"sam.{key}={s[key]!r}: expected a non-negative integer")
    if s["image_size"] < 16 or s["image_size"] % 16:
        raise ConfigError(f"sam.image_size={s['image_size']}: expected a multiple of 16 (1024 for real checkpoints)")
    if s["cache_mask_num"] < 1 or s["use_mask_num"] < 1:
        raise ConfigError("sam.cache_mask_num and sam.use_mask_num must be at least 1")
    for key in ("bgr_input", "allow_fill_missing"):
        if not isinstance(s[key], bool):
            raise ConfigError(f"sam.{key}={s[key]!r}: expected true or false")
    for key in ("points_per_side", "points_per_batch", "crop_n_layers", "crop_n_points_downscale_factor",
                "min_mask_region_area"):
        v = gen[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or (key in ("points_per_side", "points_per_batch") and v < 1):
            raise ConfigError(f"sam.generator.{key}={v!r}: expected a positive integer")
    for key in ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "box_nms_thresh",
                "crop_nms_thresh", "crop_overlap_ratio"):
        if not isinstance(gen[key], (int, float)) or isinstance(gen[key], bool):
            raise ConfigError(f"sam.generator.{key}={gen[key]!r}: expected a number")
        gen[key] = float(gen[key])
    return s


class MissingSAMCheckpointError(ConfigError):
    """sam.checkpoint is unset in a run that needs real SAM weights."""


def require_sam_checkpoint(value: Any, where: str = "sam.checkpoint") -> Optional[str]:
    """The SAM checkpoint a real run uses: its path, or None when the config says `none` explicitly.

    Args:
        value: the config value of `where`: a path, the string "none" (any case: random SAM weights,
            for demos and tests), or unset (None / "" / "null").
        where: the config key, named in the error.
    Returns:
        the path as a string, or None for the explicit "none".
    Raises:
        MissingSAMCheckpointError (one line: what to download and where to put it) when unset, so that
        an unconfigured run does not silently train its triplet loss on random SAM features.
    """
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null")):
        how = (f"give {where} checkpoints/{SAM_CHECKPOINT_FILE} (or {where} none" if where.startswith("--") else
               f"set {where}: checkpoints/{SAM_CHECKPOINT_FILE} (or --sam_checkpoint PATH; {where}: none")
        raise MissingSAMCheckpointError(f"{where} is not set: download {SAM_CHECKPOINT_FILE} from {SAM_CHECKPOINT_URL} "
                                        f"into checkpoints/ and {how} for a demo with random SAM weights)")
    return str(value)


def is_random_checkpoint(checkpoint: Any) -> bool:
    """True for null/None/'none'/'' (random SAM weights)."""
    return checkpoint is None or (isinstance(checkpoint, str) and checkpoint.strip().lower() in ("", "none", "null"))


def recorded_settings(s: Mapping[str, Any]) -> Dict[str, Any]:
    """The part of the settings that determines the masks; stored in the cache manifest and compared."""
    gen = {k: v for k, v in s["generator"].items() if k not in SPEED_ONLY_GENERATOR_KEYS}
    return {
        "model_type": s["model_type"],
        "image_size": int(s["image_size"]),
        "bgr_input": bool(s["bgr_input"]),
        "cache_mask_num": int(s["cache_mask_num"]),
        "generator": {k: gen[k] for k in sorted(gen)},
    }


def settings_digest(recorded: Mapping[str, Any], checkpoint_id: str) -> str:
    """Short hash of (recorded settings, checkpoint id): written into every entry to catch stale ones."""
    blob = json.dumps({"settings": recorded, "checkpoint": checkpoint_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def diff_settings(have: Mapping[str, Any], want: Mapping[str, Any], prefix: str = "") -> Dict[str, tuple]:
    """{dotted key: (have, want)} for every leaf that differs (floats compared to 1e-9)."""
    out: Dict[str, tuple] = {}
    for key in sorted(set(have) | set(want)):
        a, b = have.get(key), want.get(key)
        name = prefix + key
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(diff_settings(a, b, name + "."))
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
                and not isinstance(b, bool):
            if abs(float(a) - float(b)) > 1e-9:
                out[name] = (a, b)
        elif a != b:
            out[name] = (a, b)
    return out
