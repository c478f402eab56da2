"""Where third-party reference data lives (the authors' test pairs and outputs, fixtures, metric values).

One place for the tests and the benchmark scripts: $SAGE_REFERENCE_DIR, else a folder `shared` beside the
checkout (the developers' layout). `python scripts/download_weights.py --reference DIR` fetches the authors'
part. See docs/testing.md.
"""
from __future__ import annotations

import os
from pathlib import Path

REFERENCE_ENV = "SAGE_REFERENCE_DIR"
ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    """The reference folder (it may not exist: callers check and say what is missing)."""
    env = os.environ.get(REFERENCE_ENV, "").strip()
    return Path(env).expanduser() if env else ROOT.parent / "shared"
