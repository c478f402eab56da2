"""Download the authors' released SAGE student checkpoint into checkpoints/ and verify it.

    python scripts/download_weights.py                  # -> checkpoints/checkpoints.pt

The file comes from https://github.com/RollingPlain/SAGE_IVIF (checkpoints/checkpoints.pt on branch
main) and must have the published SHA-256. An existing file with other contents is never replaced.
This is the only command of the project that touches the network.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

URL = "https://raw.githubusercontent.com/RollingPlain/SAGE_IVIF/main/checkpoints/checkpoints.pt"
SHA256 = "ecfde477ca4cd65401f207d5dc91ce6c475a49891d768dbdb7a66366255ee836"
ROOT = Path(__file__).resolve().parents[1]


class DownloadError(RuntimeError):
    pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, out: Path, sha256: str = SHA256, timeout: float = 30.0) -> str:
    """Fetch `url` to the file `out` via a temporary file; returns 'downloaded' or 'present' (already there)."""
    if out.exists():
        if sha256_of(out) == sha256:
            return "present"
        raise DownloadError(f"{out}: exists with different contents (SHA-256 mismatch); not overwritten — "
                            "move it away or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=str(out.parent))
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as fh:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    total = int(resp.headers.get("Content-Length") or 0)
                    with tqdm(total=total or None, unit="B", unit_scale=True, desc=out.name) as bar:
                        for chunk in iter(lambda: resp.read(1 << 16), b""):
                            fh.write(chunk)
                            h.update(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(f"cannot download {url} ({reason}); are you offline? Fetch the file by hand "
                                    f"and place it at {out}") from None
        if h.hexdigest() != sha256:
            raise DownloadError(f"{url}: downloaded file has SHA-256 {h.hexdigest()}, expected {sha256}; "
                                "not saved (is it a Git LFS pointer or a changed release?)")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return "downloaded"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=URL, help="where to fetch the file from")
    p.add_argument("--out", default=str(ROOT / "checkpoints" / "checkpoints.pt"),
                   help="destination file, or an existing folder to hold checkpoints.pt")
    p.add_argument("--sha256", default=SHA256, help="expected SHA-256 of the file")
    p.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    a = p.parse_args(argv)
    try:
        out = Path(a.out)
        out = out / "checkpoints.pt" if out.is_dir() else out
        status = download(a.url, out, a.sha256, a.timeout)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the destination folder cannot be created
        print(f"error: {exc.filename or a.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{out}: {'already present, checksum OK' if status == 'present' else 'downloaded, checksum OK'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
