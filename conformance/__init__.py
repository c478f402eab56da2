"""Fixture checkers: recompute a reference fixture's tensors with this project's code.

Each kind has a module with `recognise(folder) -> bool` and `check(folder) -> Iterable[Comparison]`;
`scripts/check_fixture.py FOLDER` finds the kind and prints one line per tensor.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterable

from .report import Comparison, compare

KINDS = {
    "sage_release": "conformance.sage_release",
    "xdecoder_tiny": "conformance.xdecoder_tiny",
    "sgafusion_release": "conformance.sgafusion_release",
}


class FixtureError(ValueError):
    """A folder that is not a fixture of a supported kind."""


def checker(kind: str):
    return importlib.import_module(KINDS[kind])


def detect_kind(folder: Path) -> str:
    folder = Path(folder)
    if not folder.is_dir():
        raise FixtureError(f"{folder}: no such fixture folder")
    for kind in KINDS:
        try:
            module = checker(kind)
        except ModuleNotFoundError:
            continue
        if module.recognise(folder):
            return kind
    raise FixtureError(f"{folder}: not a fixture of a supported kind ({', '.join(KINDS)})")


def check(folder: Path, kind: str | None = None) -> Iterable[Comparison]:
    return checker(kind or detect_kind(folder)).check(Path(folder))


__all__ = ["Comparison", "compare", "check", "detect_kind", "FixtureError", "KINDS"]
