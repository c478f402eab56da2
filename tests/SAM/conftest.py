"""Fixtures of the SAM tests: tiny IR/VIS folders and one random-weight SAM shared by the tests.

Settings: the `tiny` preset (128-pixel SAM input, thresholds off so random weights return masks) with a
2x2 point grid, so one image takes well under a second on a CPU.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from SAM.model import build_sam
from SAM.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
TEST_SETS = ["generator.points_per_side=2"]  # on top of --preset tiny


def tiny_settings() -> dict:
    return load_settings(ROOT / "configs" / "sam.yaml", "tiny", TEST_SETS)


def write_pairs(root: Path, n: int, size=(64, 80), seed: int = 0, ir_dir: str = "Ir", vis_dir: str = "Vis") -> List[str]:
    """n IR (gray) / VIS (colour) PNG pairs with a few rectangles and discs; returns their names."""
    rng = np.random.default_rng(seed)
    h, w = size
    (root / ir_dir).mkdir(parents=True, exist_ok=True)
    (root / vis_dir).mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        vis = np.full((h, w, 3), rng.integers(0, 80), np.uint8)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            colour = tuple(int(c) for c in rng.integers(60, 255, 3))
            cv2.rectangle(vis, (x0, y0), (x0 + int(rng.integers(8, 20)), y0 + int(rng.integers(8, 20))), colour, -1)
        ir = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)
        cv2.circle(ir, (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10))), 8, 255, -1)
        name = f"img_{i:03d}"
        cv2.imwrite(str(root / ir_dir / f"{name}.png"), ir)
        cv2.imwrite(str(root / vis_dir / f"{name}.png"), vis)
        names.append(name)
    return names


@pytest.fixture(scope="session")
def random_sam():
    """The SAM a `--sam_checkpoint none --preset tiny` run builds (seed 0): identical weights."""
    s = tiny_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_sam(s["model_type"], None, s["image_size"], s["seed"])


def subprocess_env() -> dict:
    """Single-threaded children so separate processes compute bit-identical masks."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def settings() -> dict:
    return tiny_settings()


@pytest.fixture(scope="session")
def make_pairs():
    return write_pairs


@pytest.fixture(scope="session")
def sub_env() -> dict:
    return subprocess_env()


@pytest.fixture(scope="session")
def test_sets() -> List[str]:
    return list(TEST_SETS)


@pytest.fixture(scope="session")
def main():
    """scripts/build_mask_cache.py's main(argv) -> exit code, run in this process (fast, same code)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_mask_cache", ROOT / "scripts" / "build_mask_cache.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main
