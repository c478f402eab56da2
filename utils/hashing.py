"""SHA-256 of a file, read in chunks. Standard library only: scripts/download_weights.py imports it before
anything from requirements.txt is installed."""
from __future__ import annotations

import hashlib
import os


def sha256_of(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 digest of the file at `path`, reading `chunk_bytes` at a time (memory stays flat)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()
