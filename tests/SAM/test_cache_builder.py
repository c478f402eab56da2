"""SAM/cache_builder.py in-process, with one random-weight SAM: contents, resume, shards, settings."""
from __future__ import annotations

import numpy as np
import pytest

from SAM.cache_builder import build_cache, parse_shard, shard_items
from SAM.model import build_generator, generate_masks, to_sam_input
from SAM.segments import SegmentProvider
from SAM.selection import select_for_cache
from SAM.store import CacheMismatchError, list_entries, read_entry, read_manifest, verify_cache, write_entry
from data.imageio import read_raw


def entries(cache_dir):
    man = read_manifest(cache_dir)
    return {n: read_entry(cache_dir, n, digest=man.digest) for n in list_entries(cache_dir)}


def assert_same_cache(a, b):
    ea, eb = entries(a), entries(b)
    assert sorted(ea) == sorted(eb) and ea
    assert read_manifest(a) == read_manifest(b)
    for name in ea:
        assert ea[name].meta == eb[name].meta
        assert len(ea[name].ir_masks) == len(eb[name].ir_masks)
        for x, y in zip(ea[name].ir_masks + ea[name].vis_masks, eb[name].ir_masks + eb[name].vis_masks):
            np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, make_pairs):
    """Two tiny pairs; the IR folder is named Inf and the VIS folder Vi (aliases of Ir, Vis)."""
    root = tmp_path_factory.mktemp("sam_data")
    names = make_pairs(root, 2, ir_dir="Inf", vis_dir="Vi")
    return root, names


@pytest.mark.slow
def test_cache_holds_the_selected_generator_masks(tiny_data, random_sam, settings, tmp_path):
    root, names = tiny_data
    summary = build_cache(root, None, settings, progress=False, cache_dir=tmp_path / "c", model=random_sam)
    assert (summary.total, summary.built, summary.skipped) == (2, 2, 0)
    assert sorted(list_entries(tmp_path / "c")) == names
    assert verify_cache(tmp_path / "c", names).ok
    # entry == select_for_cache(generator masks), RGB input by default
    gen = build_generator(random_sam, settings["generator"])
    ir = generate_masks(gen, to_sam_input(read_raw(root / "Inf" / f"{names[1]}.png"), False))
    vis = generate_masks(gen, to_sam_input(read_raw(root / "Vi" / f"{names[1]}.png"), False))
    ir_sel, vis_sel = select_for_cache(ir, vis, settings["cache_mask_num"])
    e = read_entry(tmp_path / "c", names[1])
    assert len(ir_sel) > 0 and len(e.ir_masks) == len(ir_sel) == len(e.vis_masks)
    assert e.meta["found_ir"] == len(ir) and e.meta["height"] == 64 and e.meta["width"] == 80
    for a, b in zip(e.ir_masks + e.vis_masks, ir_sel + vis_sel):
        np.testing.assert_array_equal(a, b)
    areas = [int(m.sum()) for m in e.vis_masks]
    assert areas == sorted(areas, reverse=True)

    # resume: nothing is recomputed; a stale entry (other digest) is
    again = build_cache(root, None, settings, progress=False, cache_dir=tmp_path / "c", model=random_sam)
    assert (again.built, again.skipped) == (0, 2)
    write_entry(tmp_path / "c", names[0], [], [], 64, 80, "stale")
    again = build_cache(root, None, settings, progress=False, cache_dir=tmp_path / "c", model=random_sam)
    assert again.names_built == [names[0]]

    # shards together == one run
    for i in range(2):
        s = build_cache(root, None, settings, shard=(i, 2), progress=False, cache_dir=tmp_path / "s", model=random_sam)
        assert s.total == 1
    assert_same_cache(tmp_path / "c", tmp_path / "s")

    # other settings: refused, or recomputed with rebuild
    other = dict(settings, generator=dict(settings["generator"], points_per_side=3))
    with pytest.raises(CacheMismatchError, match="generator.points_per_side: cache 2 vs now 3"):
        build_cache(root, None, other, progress=False, cache_dir=tmp_path / "c", model=random_sam)
    with pytest.raises(CacheMismatchError, match="weights: cache random-init:seed=0 vs now random-init:seed=1"):
        build_cache(root, None, dict(settings, seed=1), progress=False, cache_dir=tmp_path / "c", model=random_sam)
    with pytest.raises(CacheMismatchError):
        SegmentProvider(tmp_path / "c", expected_settings=other)


def test_zero_masks_and_bgr_switch(tiny_data, random_sam, settings, tmp_path):
    root, names = tiny_data
    strict = dict(settings, generator=dict(settings["generator"], pred_iou_thresh=1.5))  # nothing passes
    s = build_cache(root, "none", strict, shard=(0, 2), progress=False, cache_dir=tmp_path / "z", model=random_sam)
    assert s.built == 1 and s.no_masks == 1
    e = read_entry(tmp_path / "z", names[0])
    assert e.ir_masks == [] and e.meta["found_ir"] == 0
    prov = SegmentProvider(tmp_path / "z", expected_settings=strict, expected_checkpoint="none")
    ir = np.full((64, 80), 0.3, np.float32)
    vm, im, vm_mask, im_mask = prov(names[0], ir, ir)
    assert vm.shape == (4, 64, 80) and np.all(im_mask == 1) and np.all(im == ir)

    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    assert to_sam_input(bgr, bgr_input=False)[0, 0].tolist() == [0, 0, 255]
    assert to_sam_input(bgr, bgr_input=True)[0, 0].tolist() == [255, 0, 0]
    gray = np.arange(4, dtype=np.uint8).reshape(2, 2)
    assert to_sam_input(gray, False).shape == (2, 2, 3)


def test_shard_parsing():
    assert parse_shard("1/4") == (1, 4)
    assert shard_items(list("abcdefg"), (1, 3)) == ["b", "e"]
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_manifest_without_entries_is_replaced(tmp_path, settings):
    from SAM.cache_builder import cache_identity, prepare_manifest
    a = cache_identity(settings, None)
    b = cache_identity(dict(settings, seed=7), None)
    prepare_manifest(tmp_path, a)
    prepare_manifest(tmp_path, b)          # nothing built with `a` yet: replaced
    assert read_manifest(tmp_path) == b
    write_entry(tmp_path, "x", [], [], 2, 2, b.digest)
    with pytest.raises(CacheMismatchError, match="pass --rebuild"):
        prepare_manifest(tmp_path, a)
    prepare_manifest(tmp_path, a, rebuild=True)
    assert read_manifest(tmp_path) == a
