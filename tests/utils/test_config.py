"""Strict configs: unknown keys and wrong types fail with messages naming the key; files merge in order."""
from __future__ import annotations

import pytest

from utils.config import ConfigError, check_config, compose_config, dotted_keys

REF = {
    "seed": 2,
    "device": "auto",
    "save": None,
    "train": {"epochs": 100, "lr": 5.0e-4, "sync_bn": False, "crop": [192, 256]},
    "extra": {},
}


def error_of(cfg, ref=REF, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(cfg, ref, **kw)
    return str(info.value)


def test_dotted_keys_lists_sections_and_leaves():
    assert dotted_keys(REF) == ["seed", "device", "save", "train", "train.epochs", "train.lr", "train.sync_bn",
                                "train.crop", "extra"]


def test_unknown_key_suggests_the_close_one():
    assert error_of({"train": {"epoch": 1}}) == "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"


def test_misspelt_section_names_the_whole_key():
    assert error_of({"trian": {"epochs": 1}}) == "unknown config key 'trian.epochs' (did you mean 'train.epochs'?)"


def test_key_in_the_wrong_section_suggests_the_right_one():
    assert error_of({"data": {"epochs": 1}}) == "unknown config key 'data.epochs' (did you mean 'train.epochs'?)"
    assert error_of({"sync_bm": 1}) == "unknown config key 'sync_bm' (did you mean 'train.sync_bn'?)"


def test_unknown_key_without_a_close_one_has_no_suggestion():
    assert error_of({"zzzqqq": 1}) == "unknown config key 'zzzqqq'"
    assert error_of({"train": {"class_names": 1}}) == "unknown config key 'train.class_names'"  # not 'train.crop'


def test_where_names_the_kind_of_config():
    assert error_of({"sed": 1}, where="test config") == "unknown test config key 'sed' (did you mean 'seed'?)"


@pytest.mark.parametrize("cfg, message", [
    ({"train": {"epochs": "one"}}, "config key 'train.epochs' expects an integer, got 'one'"),
    ({"train": {"epochs": 2.5}}, "config key 'train.epochs' expects an integer, got 2.5"),
    ({"train": {"epochs": True}}, "config key 'train.epochs' expects an integer, got True"),
    ({"train": {"lr": "fast"}}, "config key 'train.lr' expects a number, got 'fast'"),
    ({"train": {"sync_bn": 1}}, "config key 'train.sync_bn' expects true or false, got 1"),
    ({"device": 0}, "config key 'device' expects a string, got 0"),
    ({"train": {"crop": 192}}, "config key 'train.crop' expects a list, got 192"),
    ({"train": 3}, "config key 'train' expects a section (a mapping of keys), got 3"),
    ({"train": {"epochs": None}}, "config key 'train.epochs' expects an integer, got None"),
])
def test_wrong_type_names_key_and_type(cfg, message):
    assert error_of(cfg) == message


def test_values_are_converted_and_input_untouched():
    cfg = {"train": {"lr": 1, "epochs": 3}, "save": [1, "x"], "extra": {"anything": {"goes": 1}}}
    out = check_config(cfg, REF)
    assert out == {"train": {"lr": 1.0, "epochs": 3}, "save": [1, "x"], "extra": {"anything": {"goes": 1}}}
    assert isinstance(out["train"]["lr"], float)
    assert isinstance(cfg["train"]["lr"], int)          # the caller's dict is not modified
    assert check_config({"train": {"lr": "1e-4"}}, REF)["train"]["lr"] == pytest.approx(1e-4)  # YAML's 1e-4


def test_compose_merges_files_in_order_then_set(tmp_path):
    base = tmp_path / "defaults.yaml"
    base.write_text("seed: 2\ndevice: auto\nsave: null\ntrain:\n  epochs: 100\n  lr: 5.0e-4\n  sync_bn: false\n")
    a = tmp_path / "a.yaml"
    a.write_text("train:\n  epochs: 5\n  lr: 1\n")
    b = tmp_path / "b.yaml"
    b.write_text("base: a.yaml\nseed: 7\ntrain:\n  epochs: 6\n")
    cfg = compose_config(base, [a, b], ["train.sync_bn=true", "device=cpu"])
    assert cfg == {"seed": 7, "device": "cpu", "save": None,
                   "train": {"epochs": 6, "lr": 1.0, "sync_bn": True}}


def test_compose_names_the_file_with_the_unknown_key(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("train:\n  epoch: 1\n")
    with pytest.raises(ConfigError) as info:
        compose_config(REF, [f])
    assert str(info.value) == f"{f}: unknown config key 'train.epoch' (did you mean 'train.epochs'?)"


@pytest.mark.parametrize("item, message", [
    ("train.epoch=1", "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("trian.epochs=1", "unknown config key 'trian.epochs' (did you mean 'train.epochs'?)"),
    ("train.epochs=one", "config key 'train.epochs' expects an integer, got 'one'"),
])
def test_set_overrides_are_checked(item, message):
    with pytest.raises(ConfigError) as info:
        compose_config(REF, [], [item])
    assert str(info.value) == message
