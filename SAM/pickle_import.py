"""Import the authors' single-pickle mask cache (mask_cache_train_20.pkl) into the per-image format.

The release's file is {image name: {'ir_masks': [bool (H, W) ndarray, ...], 'vis_masks': [...]}}.
Pickles can run arbitrary code, so it is read with a restricted unpickler that resolves only the
globals numpy needs to rebuild arrays; anything else (os.system, builtins.eval, ...) is refused with
the forbidden name. The file is loaded whole (as the release's dataset does), so importing needs about
the pickle's size in memory.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from tqdm import tqdm

from data.imageio import IMAGE_EXTENSIONS

from utils.hashing import sha256_of
from .selection import select_for_cache
from .settings import DEFAULT_SETTINGS, recorded_settings, resolve_settings, settings_digest
from .store import CacheError, CacheMismatchError, Manifest, read_manifest, write_entry, write_manifest

# (module, name) pairs a pickle of numpy bool arrays needs; numpy 1.x and 2.x spell the module differently.
# Protocols 2-4 rebuild arrays with _reconstruct + ndarray + dtype; protocol 5 (pickle.HIGHEST_PROTOCOL)
# uses _frombuffer(bytes, dtype, shape, order), which cannot build object arrays either.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


class UnsafePickleError(CacheError):
    """The pickle references something other than plain containers and numpy arrays."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str):
        super().__init__(fh)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(f"{self.source}: refused to load: the pickle references the forbidden global "
                                    f"'{module}.{name}' (only dicts, lists, strings and numpy bool arrays are allowed)")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refused to load: the pickle uses persistent ids")


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle `path` admitting only ALLOWED_GLOBALS. Raises UnsafePickleError / CacheError."""
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"{path}: no such pickle file")
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(io.BufferedReader(fh, 1 << 22), str(path)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise CacheError(f"{path}: not a readable pickle ({type(exc).__name__}: {str(exc)[:120]})") from None


def _entry_name(key: Any, source: Path) -> str:
    if not isinstance(key, str):
        raise CacheError(f"{source}: keys must be image names (str), found {type(key).__name__}")
    stem, ext = os.path.splitext(key)
    return stem if ext.lower() in IMAGE_EXTENSIONS else key


def _check_masks(masks: Any, what: str, source: Path) -> list:
    if not isinstance(masks, list):
        raise CacheError(f"{source}: {what} is {type(masks).__name__}, expected a list of arrays")
    for i, m in enumerate(masks):
        if not isinstance(m, np.ndarray) or m.dtype != np.bool_ or m.ndim != 2:
            desc = f"{m.dtype} {m.shape}" if isinstance(m, np.ndarray) else type(m).__name__
            raise CacheError(f"{source}: {what}[{i}] is {desc}, expected a 2-D bool array")
        if m.shape != masks[0].shape:
            raise CacheError(f"{source}: {what}[{i}] is {m.shape}, unlike {what}[0] {masks[0].shape}")
    return masks


def import_release_pickle(pickle_path: str | os.PathLike, cache_dir: str | os.PathLike,
                          settings: Optional[Dict[str, Any]] = None, overwrite: bool = False,
                          progress: bool = True) -> int:
    """Convert the release's pickle into `cache_dir`; returns the number of entries written.

    The manifest records `settings` (default: the release's, with bgr_input true, since the authors fed
    BGR) and the weights as 'imported:sha256:<pickle hash>'. A cache folder holding another manifest is
    refused unless `overwrite`.
    """
    pickle_path, cache_dir = Path(pickle_path), Path(cache_dir)
    s = resolve_settings(settings if settings is not None else {**DEFAULT_SETTINGS, "bgr_input": True})
    data = restricted_load(pickle_path)
    if not isinstance(data, dict):
        raise CacheError(f"{pickle_path}: expected a dict of image name -> masks, found {type(data).__name__}")
    rec = recorded_settings(s)
    cid = "imported:sha256:" + sha256_of(pickle_path)
    manifest = Manifest(settings=rec, checkpoint=cid, digest=settings_digest(rec, cid))
    have = read_manifest(cache_dir)
    if have is not None and have.digest != manifest.digest and not overwrite:
        raise CacheMismatchError(f"{cache_dir}: holds a cache with other settings or weights; use another "
                                 "--cache_dir or pass --rebuild to replace it")
    # Check everything before writing anything.
    items = []
    for key, val in data.items():
        name = _entry_name(key, pickle_path)
        if not isinstance(val, dict) or "ir_masks" not in val or "vis_masks" not in val:
            raise CacheError(f"{pickle_path}: entry '{key}' must be a dict with 'ir_masks' and 'vis_masks'")
        ir = _check_masks(val["ir_masks"], f"['{key}']['ir_masks']", pickle_path)
        vis = _check_masks(val["vis_masks"], f"['{key}']['vis_masks']", pickle_path)
        if ir and vis and ir[0].shape != vis[0].shape:
            raise CacheError(f"{pickle_path}: entry '{key}' has IR masks {ir[0].shape} but VIS masks {vis[0].shape}")
        items.append((name, ir, vis))
    write_manifest(cache_dir, manifest)
    for name, ir, vis in tqdm(items, desc="import", unit="img", disable=not progress):
        ir_sel, vis_sel = select_for_cache(ir, vis, s["cache_mask_num"])
        shape = (ir or vis)[0].shape if (ir or vis) else (0, 0)
        write_entry(cache_dir, name, ir_sel, vis_sel, shape[0], shape[1], manifest.digest,
                    {"found_ir": len(ir), "found_vis": len(vis), "imported_from": pickle_path.name})
    return len(items)
