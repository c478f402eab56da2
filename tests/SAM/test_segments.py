"""SegmentProvider: the segment images the training dataset asks for, and its refusals."""
from __future__ import annotations

import numpy as np
import pytest

from SAM.cache_builder import cache_identity
from SAM.segments import SegmentProvider
from SAM.selection import segment_images
from SAM.settings import resolve_settings
from SAM.store import CacheMismatchError, CacheMissingError, write_entry, write_manifest


@pytest.fixture
def cache(tmp_path):
    """A cache with the release settings and random weights (seed 0) holding one 6x5 image."""
    s = resolve_settings(None)
    man = cache_identity(s, "none")
    write_manifest(tmp_path, man)
    rng = np.random.default_rng(0)
    ir = [rng.random((6, 5)) < 0.5 for _ in range(3)]
    vis = [rng.random((6, 5)) < 0.5 for _ in range(3)]
    write_entry(tmp_path, "p0", ir, vis, 6, 5, man.digest)
    return tmp_path, ir, vis


def test_provider_matches_selection(cache):
    cache_dir, ir_m, vis_m = cache
    prov = SegmentProvider(cache_dir, use_mask_num=4, expected_settings={}, expected_checkpoint="none")
    rng = np.random.default_rng(1)
    ir, y = rng.random((6, 5), dtype=np.float32), rng.random((6, 5), dtype=np.float32)
    out = prov("p0", ir, y)
    ref = segment_images(ir, y, ir_m, vis_m, 4)
    for a, b in zip(out, ref):
        assert a.shape == (4, 6, 5) and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    assert np.all(out[2][3] == 1)  # 3 masks -> slot 4 is the whole image


def test_missing_image_is_an_error_unless_filling_allowed(cache):
    cache_dir, _, _ = cache
    img = np.full((6, 5), 0.5, np.float32)
    with pytest.raises(CacheMissingError, match="no cache entry for image 'q'"):
        SegmentProvider(cache_dir)("q", img, img)
    vm, im, vm_mask, im_mask = SegmentProvider(cache_dir, allow_fill_missing=True)("q", img, img)
    assert np.all(vm == 0.5) and np.all(im_mask == 1)


def test_other_settings_or_weights_are_refused(cache):
    cache_dir, _, _ = cache
    with pytest.raises(CacheMismatchError, match="generator.points_per_side: cache 128 vs config 32"):
        SegmentProvider(cache_dir, expected_settings={"generator": {"points_per_side": 32}})
    with pytest.raises(CacheMismatchError, match="bgr_input"):
        SegmentProvider(cache_dir, expected_settings={"bgr_input": True})
    with pytest.raises(CacheMismatchError, match="other SAM weights"):
        SegmentProvider(cache_dir, expected_settings={"seed": 3}, expected_checkpoint="none")
    # allowed filling never uses the stale masks: every slot is the whole image
    prov = SegmentProvider(cache_dir, expected_settings={"bgr_input": True}, allow_fill_missing=True)
    img = np.full((6, 5), 0.5, np.float32)
    assert np.all(prov("p0", img, img)[2] == 1)


def test_no_cache_and_wrong_image_size(tmp_path, cache):
    with pytest.raises(CacheMissingError, match="no segment cache here"):
        SegmentProvider(tmp_path / "empty")
    cache_dir, _, _ = cache
    img = np.zeros((8, 8), np.float32)
    with pytest.raises(CacheMismatchError, match="masks are 5x6 but the image is 8x8"):
        SegmentProvider(cache_dir)("p0", img, img)


def test_training_dataset_uses_the_provider(tmp_path, make_pairs):
    """FusionTrainSet(segments=SegmentProvider) crops the segment images like the images."""
    from data.dataset import FusionTrainSet
    names = make_pairs(tmp_path, 2, size=(40, 48))
    s = resolve_settings(None)
    man = cache_identity(s, "none")
    cache = tmp_path / "Mask_cache"
    write_manifest(cache, man)
    m = np.zeros((40, 48), bool)
    m[5:20, 10:30] = True
    for name in names:
        write_entry(cache, name, [m], [~m], 40, 48, man.digest)
    ds = FusionTrainSet(tmp_path, crop_size=(32, 40), segments=SegmentProvider(cache, 4, expected_settings=s),
                        require_labels=False, hflip=0.0)
    item = ds[0]
    assert item["vm"].shape == item["im"].shape == item["vm_mask"].shape == (4, 32, 40)
    assert float(item["im_mask"][0].sum()) < 32 * 40 and bool((item["vm_mask"][1:] == 1).all())
    assert bool((item["im"][0] == item["ir"][0] * item["im_mask"][0]).all())
