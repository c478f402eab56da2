"""Importing the authors' mask_cache_train_20.pkl with a restricted unpickler."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from SAM.pickle_import import UnsafePickleError, import_release_pickle, restricted_load
from SAM.segments import SegmentProvider
from SAM.store import CacheError, read_entry, read_manifest, verify_cache


def release_pickle(path, protocol=pickle.DEFAULT_PROTOCOL):
    rng = np.random.default_rng(0)
    data = {}
    for i, n in enumerate((3, 0, 5)):
        ir = [rng.random((9, 11)) < 0.2 * (k + 1) for k in range(n)]
        vis = [rng.random((9, 11)) < 0.2 * (k + 1) for k in range(n)]
        data[f"{i:05d}.png"] = {"ir_masks": ir, "vis_masks": vis}
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=protocol)
    return data


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_import_round_trip(tmp_path, protocol):
    pkl = tmp_path / "mask_cache_train_20.pkl"
    data = release_pickle(pkl, protocol)
    n = import_release_pickle(pkl, tmp_path / "Mask_cache", progress=False)
    assert n == 3
    man = read_manifest(tmp_path / "Mask_cache")
    assert man.settings["bgr_input"] is True and man.checkpoint.startswith("imported:sha256:")
    assert verify_cache(tmp_path / "Mask_cache", ["00000", "00001", "00002"]).ok
    for key, val in data.items():
        e = read_entry(tmp_path / "Mask_cache", key[:-4], digest=man.digest)
        # release lists are taken as they are, re-sorted by area (stable)
        want_ir = sorted(val["ir_masks"], key=lambda m: -int(m.sum()))
        assert len(e.ir_masks) == len(val["ir_masks"])
        for a, b in zip(e.ir_masks, want_ir):
            np.testing.assert_array_equal(a, b)
    img = np.ones((9, 11), np.float32)
    prov = SegmentProvider(tmp_path / "Mask_cache", expected_settings={"bgr_input": True})
    vm, im, vm_mask, im_mask = prov("00001", img, img)  # 0 masks -> whole image everywhere
    assert np.all(vm_mask == 1)


class Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_refused(tmp_path):
    pkl = tmp_path / "evil.pkl"
    target = tmp_path / "pwned"
    with open(pkl, "wb") as fh:
        pickle.dump({"a.png": {"ir_masks": [Evil(target)], "vis_masks": []}}, fh)
    with pytest.raises(UnsafePickleError, match=r"forbidden global '(posix|os|nt)\.system'"):
        restricted_load(pkl)
    with pytest.raises(UnsafePickleError):
        import_release_pickle(pkl, tmp_path / "cache", progress=False)
    assert not target.exists() and not (tmp_path / "cache" / "a.npz").exists()
    # numpy object arrays need more than the allowed globals, e.g. builtins.eval smuggled inside
    with open(pkl, "wb") as fh:
        pickle.dump({"a": {"ir_masks": [np.array([eval], dtype=object)], "vis_masks": []}}, fh)
    with pytest.raises(UnsafePickleError, match="forbidden global 'builtins.eval'"):
        restricted_load(pkl)
    # protocol 2 stores bytes through _codecs.encode: not part of the release's format, refused
    with open(pkl, "wb") as fh:
        pickle.dump([b"x"], fh, protocol=2)
    with pytest.raises(UnsafePickleError, match="forbidden global '_codecs.encode'"):
        restricted_load(pkl)


def test_wrong_structure_is_a_clear_error(tmp_path):
    pkl = tmp_path / "x.pkl"
    with open(pkl, "wb") as fh:
        pickle.dump({"a": {"ir_masks": [np.zeros((3, 3), np.uint8)], "vis_masks": []}}, fh)
    with pytest.raises(CacheError, match=r"\['a'\]\['ir_masks'\]\[0\] is uint8 \(3, 3\), expected a 2-D bool array"):
        import_release_pickle(pkl, tmp_path / "c", progress=False)
    with pytest.raises(CacheError, match="no such pickle"):
        restricted_load(tmp_path / "nope.pkl")


def test_cli_import_and_refusal(tmp_path, main, capsys):
    pkl = tmp_path / "mask_cache_train_20.pkl"
    release_pickle(pkl)
    (tmp_path / "Ir").mkdir()
    (tmp_path / "Vis").mkdir()
    import cv2
    for name in ("00000", "00001", "00002"):
        cv2.imwrite(str(tmp_path / "Ir" / f"{name}.png"), np.zeros((9, 11), np.uint8))
        cv2.imwrite(str(tmp_path / "Vis" / f"{name}.png"), np.zeros((9, 11, 3), np.uint8))
    base = ["--root_dir", str(tmp_path), "--no_progress"]
    assert main(base + ["--import_pickle", str(pkl)]) == 0
    out = capsys.readouterr().out
    assert "imported 3 images" in out and "all 3 entries OK" in out
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as fh:
        pickle.dump([Evil(tmp_path / "pwned")], fh)
    assert main(base + ["--import_pickle", str(evil), "--cache_dir", str(tmp_path / "c2")]) == 1
    err = capsys.readouterr().err
    assert "forbidden global" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "c2" / "manifest.json").exists()
