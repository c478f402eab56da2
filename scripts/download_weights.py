"""Download the authors' released SAGE files and verify their SHA-256.

    python scripts/download_weights.py                     # the student -> checkpoints/checkpoints.pt
    python scripts/download_weights.py --out DIR/          # -> DIR/checkpoints.pt
    python scripts/download_weights.py --reference DIR     # the test reference -> DIR/sage_reference/...
    export SAGE_REFERENCE_DIR=DIR                          # the tests then find it (docs/testing.md)

Everything comes from https://github.com/RollingPlain/SAGE_IVIF (branch main) and is kept only with the
published SHA-256 (REFERENCE_FILES below). `--reference` fetches the checkpoint, the six 1024x768 test
pairs and the authors' six fused outputs, laid out as the repository holds them. An existing file with
other contents is never replaced. This is the only command of the project that touches the network, and
it runs before anything is installed: it imports only the standard library (tqdm draws a bar if present).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make utils/ importable (both helpers are standard library only)
    sys.path.insert(0, str(ROOT))

from utils.atomic import atomic_path  # noqa: E402
from utils.hashing import sha256_of  # noqa: E402

BASE_URL = "https://raw.githubusercontent.com/RollingPlain/SAGE_IVIF/main"
URL = f"{BASE_URL}/checkpoints/checkpoints.pt"
SHA256 = "ecfde477ca4cd65401f207d5dc91ce6c475a49891d768dbdb7a66366255ee836"
REFERENCE_FOLDER = "sage_reference"  # DIR/sage_reference/<path in the authors' repository>

# Path in the authors' repository -> SHA-256 of the released file.
REFERENCE_FILES = {
    "checkpoints/checkpoints.pt": SHA256,
    "data/test/Ir/00000.png": "edd8d28815ecf6d3a8a11109b945e166430ce9344eed89370d8ee5a8020c6d17",
    "data/test/Ir/00001.png": "dec73f630a428c4fbc97f66e222e30c6f77b5f7bb4552ba78d907f94722da728",
    "data/test/Ir/00002.png": "866d5251cc7eeed4a9f9a4f89b996f09da1012b54e6c8650f081002e324517b2",
    "data/test/Ir/00003.png": "3aac0de81fc1533615e38a7f6b3e199c7943054a2dc38afdf312fcf2fd1dffa0",
    "data/test/Ir/00004.png": "3960ec02e2e64cad5b6d35b7e45382199b0a9eab46e7be6e1d0c8d31e2233701",
    "data/test/Ir/00005.png": "6e1d5475468213275bee8622c6562a0b8c15072721237c87b794ffb22c8386b2",
    "data/test/Vis/00000.png": "2e9c72eecb2b845194ce30fbbccb7c497e13cf022c7b98170a215c9099457e13",
    "data/test/Vis/00001.png": "8e166fbfc9847ce2706c77a62eb536d7cc814d8beb574db28923b2c9a0dbb981",
    "data/test/Vis/00002.png": "98a48662f5d47948689c7eb133c599ddb045810fcf34765655166529d2565e5d",
    "data/test/Vis/00003.png": "a29f3d6cf809b5589a042e39c70e1eb896326a4d11aec19584a36c80863e74e5",
    "data/test/Vis/00004.png": "24b0982e0a0babc578c7433d4940b1bd93fa60cd92b395fd76d27fe1b9c3c8c1",
    "data/test/Vis/00005.png": "44832601ef0898fecaca1a58fc6fe47484a2aa2088bc084cd43790bb5225644a",
    "result/test/00000.png": "33d6a52110ed78b1ce64241bc3ff560110eaf77f9d4d97556a767210b3a51d0f",
    "result/test/00001.png": "30e55b3e5a24c17af4386baf84ec6c5edaa3098006d656d5c2d9041735aee602",
    "result/test/00002.png": "bea9bbf0d097497d12f963725ad7ff2f8c5f17a9a0962433375222ef04c7b0d7",
    "result/test/00003.png": "3deddd3f198d1ac5e2b5e9f9854be393da2d4979f9a5795010171c1d72c4070f",
    "result/test/00004.png": "0608d9f5849dde93187c3dd01ca943c0619717a1180cfe7dd3db4d2582973122",
    "result/test/00005.png": "de36b137a8b10f52124f5647230bef03c7c67fb5ae52603f94734e4572f88d24",
}


class DownloadError(RuntimeError):
    pass


class _NoBar:
    """Stands in for tqdm when it is not installed yet."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


def _progress_bar():
    try:
        from tqdm import tqdm
        return tqdm
    except ImportError:
        return _NoBar


def download(url: str, out: Path, sha256: str = SHA256, timeout: float = 30.0) -> str:
    """Fetch `url` to the file `out` via a temporary file; returns 'downloaded' or 'present' (already there)."""
    if out.exists():
        if sha256_of(out) == sha256:
            return "present"
        raise DownloadError(f"{out}: exists with different contents (SHA-256 mismatch); not overwritten — "
                            "move it away or choose another --out")
    bar_cls = _progress_bar()
    with atomic_path(out) as tmp:
        h = hashlib.sha256()
        with open(tmp, "wb") as fh:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    total = int(resp.headers.get("Content-Length") or 0)
                    with bar_cls(total=total or None, unit="B", unit_scale=True, desc=out.name) as bar:
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
    return "downloaded"


def download_reference(folder: Path, base_url: str = BASE_URL, timeout: float = 30.0) -> list[tuple[Path, str]]:
    """Fetch every file of REFERENCE_FILES to folder/sage_reference/<path>; returns [(file, status)]."""
    done = []
    for rel, digest in REFERENCE_FILES.items():
        out = folder / REFERENCE_FOLDER / rel
        done.append((out, download(f"{base_url.rstrip('/')}/{rel}", out, digest, timeout)))
    return done


def resolve_out(text: str) -> Path:
    """--out as a file: an existing folder, or a name ending in a path separator, gets checkpoints.pt inside."""
    out = Path(text)
    if out.is_dir() or text.endswith(("/", os.sep)):
        return out / "checkpoints.pt"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=URL, help="where to fetch the checkpoint from")
    p.add_argument("--out", default=str(ROOT / "checkpoints" / "checkpoints.pt"),
                   help="destination file, or a folder (existing, or written with a trailing /) for checkpoints.pt")
    p.add_argument("--sha256", default=SHA256, help="expected SHA-256 of the checkpoint")
    p.add_argument("--reference", metavar="DIR", default=None,
                   help="instead: fetch the checkpoint, test pairs and released outputs into DIR/sage_reference/ "
                        "(use DIR as SAGE_REFERENCE_DIR for the tests)")
    p.add_argument("--base_url", default=BASE_URL, help="with --reference: the repository's raw-file address")
    p.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    a = p.parse_args(argv)
    try:
        if a.reference is not None:
            for out, status in download_reference(Path(a.reference), a.base_url, a.timeout):
                print(f"{out}: {'already present' if status == 'present' else 'downloaded'}, checksum OK")
            print(f"reference ready: export SAGE_REFERENCE_DIR={Path(a.reference).resolve()}")
            return 0
        out = resolve_out(a.out)
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
