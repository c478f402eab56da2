"""Reading fixture folders: the JSON file that tells a fixture kind apart, and its tensor files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import torch


def fixture_json(folder: Path, files: Sequence[str], json_name: str) -> Optional[Any]:
    """The parsed `folder/json_name` when every file of `files` is in `folder`; None when one is missing
    or the JSON cannot be read (the folder is then not of the kind asking)."""
    folder = Path(folder)
    if not all((folder / f).is_file() for f in files):
        return None
    try:
        return json.loads((folder / json_name).read_text())
    except (OSError, ValueError):
        return None


def load_tensors(path: Path, kind: str) -> Any:
    """A fixture's tensor file (torch.load, weights only, on the CPU); FileNotFoundError naming the kind."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the {kind} fixture")
    return torch.load(str(path), map_location="cpu", weights_only=True)
