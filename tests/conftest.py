"""Shared fixtures: the repository root and the third-party reference data in ../shared."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Tests run on a 2-core CPU next to other work; one thread per test process keeps them predictable.
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (CI has it there too); tests that need it fail loudly without it."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED}: the shared reference data is missing (it must sit beside the checkout)")
    return SHARED
