"""Selection and fill rules of SAM/selection.py (SPEC-SAGE.md section 5)."""
from __future__ import annotations

import numpy as np
import pytest

from SAM.selection import segment_images, select_for_cache, sort_by_area, usable_pairs


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_sort_by_area_largest_first_and_stable():
    a, b, c, d = box(8, 8, 0, 2, 0, 2), box(8, 8, 0, 4, 0, 4), box(8, 8, 4, 6, 4, 6), box(8, 8, 0, 8, 0, 1)
    out = sort_by_area([a, b, c, d])  # areas 4, 16, 4, 8
    assert [int(m.sum()) for m in out] == [16, 8, 4, 4]
    assert out[2] is a and out[3] is c  # ties keep SAM's order


def test_select_for_cache_cuts_both_lists_to_the_shorter():
    ir = [box(8, 8, 0, k, 0, 8) for k in range(1, 8)]       # 7 masks, areas 8..56
    vis = [box(8, 8, 0, 8, 0, k) for k in (2, 5, 3)]        # 3 masks
    ir_sel, vis_sel = select_for_cache(ir, vis, cache_mask_num=20)
    assert len(ir_sel) == len(vis_sel) == 3
    assert [int(m.sum()) for m in ir_sel] == [56, 48, 40]
    assert [int(m.sum()) for m in vis_sel] == [40, 24, 16]
    ir_sel, vis_sel = select_for_cache(ir, vis, cache_mask_num=2)
    assert len(ir_sel) == len(vis_sel) == 2
    assert select_for_cache([], vis, 20) == ([], [])


def test_segment_images_values_skip_empty_and_fill():
    h, w = 6, 5
    rng = np.random.default_rng(0)
    ir, y = rng.random((h, w), dtype=np.float32), rng.random((h, w), dtype=np.float32)
    empty = np.zeros((h, w), bool)
    m1, m2, m3 = box(h, w, 0, 3, 0, 5), box(h, w, 3, 6, 0, 2), box(h, w, 0, 1, 0, 1)
    ir_masks = [m1, m2, m3]
    vis_masks = [m2, empty, m1]  # pair 1 has an empty VIS mask -> skipped
    vm, im, vm_mask, im_mask = segment_images(ir, y, ir_masks, vis_masks, use_mask_num=4)
    for t in (vm, im, vm_mask, im_mask):
        assert t.shape == (4, h, w) and t.dtype == np.float32
    np.testing.assert_array_equal(vm_mask[0], m2)
    np.testing.assert_array_equal(im_mask[0], m1)
    np.testing.assert_array_equal(vm_mask[1], m1)   # the third pair moved up
    np.testing.assert_array_equal(im_mask[1], m3)
    np.testing.assert_allclose(vm[0], y * m2)
    np.testing.assert_allclose(im[1], ir * m3)
    for k in (2, 3):                                # missing slots: whole image, all-ones mask
        np.testing.assert_array_equal(vm_mask[k], 1.0)
        np.testing.assert_array_equal(im[k], ir)
        np.testing.assert_array_equal(vm[k], y)


def test_zero_masks_give_whole_images():
    ir = np.full((3, 4), 0.25, np.float32)
    y = np.full((3, 4), 0.75, np.float32)
    vm, im, vm_mask, im_mask = segment_images(ir, y, [], [], use_mask_num=2)
    assert vm.shape == (2, 3, 4)
    assert np.all(vm == 0.75) and np.all(im == 0.25) and np.all(vm_mask == 1) and np.all(im_mask == 1)


def test_usable_pairs_limit_and_shape_error():
    m = box(4, 4, 0, 2, 0, 2)
    assert len(usable_pairs([m] * 6, [m] * 6, 4)) == 4
    with pytest.raises(ValueError, match="cached mask is 3x3"):
        segment_images(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32), [np.ones((3, 3), bool)],
                       [np.ones((3, 3), bool)], 1)
