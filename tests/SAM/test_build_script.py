"""scripts/build_mask_cache.py end to end: kill -9 and resume, torchrun with two ranks, CLI errors.

Every run is a separate single-threaded process with random SAM weights (seed 0), so all of them
compute bit-identical masks and their caches can be compared entry by entry.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from SAM.store import list_entries, read_entry, read_manifest, verify_cache

N_PAIRS = 5


def script(repo_root: Path) -> str:
    return str(repo_root / "scripts" / "build_mask_cache.py")


def cli(repo_root, root, cache, test_sets, *extra):
    args = [script(repo_root), "--root_dir", str(root), "--cache_dir", str(cache), "--sam_checkpoint", "none",
            "--preset", "tiny", "--no_progress", "--device", "cpu"]
    for s in test_sets:
        args += ["--set", s]
    return args + list(extra)


def run(args, env, timeout=300):
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env, timeout=timeout)


def assert_same_cache(a: Path, b: Path):
    ma, mb = read_manifest(a), read_manifest(b)
    assert ma == mb
    names = list_entries(a)
    assert names == list_entries(b) and len(names) == N_PAIRS
    for name in names:
        ea, eb = read_entry(a, name, digest=ma.digest), read_entry(b, name, digest=mb.digest)
        assert ea.meta == eb.meta
        for x, y in zip(ea.ir_masks + ea.vis_masks, eb.ir_masks + eb.vis_masks):
            np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def ref(tmp_path_factory, repo_root, make_pairs, sub_env, test_sets):
    """The data folder and the cache of one uninterrupted one-process run."""
    root = tmp_path_factory.mktemp("sam_cli")
    names = make_pairs(root, N_PAIRS, seed=3)
    r = run(cli(repo_root, root, root / "ref_cache", test_sets), sub_env)
    assert r.returncode == 0, r.stderr
    assert f"{N_PAIRS} built" in r.stdout and "RANDOM weights" in r.stderr
    return root, names, root / "ref_cache"


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted_run(ref, repo_root, sub_env, test_sets):
    root, names, ref_cache = ref
    cache = root / "crash_cache"
    proc = subprocess.Popen([sys.executable] + cli(repo_root, root, cache, test_sets), env=sub_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not list_entries(cache) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = list_entries(cache)
    assert 1 <= len(done) < N_PAIRS, f"the kill did not land mid-run ({len(done)} entries)"
    assert verify_cache(cache, done).ok  # whatever is there is complete
    r = run(cli(repo_root, root, cache, test_sets), sub_env)
    assert r.returncode == 0, r.stderr
    assert f"{len(done)} already cached, {N_PAIRS - len(done)} built" in r.stdout
    r = run([script(repo_root), "--root_dir", str(root), "--cache_dir", str(cache), "--verify"], sub_env)
    assert r.returncode == 0 and f"all {N_PAIRS} entries OK" in r.stdout, r.stderr
    assert_same_cache(cache, ref_cache)
    assert not [f for f in os.listdir(cache) if f.endswith(".tmp") and not f.startswith(".manifest")]


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(ref, repo_root, sub_env, test_sets):
    root, names, ref_cache = ref
    cache = root / "dist_cache"
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] + cli(repo_root, root, cache, test_sets)
    r = run(args, sub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shard 0/2: 3 images" in r.stdout and "shard 1/2: 2 images" in r.stdout
    assert f"all {N_PAIRS} entries OK" in r.stdout
    assert_same_cache(cache, ref_cache)


@pytest.mark.slow
def test_torchrun_failure_on_one_rank_stops_all(ref, repo_root, sub_env, test_sets, tmp_path, make_pairs):
    root = tmp_path / "data"
    names = make_pairs(root, 2, seed=5)
    (root / "Ir" / f"{names[1]}.png").write_bytes(b"not a png")   # rank 1's only image
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] + \
        cli(repo_root, root, root / "c", test_sets, "--dist_timeout", "120")
    t0 = time.time()
    r = run(args, sub_env, timeout=240)
    assert r.returncode != 0
    assert "not a readable image" in r.stderr and "1 of 2 ranks failed" in r.stderr
    assert time.time() - t0 < 200
    assert list_entries(root / "c") == [names[0]]  # rank 0's work is kept for the next run


@pytest.mark.slow
def test_cli_errors_verify_and_stats(ref, main, test_sets, tmp_path, capsys):
    root, names, ref_cache = ref
    base = ["--root_dir", str(root), "--no_progress"]
    assert main(base + ["--sam_checkpoint", str(tmp_path / "missing.pth")]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {tmp_path / 'missing.pth'}: SAM checkpoint not found"]
    (tmp_path / "bad.pth").write_bytes(b"junk")
    assert main(base + ["--sam_checkpoint", str(tmp_path / "bad.pth"), "--cache_dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "not a readable PyTorch checkpoint" in err and len(err.strip().splitlines()) == 1
    assert main(base + ["--cache_dir", str(tmp_path / "c")]) == 1
    assert "give --sam_checkpoint" in capsys.readouterr().err
    assert main(base + ["--shard", "3/2", "--sam_checkpoint", "none"]) == 1
    assert "need 0 <= i < n" in capsys.readouterr().err
    # a cache made with other settings is refused before any work
    assert main(cli(Path("."), root, ref_cache, test_sets, "--set", "generator.points_per_side=3")[1:]) == 1
    assert "points_per_side: cache 2 vs now 3" in capsys.readouterr().err
    # resuming a complete cache builds nothing and needs no SAM
    assert main(cli(Path("."), root, ref_cache, test_sets)[1:]) == 0
    assert f"{N_PAIRS} already cached, 0 built" in capsys.readouterr().out
    # --verify names missing and bad entries
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ref_cache.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / f"{names[0]}.npz").unlink()
    (broken / f"{names[1]}.npz").write_bytes(b"junk")
    assert main(base + ["--cache_dir", str(broken), "--verify"]) == 1
    err = capsys.readouterr().err
    assert f"missing: {names[0]}" in err and f"bad: {names[1]}" in err and "1 missing, 1 bad" in err
    assert main(base + ["--cache_dir", str(tmp_path / "nothing"), "--verify"]) == 1
    assert "no manifest" in capsys.readouterr().err
    assert main(base + ["--cache_dir", str(ref_cache), "--stats"]) == 0
    out = capsys.readouterr().out
    assert f"entries: {N_PAIRS}" in out and "bytes on disk" in out and "release single pickle" in out
