"""scripts/download_weights.py against a local HTTP server on 127.0.0.1 (no other address is ever contacted).

The download mechanics run on a small generated file, so they need no reference data; the tests marked
by `shared_dir` serve the real reference (the authors' checkpoint, test pairs and outputs).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import importlib.util
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_student

ROOT = Path(__file__).resolve().parents[2]
FAKE = b"not really weights\n" * 4096


@pytest.fixture(scope="module")
def dw():
    spec = importlib.util.spec_from_file_location("download_weights", ROOT / "scripts" / "download_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(folder: Path):
    """http://127.0.0.1:<port> serving `folder`."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """(url of a served checkpoints/checkpoints.pt holding FAKE, its SHA-256)."""
    site = tmp_path_factory.mktemp("site")
    (site / "checkpoints").mkdir()
    (site / "checkpoints" / "checkpoints.pt").write_bytes(FAKE)
    with serving(site) as base:
        yield f"{base}/checkpoints/checkpoints.pt", hashlib.sha256(FAKE).hexdigest()


@pytest.fixture(scope="module")
def server(shared_dir):
    """The raw-file address of the reference's sage_reference/ (the authors' repository layout)."""
    with serving(shared_dir / "sage_reference") as base:
        yield base


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Loopback requests must not be sent to a proxy from the environment."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def leftovers(folder: Path):
    """Temporary files (hidden names) left in `folder`."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


def error_line(err: str) -> str:
    """The one error line of stderr (tqdm's progress bar may stand before it); no traceback."""
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert lines[-1].startswith("error: ") and sum(line.startswith("error: ") for line in lines) == 1
    return lines[-1]


def test_published_source_and_checksum(dw):
    assert dw.URL == "https://raw.githubusercontent.com/RollingPlain/SAGE_IVIF/main/checkpoints/checkpoints.pt"
    assert dw.SHA256 == "ecfde477ca4cd65401f207d5dc91ce6c475a49891d768dbdb7a66366255ee836"
    assert dw.REFERENCE_FILES["checkpoints/checkpoints.pt"] == dw.SHA256
    assert all(len(h) == 64 for h in dw.REFERENCE_FILES.values()) and len(set(dw.REFERENCE_FILES.values())) == 19


def test_defaults_fetch_the_release_into_checkpoints(dw, monkeypatch):
    calls = []
    monkeypatch.setattr(dw, "download", lambda *args: calls.append(args) or "present")  # no network here
    assert dw.main([]) == 0
    assert calls == [(dw.URL, ROOT / "checkpoints" / "checkpoints.pt", dw.SHA256, 30.0)]


def test_download_verify_and_rerun(dw, fake, tmp_path, capsys):
    url, sha = fake
    out = tmp_path / "checkpoints" / "checkpoints.pt"
    assert dw.main(["--url", url, "--sha256", sha, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: downloaded, checksum OK"
    assert out.read_bytes() == FAKE and leftovers(out.parent) == []
    mtime = out.stat().st_mtime_ns
    assert dw.main(["--url", url, "--sha256", sha, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: already present, checksum OK"
    assert out.stat().st_mtime_ns == mtime


def test_out_may_be_a_folder(dw, fake, tmp_path, capsys):
    url, sha = fake
    assert dw.main(["--url", url, "--sha256", sha, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "checkpoints.pt").read_bytes() == FAKE
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'checkpoints.pt'}: downloaded, checksum OK"


def test_out_with_a_trailing_slash_names_the_file(dw, fake, tmp_path, capsys):
    url, sha = fake
    folder = tmp_path / "new"  # does not exist yet
    assert dw.main(["--url", url, "--sha256", sha, "--out", f"{folder}/"]) == 0
    assert folder.is_dir() and (folder / "checkpoints.pt").read_bytes() == FAKE
    assert capsys.readouterr().out.strip() == f"{folder / 'checkpoints.pt'}: downloaded, checksum OK"


def test_wrong_hash_is_not_saved(dw, fake, tmp_path, capsys):
    url, sha = fake
    out = tmp_path / "ck.pt"
    rc = dw.main(["--url", url, "--out", str(out), "--sha256", "0" * 64])
    err = error_line(capsys.readouterr().err)
    assert rc == 1
    assert err.startswith(f"error: {url}: downloaded file has SHA-256 {sha}, expected {'0' * 64}")
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_different_file_is_never_overwritten(dw, fake, tmp_path, capsys):
    url, sha = fake
    out = tmp_path / "checkpoints.pt"
    out.write_bytes(b"my own weights")
    rc = dw.main(["--url", url, "--sha256", sha, "--out", str(out)])
    err = error_line(capsys.readouterr().err)
    assert rc == 1 and err.startswith(f"error: {out}: exists with different contents") and "not overwritten" in err
    assert out.read_bytes() == b"my own weights"


def test_unreachable_server_says_offline(dw, tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/checkpoints.pt"
    out = tmp_path / "sub" / "ck.pt"
    rc = dw.main(["--url", url, "--out", str(out), "--timeout", "5"])
    err = error_line(capsys.readouterr().err)
    assert rc == 1
    assert err.startswith(f"error: cannot download {url} (") and "are you offline?" in err
    assert not out.exists() and leftovers(out.parent) == []


def test_missing_file_on_server(dw, fake, tmp_path, capsys):
    base = fake[0].rsplit("/", 1)[0]
    rc = dw.main(["--url", f"{base}/nothing.pt", "--out", str(tmp_path / "ck.pt")])
    err = error_line(capsys.readouterr().err)
    assert rc == 1 and err == f"error: cannot download {base}/nothing.pt: the server answered HTTP 404 File not found"
    assert list(tmp_path.iterdir()) == []


def test_imports_only_the_standard_library(tmp_path):
    """It must run on a fresh machine before `pip install -r requirements.txt`."""
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('dw', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(sorted(n for n in ('torch', 'numpy', 'tqdm', 'yaml', 'cv2') if n in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts" / "download_weights.py")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---- with the reference data: the real files and the table of checksums


def test_the_release_checksum_is_the_reference_file(dw, shared_dir):
    assert dw.sha256_of(shared_dir / "sage_reference" / "checkpoints" / "checkpoints.pt") == dw.SHA256


def test_downloaded_release_loads_as_the_student(dw, server, shared_dir, tmp_path):
    out = tmp_path / "x.pt"
    assert dw.download(f"{server}/checkpoints/checkpoints.pt", out) == "downloaded"
    assert out.read_bytes() == (shared_dir / "sage_reference" / "checkpoints" / "checkpoints.pt").read_bytes()
    model = load_student(out)
    assert sum(p.numel() for p in model.parameters()) == 135_617
    assert torch.load(out, map_location="cpu", weights_only=True).keys() == model.state_dict().keys()


def test_reference_download_lays_out_the_repository(dw, server, shared_dir, tmp_path, capsys):
    assert dw.main(["--reference", str(tmp_path), "--base_url", server]) == 0
    out = capsys.readouterr().out.strip().split("\n")
    assert len(out) == len(dw.REFERENCE_FILES) + 1
    assert out[-1] == f"reference ready: export SAGE_REFERENCE_DIR={tmp_path.resolve()}"
    got = sorted(str(p.relative_to(tmp_path / "sage_reference")) for p in tmp_path.rglob("*") if p.is_file())
    assert got == sorted(dw.REFERENCE_FILES)
    for rel in dw.REFERENCE_FILES:  # the table's checksums are those of the reference the tests use
        assert (tmp_path / "sage_reference" / rel).read_bytes() == (shared_dir / "sage_reference" / rel).read_bytes()
    assert dw.main(["--reference", str(tmp_path), "--base_url", server]) == 0  # a re-run keeps everything
    assert "downloaded" not in capsys.readouterr().out


def test_reference_table_is_what_the_tests_read(dw, shared_dir):
    held = sorted(str(p.relative_to(shared_dir / "sage_reference"))
                  for p in (shared_dir / "sage_reference").rglob("*") if p.is_file())
    assert held == sorted(dw.REFERENCE_FILES)
