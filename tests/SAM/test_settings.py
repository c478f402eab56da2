"""configs/sam.yaml and SAM/settings.py."""
from __future__ import annotations

import pytest

from SAM.settings import (DEFAULT_SETTINGS, RELEASE_GENERATOR, diff_settings, load_settings, recorded_settings,
                          resolve_settings,
                          settings_digest)
from utils.config import ConfigError, load_config


@pytest.fixture(scope="module")
def cfg(repo_root):
    return load_config(repo_root / "configs" / "sam.yaml")


def test_yaml_defaults_are_the_release_settings(cfg):
    s = resolve_settings(cfg["sam"])
    assert s == resolve_settings(None)
    assert s["generator"] == RELEASE_GENERATOR
    g = s["generator"]
    assert (g["points_per_side"], g["pred_iou_thresh"], g["stability_score_thresh"], g["crop_n_layers"],
            g["crop_n_points_downscale_factor"], g["min_mask_region_area"]) == (128, 0.86, 0.92, 1, 2, 100)
    assert (s["cache_mask_num"], s["use_mask_num"], s["bgr_input"], s["model_type"]) == (20, 4, False, "vit_b")


def test_presets(cfg):
    fast = resolve_settings(cfg["sam"], "fast", cfg["presets"])
    assert fast["generator"]["points_per_side"] == 32 and fast["generator"]["crop_n_layers"] == 0
    assert fast["generator"]["pred_iou_thresh"] == 0.86 and fast["image_size"] == 1024
    assert resolve_settings(cfg["sam"], "release", cfg["presets"]) == resolve_settings(None)
    with pytest.raises(ConfigError, match="preset 'nope' is not defined"):
        resolve_settings(cfg["sam"], "nope", cfg["presets"])


def test_bad_keys_and_values():
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_settings({"generator": {"points_per_sid": 3}})
    with pytest.raises(ConfigError, match="image_size"):
        resolve_settings({"image_size": 100})
    with pytest.raises(ConfigError, match="bgr_input"):
        resolve_settings({"bgr_input": "yes"})


def test_recorded_settings_and_digest():
    a = recorded_settings(resolve_settings(None))
    b = recorded_settings(resolve_settings({"generator": {"points_per_batch": 16}, "device": "cpu"}))
    assert a == b  # speed-only knobs are not recorded
    c = recorded_settings(resolve_settings({"bgr_input": True}))
    assert diff_settings(a, c) == {"bgr_input": (False, True)}
    assert settings_digest(a, "x") == settings_digest(b, "x") != settings_digest(c, "x")
    assert settings_digest(a, "x") != settings_digest(a, "y")
    assert set(DEFAULT_SETTINGS) >= {"checkpoint", "allow_fill_missing"}


def test_load_settings_with_preset_and_overrides(repo_root):
    s = load_settings(repo_root / "configs" / "sam.yaml", "tiny", ["sam.generator.points_per_side=3", "bgr_input=true"])
    assert s["image_size"] == 128 and s["generator"]["points_per_side"] == 3 and s["bgr_input"] is True
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(repo_root / "configs" / "sam.yaml", None, ["generator.nope=1"])


def test_unset_sam_checkpoint_fails_fast_unless_none_is_explicit():
    from SAM.settings import MissingSAMCheckpointError, require_sam_checkpoint
    for unset in (None, "", "null", "  "):
        with pytest.raises(MissingSAMCheckpointError) as info:
            require_sam_checkpoint(unset)
        msg = str(info.value)
        assert "\n" not in msg and "sam.checkpoint is not set" in msg
        assert "sam_vit_b_01ec64.pth" in msg and "https://" in msg and "sam.checkpoint: none" in msg
    assert require_sam_checkpoint("none") is None and require_sam_checkpoint("None") is None
    assert require_sam_checkpoint("checkpoints/sam_vit_b_01ec64.pth") == "checkpoints/sam_vit_b_01ec64.pth"


def test_feature_resize_is_a_run_key():
    """sam.feature_resize travels with the run settings, not with the cache's recorded settings."""
    from SAM.settings import sam_settings
    assert sam_settings({}).feature_resize == "antialias"
    run = sam_settings({"feature_resize": "release", "checkpoint": "none"})
    assert run.feature_resize == "release" and "feature_resize" not in run.settings
    with pytest.raises(ConfigError, match="feature_resize"):
        sam_settings({"feature_resize": "bicubic"})
