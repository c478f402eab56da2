"""Finding IR/VIS folders and pairing their files by base name."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .imageio import IMAGE_EXTENSIONS

IR_DIR_NAMES = ("Ir", "Inf", "ir", "IR")
VIS_DIR_NAMES = ("Vis", "Vi", "vi", "VIS")


class PairingError(ValueError):
    """The folders cannot be paired at all (missing folder, nothing to pair)."""


def find_subdir(root: str | os.PathLike, names: Tuple[str, ...], what: str, hint: Optional[str] = None) -> Path:
    """The first existing `root/name` for name in `names` (exact case), else PairingError.

    The error lists the folders found in `root` and, when given, `hint` (what to do instead, e.g. which
    flags name the folders): `DIR (folders: a, b; HINT): no infrared folder (looked for Ir, Inf, ir, IR)`.
    """
    root = Path(root)
    if not root.is_dir():
        raise PairingError(f"{root}: no such directory")
    entries = {p.name for p in root.iterdir() if p.is_dir()}
    for name in names:
        if name in entries:
            return root / name
    shown = sorted(entries)[:8]
    found = (f"folders: {', '.join(shown)}{', ...' if len(entries) > len(shown) else ''}" if entries
             else "no folders in it")
    # The cause stays at the end of the line ("no ... folder (looked for ...)"); what was found and what to
    # do come first, next to the folder's name.
    raise PairingError(f"{root} ({found}{'; ' + hint if hint else ''}): "
                       f"no {what} folder (looked for {', '.join(names)})")


def add_pair_dir_arguments(parser: argparse.ArgumentParser,
                           img_help: str = "folder holding Ir/ (Inf, ir, IR) and Vis/ (Vi, vi, VIS)") -> None:
    """Add --img_dir (help `img_help`), --ir_dir and --vis_dir, the flags `resolve_dirs` takes."""
    parser.add_argument("--img_dir", help=img_help)
    parser.add_argument("--ir_dir", help="infrared folder (instead of --img_dir)")
    parser.add_argument("--vis_dir", help="visible folder (instead of --img_dir)")


def resolve_dirs(img_dir: Optional[str] = None, ir_dir: Optional[str] = None,
                 vis_dir: Optional[str] = None) -> Tuple[Path, Path]:
    """IR and VIS folders from either `img_dir` (holding Ir/Vis or their aliases) or explicit paths."""
    if img_dir is not None:
        hint = "name the folders with --ir_dir/--vis_dir"
        ir = Path(ir_dir) if ir_dir else find_subdir(img_dir, IR_DIR_NAMES, "infrared", hint)
        vis = Path(vis_dir) if vis_dir else find_subdir(img_dir, VIS_DIR_NAMES, "visible", hint)
    elif ir_dir and vis_dir:
        ir, vis = Path(ir_dir), Path(vis_dir)
    else:
        raise PairingError("give --img_dir, or both --ir_dir and --vis_dir")
    for p in (ir, vis):
        if not p.is_dir():
            raise PairingError(f"{p}: no such directory")
    return ir, vis


def scan_files(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS
               ) -> Tuple[Dict[str, Path], List[Path]]:
    """(base name -> file, files shadowed by an earlier file of the same base name) for the files of `folder`
    whose extension (lower-cased) is in `extensions`; hidden files are skipped, sorted order decides."""
    out: Dict[str, Path] = {}
    shadowed: List[Path] = []
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."):
            if p.stem in out:
                shadowed.append(p)
            else:
                out[p.stem] = p
    return out, shadowed


def list_images(folder: str | os.PathLike) -> Dict[str, Path]:
    """Map base name -> file for the image files in `folder` (extensions are case-insensitive).

    When two files share a base name (a.png and a.jpg) the first in sorted order wins.
    """
    return scan_files(folder)[0]


@dataclass
class Pairing:
    """Result of pairing two folders."""

    pairs: List[Tuple[str, Path, Path]] = field(default_factory=list)  # (name, ir_path, vis_path)
    ir_only: List[Path] = field(default_factory=list)
    vis_only: List[Path] = field(default_factory=list)
    duplicates: List[Path] = field(default_factory=list)  # ignored: another file has the same base name
    ir_count: int = 0   # image files found in the IR folder (duplicates included)
    vis_count: int = 0  # image files found in the VIS folder (duplicates included)

    def no_pairs_message(self, ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> str:
        """One line for a pairing without pairs: how many image files each side had, with an example."""
        def side(folder, count: int, files: List[Path]) -> str:
            if not count:
                return f"{folder} (no image files: {' '.join(IMAGE_EXTENSIONS)})"
            example = f", e.g. {files[0].name}" if files else ""
            return f"{folder} ({count} image file{'s' if count != 1 else ''}{example})"
        text = (f"no IR/VIS pairs with matching names in {side(ir_dir, self.ir_count, self.ir_only)} and "
                f"{side(vis_dir, self.vis_count, self.vis_only)}")
        if self.ir_count and self.vis_count:
            text += "; a pair is two files with the same base name (a.png pairs with a.jpg)"
        return text


def pair_folders(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> Pairing:
    """Pair files of two folders by base name, across png/jpg/jpeg/bmp/tif/tiff."""
    (ir, ir_dup), (vis, vis_dup) = scan_files(ir_dir), scan_files(vis_dir)
    result = Pairing(duplicates=ir_dup + vis_dup, ir_count=len(ir) + len(ir_dup), vis_count=len(vis) + len(vis_dup))
    for name in sorted(set(ir) | set(vis)):
        if name in ir and name in vis:
            result.pairs.append((name, ir[name], vis[name]))
        elif name in ir:
            result.ir_only.append(ir[name])
        else:
            result.vis_only.append(vis[name])
    return result
