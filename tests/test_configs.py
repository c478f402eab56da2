"""Every shipped training config passes the strict check against its method's defaults file."""
from __future__ import annotations

from pathlib import Path

import pytest

from training import METHODS
from utils.config import ConfigError, compose_config, load_config

ROOT = Path(__file__).resolve().parents[1]
NOT_TRAINING = {ROOT / "configs" / "test.yaml"}  # test.py's defaults: its `method` picks the fusion method
TRAINING_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p not in NOT_TRAINING
                          and ("method" in load_config(p) or "semantic" in load_config(p)))


def test_there_are_training_configs():
    names = {p.relative_to(ROOT).as_posix() for p in TRAINING_CONFIGS}
    assert {"configs/fmb.yaml", "configs/demo.yaml", "configs/fmb_release.yaml",
            "configs/semantic/xdecoder.yaml", "configs/sgafusion/defaults.yaml",
            "configs/sgafusion/stage2_joint.yaml", "configs/sgafusion/demo_stage3.yaml"} <= names


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_config_is_strictly_valid(path):
    method = load_config(path).get("method", "sage")
    defaults = load_config(ROOT / METHODS[method].defaults)
    cfg = compose_config(defaults, [path], reference=defaults)
    assert cfg["method"] == method


def test_a_misspelt_key_in_a_file_is_named_with_the_file(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    defaults = load_config(ROOT / "configs" / "fmb.yaml")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown config key 'train.epoch' \(did you mean 'train.epochs'\?\)"):
        compose_config(defaults, [bad], reference=defaults)
