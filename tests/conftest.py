"""Shared fixtures: the repository root and the third-party reference data (docs/testing.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from utils.reference import REFERENCE_ENV, reference_dir

ROOT = Path(__file__).resolve().parents[1]
FETCH_HINT = (f"fetch the authors' part with `python scripts/download_weights.py --reference DIR` "
              f"and set {REFERENCE_ENV}=DIR (docs/testing.md)")


def missing_reference(what: str) -> None:
    """Skip the test with one line naming what is missing and how to get it; under CI=true fail instead."""
    message = f"reference data missing: {what}; {FETCH_HINT}"
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)

# The suite runs in two pytest-xdist workers (pytest.ini); one intra-op thread each keeps the two cores of
# a small machine busy without oversubscribing them. A plain single-process run may use two threads.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, torch.get_num_threads())))


def pytest_collection_modifyitems(config, items):
    """Balance the two xdist workers (pytest.ini: -n 2 --dist worksteal, which splits the list in two halves).

    Tests marked slow (several processes, full-size images) open each half, a module's slow tests kept
    together (they share module fixtures), modules dealt to the half with fewer slow tests so far; the
    other tests fill the halves in their usual order. Worker stealing evens out the rest.
    """
    slow = [it for it in items if it.get_closest_marker("slow") is not None]
    if not slow:
        return
    fast = [it for it in items if it.get_closest_marker("slow") is None]
    modules: dict = {}
    for it in slow:
        modules.setdefault(it.module.__name__, []).append(it)
    halves: list = [[], []]
    for group in sorted(modules.values(), key=len, reverse=True):
        min(halves, key=len).extend(group)
    cut = max(0, len(items) // 2 - len(halves[0]))
    items[:] = halves[0] + fast[:cut] + halves[1] + fast[cut:]


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
    """The reference folder (reference_dir()); skips the test when it is missing (fails under CI=true)."""
    folder = reference_dir()
    if not folder.is_dir():
        missing_reference(f"{folder} (set {REFERENCE_ENV} or put it at ../shared)")
    return folder


@pytest.fixture(scope="session")
def reference_file(shared_dir):
    """reference_file("METRICS.md") -> that path inside shared_dir, or a skip (a failure under CI=true) naming it."""
    def need(*parts: str) -> Path:
        path = shared_dir.joinpath(*parts)
        if not path.exists():
            missing_reference(str(path))
        return path
    return need


# ---- tiny randomly initialised SegFormer judges saved to temporary folders (nothing is downloaded)


def tiny_segformer(class_names, seed: int = 0):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    cfg = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                          decoder_hidden_size=16, num_labels=len(class_names),
                          id2label={i: n for i, n in enumerate(class_names)},
                          label2id={n: i for i, n in enumerate(class_names)})
    return SegformerForSemanticSegmentation(cfg).eval()


@pytest.fixture(scope="session")
def make_segformer():
    """tiny_segformer(class_names, seed=0) -> a random SegformerForSemanticSegmentation in eval mode."""
    return tiny_segformer


@pytest.fixture(scope="session")
def cityscapes_dir(tmp_path_factory):
    """A 19-class 'Cityscapes' SegFormer with a preprocessor_config.json, as a local folder."""
    d = tmp_path_factory.mktemp("segformer_cityscapes")
    from semantic.classes import CITYSCAPES_CLASSES

    tiny_segformer(CITYSCAPES_CLASSES).save_pretrained(str(d))
    (d / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SegformerImageProcessor", "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "size": {"height": 64, "width": 96}}))
    return d


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread while these tests run: on a shared 2-core machine two threads are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
