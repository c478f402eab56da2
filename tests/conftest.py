"""Shared fixtures: the repository root and the third-party reference data in ../shared."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Tests run on a 2-core CPU next to other work; one thread per test process keeps them predictable.
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def load_fuse_cli():
    """test.py as a module, imported by path (`import test` could find the standard library's package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sage_test_cli", ROOT / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cli():
    """The fusion command line (test.py) as a module: cli.main(argv) -> exit code."""
    return load_fuse_cli()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (CI has it there too); tests that need it fail loudly without it."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED}: the shared reference data is missing (it must sit beside the checkout)")
    return SHARED
