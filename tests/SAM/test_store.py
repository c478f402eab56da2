"""The per-image cache format of SAM/store.py: round trip, atomic writes, verification, statistics."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from SAM import store
from SAM.store import (CacheCorruptError, CacheMismatchError, CacheMissingError, Manifest, cache_stats,
                       read_entry, verify_cache, write_entry, write_manifest)


def random_masks(rng, n, h, w):
    return [rng.random((h, w)) < 0.3 for _ in range(n)]


def make_cache(tmp_path, names=("a", "b"), h=7, w=13, n=3):
    rng = np.random.default_rng(1)
    write_manifest(tmp_path, Manifest(settings={"cache_mask_num": 20}, checkpoint="x", digest="d1"))
    written = {}
    for name in names:
        ir, vis = random_masks(rng, n, h, w), random_masks(rng, n, h, w)
        write_entry(tmp_path, name, ir, vis, h, w, "d1", {"found_ir": n, "found_vis": n})
        written[name] = (ir, vis)
    return written


def test_round_trip_odd_sizes(tmp_path):
    written = make_cache(tmp_path, h=7, w=13)  # 91 pixels: packbits pads the last byte
    for name, (ir, vis) in written.items():
        e = read_entry(tmp_path, name, digest="d1")
        assert len(e.ir_masks) == len(e.vis_masks) == 3
        for a, b in zip(e.ir_masks + e.vis_masks, ir + vis):
            assert a.dtype == bool and a.shape == (7, 13)
            np.testing.assert_array_equal(a, b)
        assert e.meta["found_ir"] == 3 and e.meta["name"] == name
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_zero_mask_entry(tmp_path):
    write_entry(tmp_path, "none", [], [], 5, 6, "d")
    e = read_entry(tmp_path, "none")
    assert e.ir_masks == [] and e.vis_masks == [] and e.meta["height"] == 5


def test_errors_missing_stale_corrupt(tmp_path):
    make_cache(tmp_path)
    with pytest.raises(CacheMissingError, match="no cache entry for image 'zzz'"):
        read_entry(tmp_path, "zzz")
    with pytest.raises(CacheMismatchError, match="stale"):
        read_entry(tmp_path, "a", digest="other")
    (tmp_path / "b.npz").write_bytes(b"garbage")
    with pytest.raises(CacheCorruptError, match="b.npz: unreadable"):
        read_entry(tmp_path, "b")
    with pytest.raises(store.CacheError, match="not usable"):
        read_entry(tmp_path, "../x")


def test_failed_write_leaves_old_entry_intact(tmp_path, monkeypatch):
    make_cache(tmp_path, names=("a",))
    before = (tmp_path / "a.npz").read_bytes()

    def boom(fh, **arrays):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(store.np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        write_entry(tmp_path, "a", [np.ones((7, 13), bool)], [np.ones((7, 13), bool)], 7, 13, "d1")
    assert (tmp_path / "a.npz").read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_remove_stale_temps_only_for_that_name(tmp_path):
    (tmp_path / ".a.npz.123.tmp").write_bytes(b"x")
    (tmp_path / ".ab.npz.5.tmp").write_bytes(b"x")
    assert store.remove_stale_temps(tmp_path, "a") == 1
    assert (tmp_path / ".ab.npz.5.tmp").exists()


def test_verify_reports_missing_bad_and_stale(tmp_path):
    make_cache(tmp_path, names=("a", "b", "c"))
    assert verify_cache(tmp_path, ["a", "b", "c"]).ok
    (tmp_path / "b.npz").write_bytes(b"garbage")
    write_entry(tmp_path, "c", [], [], 7, 13, "other-digest")
    rep = verify_cache(tmp_path, ["a", "b", "c", "d"])
    assert not rep.ok
    assert rep.missing == ["d"] and sorted(rep.bad) == ["b", "c"] and rep.checked == 3
    with pytest.raises(CacheMissingError, match="no manifest"):
        verify_cache(tmp_path / "nothing")


def test_stats_counts_and_pickle_size(tmp_path):
    written = make_cache(tmp_path, names=("a", "b"), h=30, w=40, n=4)
    st = cache_stats(tmp_path)
    assert st.entries == 2 and st.masks == 16
    assert st.bytes_on_disk == sum(f.stat().st_size for f in tmp_path.iterdir())
    release = {k: {"ir_masks": ir, "vis_masks": vis} for k, (ir, vis) in written.items()}
    exact = len(pickle.dumps(release, protocol=4))
    assert abs(st.pickle_bytes - exact) < 0.01 * exact  # per-image pickling repeats a few global names
    assert st.pickle_bytes > 16 * 30 * 40             # one byte per pixel per mask
    assert st.bytes_on_disk < st.pickle_bytes
