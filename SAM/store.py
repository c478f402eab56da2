"""The on-disk segment cache: one compact file per image plus a manifest.

Layout of `<root>/Mask_cache/`:
    manifest.json   {"format": "sage-mask-cache", "version": 1, "settings": recorded generator settings,
                     "checkpoint": "sha256:<hex>" | "random-init:seed=<s>" | "imported:...",
                     "digest": hash of both}
    <name>.npz      one image pair (name = the pair's base name), written by numpy.savez_compressed:
                    ir, vis: uint8 (n, ceil(H*W/8)), each row a mask flattened row-major and bit-packed
                    (np.packbits); meta: a JSON string with name, height, width, n, found_ir,
                    found_vis (masks SAM returned before the cut), digest (= the manifest's), ir_file,
                    vis_file.
Entries are written under a temporary name in the same folder and renamed into place (os.replace), so a
killed writer never leaves a partial entry under a final name; leftovers `.<name>.npz.*.tmp` are removed
the next time that image is built. Loading one entry reads only that file (milliseconds, memory of one
image's masks).
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from utils.atomic import atomic_path

FORMAT = "sage-mask-cache"
VERSION = 1
MANIFEST = "manifest.json"
ENTRY_SUFFIX = ".npz"


class CacheError(ValueError):
    """A segment cache that cannot be used; the message names the file and the fix."""


class CacheMissingError(CacheError):
    """An image has no entry in the cache."""


class CacheMismatchError(CacheError):
    """The cache (or an entry) was made with other settings or other SAM weights."""


class CacheCorruptError(CacheError):
    """An entry that cannot be read or is inconsistent."""


@dataclass
class Manifest:
    settings: Dict[str, Any]
    checkpoint: str
    digest: str

    def to_json(self) -> Dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "settings": self.settings,
                "checkpoint": self.checkpoint, "digest": self.digest}


@dataclass
class CacheEntry:
    """One image's cached masks: ir_masks, vis_masks are lists of bool (H, W), equally long."""

    name: str
    ir_masks: List[np.ndarray]
    vis_masks: List[np.ndarray]
    meta: Dict[str, Any] = field(default_factory=dict)


def check_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise CacheError(f"'{name}': not usable as a cache entry name (no path separators or leading dot)")
    return name


def entry_path(cache_dir: str | os.PathLike, name: str) -> Path:
    return Path(cache_dir) / (check_name(name) + ENTRY_SUFFIX)


def _atomic_write(path: Path, write) -> None:
    """write(fh) into a temporary `.<file>.*.tmp` beside `path`, fsync, then rename into place (utils.atomic)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())


def remove_stale_temps(cache_dir: str | os.PathLike, name: str) -> int:
    """Delete leftovers of killed writers of entry `name` (only the builder of that image calls this)."""
    prefix = f".{check_name(name)}{ENTRY_SUFFIX}."
    n = 0
    d = Path(cache_dir)
    if d.is_dir():
        for f in os.listdir(d):
            if f.startswith(prefix) and f.endswith(".tmp"):
                try:
                    os.remove(d / f)
                    n += 1
                except OSError:
                    pass
    return n


# ---------------------------------------------------------------------------------------------- manifest
def read_manifest(cache_dir: str | os.PathLike) -> Optional[Manifest]:
    """The manifest, or None when the cache folder has none. Raises CacheCorruptError on a bad file."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, this code reads version {VERSION}")
        return Manifest(settings=data["settings"], checkpoint=data["checkpoint"], digest=data["digest"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CacheCorruptError(f"{path}: not a segment-cache manifest ({exc}); delete the folder and rebuild") from None


def write_manifest(cache_dir: str | os.PathLike, manifest: Manifest) -> None:
    blob = (json.dumps(manifest.to_json(), indent=1, sort_keys=True) + "\n").encode()
    _atomic_write(Path(cache_dir) / MANIFEST, lambda fh: fh.write(blob))


# ---------------------------------------------------------------------------------------------- entries
def pack_masks(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """(n, ceil(H*W/8)) uint8 bit-packed rows of bool (H, W) masks."""
    nbytes = (height * width + 7) // 8
    out = np.zeros((len(masks), nbytes), np.uint8)
    for i, m in enumerate(masks):
        m = np.asarray(m)
        if m.shape != (height, width):
            raise ValueError(f"mask {i} is {m.shape}, expected {(height, width)}")
        out[i] = np.packbits(m.astype(bool).reshape(-1))
    return out


def unpack_masks(packed: np.ndarray, height: int, width: int) -> List[np.ndarray]:
    return [np.unpackbits(row, count=height * width).reshape(height, width).astype(bool) for row in packed]


def write_entry(cache_dir: str | os.PathLike, name: str, ir_masks: Sequence[np.ndarray],
                vis_masks: Sequence[np.ndarray], height: int, width: int, digest: str,
                extra_meta: Optional[Dict[str, Any]] = None) -> Path:
    """Atomically write one image's (already selected) masks; returns the entry's path."""
    if len(ir_masks) != len(vis_masks):
        raise ValueError(f"{name}: {len(ir_masks)} IR masks but {len(vis_masks)} VIS masks (select_for_cache cuts both to n)")
    meta = {"name": name, "height": int(height), "width": int(width), "n": len(ir_masks), "digest": digest}
    meta.update(extra_meta or {})
    arrays = {"ir": pack_masks(ir_masks, height, width), "vis": pack_masks(vis_masks, height, width),
              "meta": np.array(json.dumps(meta, sort_keys=True))}
    path = entry_path(cache_dir, name)
    _atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def _read_raw_entry(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            ir, vis = z["ir"], z["vis"]
    except Exception as exc:  # zip errors, missing keys, bad JSON
        raise CacheCorruptError(f"{path}: unreadable cache entry ({type(exc).__name__}: {exc}); "
                                "delete it and run scripts/build_mask_cache.py again") from None
    return meta, ir, vis


def read_entry(cache_dir: str | os.PathLike, name: str, digest: Optional[str] = None) -> CacheEntry:
    """Load and check one entry. With `digest`, an entry made with other settings raises CacheMismatchError."""
    path = entry_path(cache_dir, name)
    if not path.is_file():
        raise CacheMissingError(f"{path}: no cache entry for image '{name}' (build it with scripts/build_mask_cache.py)")
    meta, ir, vis = _read_raw_entry(path)
    try:
        h, w, n = int(meta["height"]), int(meta["width"]), int(meta["n"])
    except (KeyError, TypeError, ValueError):
        raise CacheCorruptError(f"{path}: entry metadata lacks height/width/n; rebuild it") from None
    nbytes = (h * w + 7) // 8
    for key, arr in (("ir", ir), ("vis", vis)):
        if arr.dtype != np.uint8 or arr.shape != (n, nbytes):
            raise CacheCorruptError(f"{path}: '{key}' has shape {arr.shape} {arr.dtype}, expected ({n}, {nbytes}) uint8; rebuild it")
    if meta.get("name") != name:
        raise CacheCorruptError(f"{path}: entry is for image '{meta.get('name')}', not '{name}'")
    if digest is not None and meta.get("digest") != digest:
        raise CacheMismatchError(f"{path}: entry was made with other SAM settings or weights than the cache's "
                                 "manifest (stale); rebuild with scripts/build_mask_cache.py --rebuild")
    return CacheEntry(name, unpack_masks(ir, h, w), unpack_masks(vis, h, w), meta)


def list_entries(cache_dir: str | os.PathLike) -> List[str]:
    d = Path(cache_dir)
    if not d.is_dir():
        return []
    return sorted(f[: -len(ENTRY_SUFFIX)] for f in os.listdir(d)
                  if f.endswith(ENTRY_SUFFIX) and not f.startswith("."))


def entry_digest(cache_dir: str | os.PathLike, name: str) -> Optional[str]:
    """The digest recorded in an entry, or None when it is missing or unreadable (it will be rebuilt)."""
    path = entry_path(cache_dir, name)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"])).get("digest")
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------- checks
@dataclass
class VerifyReport:
    checked: int = 0
    missing: List[str] = field(default_factory=list)
    bad: Dict[str, str] = field(default_factory=dict)
    extra: List[str] = field(default_factory=list)
    temps: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad


def verify_cache(cache_dir: str | os.PathLike, names: Optional[Iterable[str]] = None) -> VerifyReport:
    """Load every entry and check it against the manifest; `names` = the images that must be present.

    Raises CacheError when the manifest itself is missing or unreadable.
    """
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    if manifest is None:
        raise CacheMissingError(f"{cache_dir / MANIFEST}: no manifest; this folder is not a segment cache "
                                "(build it with scripts/build_mask_cache.py)")
    present = list_entries(cache_dir)
    wanted = sorted(set(names)) if names is not None else present
    report = VerifyReport()
    report.extra = sorted(set(present) - set(wanted))
    report.temps = sum(1 for f in os.listdir(cache_dir) if f.startswith(".") and f.endswith(".tmp"))
    cache_mask_num = int(manifest.settings.get("cache_mask_num", 10 ** 9))
    present_set = set(present)
    for name in wanted:
        if name not in present_set:
            report.missing.append(name)
            continue
        report.checked += 1
        try:
            entry = read_entry(cache_dir, name, digest=manifest.digest)
            if len(entry.ir_masks) > cache_mask_num:
                raise CacheCorruptError(f"{len(entry.ir_masks)} masks, more than cache_mask_num={cache_mask_num}")
        except CacheError as exc:
            report.bad[name] = str(exc)
    return report


@dataclass
class CacheStats:
    entries: int
    masks: int
    bytes_on_disk: int
    pickle_bytes: int


def cache_stats(cache_dir: str | os.PathLike) -> CacheStats:
    """Entry count, bytes on disk, and the size of the release's single pickle for the same masks.

    The release pickles {name: {'ir_masks': [...], 'vis_masks': [...]}} with numpy bool arrays, one
    byte per pixel; its size is measured by pickling each entry in that form (one image at a time).
    """
    cache_dir = Path(cache_dir)
    names = list_entries(cache_dir)
    disk = sum((cache_dir / f).stat().st_size for f in os.listdir(cache_dir)) if cache_dir.is_dir() else 0
    pick = len(pickle.dumps({}, protocol=4))
    masks = 0
    for name in names:
        entry = read_entry(cache_dir, name)
        masks += len(entry.ir_masks) + len(entry.vis_masks)
        one = {name: {"ir_masks": entry.ir_masks, "vis_masks": entry.vis_masks}}
        pick += len(pickle.dumps(one, protocol=4)) - len(pickle.dumps({}, protocol=4))
    return CacheStats(entries=len(names), masks=masks, bytes_on_disk=disk, pickle_bytes=pick)
