"""test.py's speed features end to end: batching, loader workers, engines, tiling and torchrun fusion
give the same PNGs as the plain single-process run."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.engines import export_student_onnx
from tests.models.test_engines import random_student

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo" / "test"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    torch.save(random_student(3).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A folder of 7 pairs: five 40x56 frames, one 36x20 frame, one grey VIS, and one broken pair."""
    root = tmp_path_factory.mktemp("frames")
    (root / "Ir").mkdir()
    (root / "Vis").mkdir()
    rng = np.random.default_rng(0)
    sizes = {f"f{i}": (40, 56) for i in range(5)} | {"g_small": (36, 20), "h_grey": (40, 56)}
    for name, (h, w) in sizes.items():
        base = cv2.resize(rng.random((h // 4, w // 4, 4), dtype=np.float32), (w, h))
        cv2.imwrite(str(root / "Ir" / f"{name}.png"), (base[..., 0] * 255).astype(np.uint8))
        vis = (base[..., 1:] * 255).astype(np.uint8)
        cv2.imwrite(str(root / "Vis" / f"{name}.png"), vis[..., 0] if name == "h_grey" else vis)
    (root / "Ir" / "e_broken.png").write_bytes(b"not a png")
    cv2.imwrite(str(root / "Vis" / "e_broken.png"), np.zeros((40, 56, 3), np.uint8))
    return root


def fuse(cli, capsys, ckpt, src, out, *flags):
    capsys.readouterr()
    rc = cli.main(["--checkpoint", str(ckpt), "--img_dir", str(src), "--save_path", str(out), "--device", "cpu",
                   *map(str, flags)])
    return rc, capsys.readouterr().out


def pngs(folder):
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(Path(folder).glob("*.png"))}


def assert_same(a, b, levels=0):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert np.abs(a[name].astype(int) - b[name].astype(int)).max() <= levels, name


@pytest.fixture(scope="module")
def plain(cli, ckpt, frames, tmp_path_factory):
    """The plain run: fast engine, batch 1, no loader workers."""
    out = tmp_path_factory.mktemp("plain")
    rc = cli.main(["--checkpoint", str(ckpt), "--img_dir", str(frames), "--save_path", str(out), "--device", "cpu",
                   "--engine", "fast", "--batch_size", "1", "--workers", "0"])
    assert rc == 1  # the broken pair
    return pngs(out)


def test_batching_and_workers_equal_the_plain_run(cli, capsys, ckpt, frames, plain, tmp_path):
    assert len(plain) == 7 and plain["h_grey.png"].ndim == 2
    rc, stdout = fuse(cli, capsys, ckpt, frames, tmp_path / "b", "--engine", "fast", "--batch_size", "4", "--workers", "2")
    assert rc == 1
    assert "fused 7 pair(s)" in stdout and "1 failed" in stdout
    assert "failed e_broken:" in stdout and "e_broken.png" in stdout  # the reason names the file
    assert "batch 4, 2 loader worker(s)" in stdout
    assert_same(pngs(tmp_path / "b"), plain)


def test_every_engine_gives_the_same_pngs(cli, capsys, ckpt, frames, plain, tmp_path):
    onnx = export_student_onnx(random_student(3), tmp_path / "s.onnx")
    for flags in (["--engine", "reference"], ["--engine", "onnx", "--onnx", onnx], ["--engine", "auto"]):
        rc, stdout = fuse(cli, capsys, ckpt, frames, tmp_path / flags[1], *flags, "--batch_size", "3")
        assert rc == 1 and "fused 7 pair(s)" in stdout, stdout
        assert_same(pngs(tmp_path / flags[1]), plain, levels=1)


def test_tiling_gives_the_same_pngs(cli, capsys, ckpt, tmp_path):
    src = tmp_path / "big"
    (src / "Ir").mkdir(parents=True)
    (src / "Vis").mkdir()
    rng = np.random.default_rng(5)
    base = cv2.resize(rng.random((30, 40, 4), dtype=np.float32), (190, 150)) + 0.1 * rng.random((150, 190, 4), dtype=np.float32)
    cv2.imwrite(str(src / "Ir" / "big.png"), (base[..., 0].clip(0, 1) * 255).astype(np.uint8))
    cv2.imwrite(str(src / "Vis" / "big.png"), (base[..., 1:].clip(0, 1) * 255).astype(np.uint8))
    assert fuse(cli, capsys, ckpt, src, tmp_path / "whole", "--engine", "fast")[0] == 0
    whole = pngs(tmp_path / "whole")
    rc, stdout = fuse(cli, capsys, ckpt, src, tmp_path / "tiled", "--engine", "fast", "--tile", "96", "--overlap", "64")
    assert rc == 0 and "fused 1 pair(s)" in stdout
    assert_same(pngs(tmp_path / "tiled"), whole, levels=1)
    # automatic tiling above a pixel count (here: everything, with the default 1024-pixel tiles it is one tile)
    rc, _ = fuse(cli, capsys, ckpt, src, tmp_path / "auto", "--engine", "fast", "--tile_above", "100")
    assert rc == 0
    assert_same(pngs(tmp_path / "auto"), whole, levels=1)
    # too little overlap is visible: the comparison above can fail
    fuse(cli, capsys, ckpt, src, tmp_path / "seams", "--engine", "fast", "--tile", "32", "--overlap", "0")
    seams = pngs(tmp_path / "seams")["big.png"].astype(int)
    assert np.abs(seams - whole["big.png"].astype(int)).max() > 1


def test_onnx_engine_with_a_missing_file_exits_2(cli, capsys, ckpt, frames, tmp_path):
    rc = cli.main(["--checkpoint", str(ckpt), "--img_dir", str(frames), "--save_path", str(tmp_path / "o"),
                   "--engine", "onnx", "--onnx", str(tmp_path / "absent.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: {tmp_path / 'absent.onnx'}: no such ONNX file") and err.count("\n") == 1


@pytest.mark.slow
def test_torchrun_fusion_equals_single_process_byte_for_byte(ckpt, tmp_path):
    """`python -m torch.distributed.run --nproc_per_node=2 test.py` on data/demo/test vs a plain run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    common = ["test.py", "--checkpoint", str(ckpt), "--img_dir", str(DEMO), "--device", "cpu"]
    single = subprocess.run([sys.executable, *common, "--save_path", str(tmp_path / "single")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert single.returncode == 0, single.stderr[-2000:]
    dist = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *common, "--save_path", str(tmp_path / "dist")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert dist.returncode == 0, dist.stderr[-2000:]
    summaries = [line for line in dist.stdout.splitlines() if line.startswith("fused ")]
    assert len(summaries) == 1, dist.stdout  # printed once, by rank 0, with the counts of both ranks
    assert summaries[0].startswith("fused 3 pair(s), 0 failed")
    assert "2 processes" in dist.stdout
    names = sorted(p.name for p in (tmp_path / "single").glob("*.png"))
    assert names == sorted(p.name for p in (tmp_path / "dist").glob("*.png")) and len(names) == 3
    for name in names:
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "dist" / name).read_bytes(), name


@pytest.mark.slow
def test_torchrun_failures_are_gathered_not_hung(ckpt, frames, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "test.py", "--checkpoint", str(ckpt), "--img_dir", str(frames), "--device", "cpu",
                           "--save_path", str(tmp_path / "o"), "--workers", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0  # the broken pair fails the run on every rank
    assert proc.stdout.count("fused 7 pair(s), 1 failed") == 1, proc.stdout
    assert proc.stdout.count("failed e_broken:") == 1
    assert len(list((tmp_path / "o").glob("*.png"))) == 7


def test_evaluate_scores_what_was_fused(cli, capsys, ckpt, frames, tmp_path):
    rc, stdout = fuse(cli, capsys, ckpt, frames, tmp_path / "e", "--evaluate", "--metrics", "EN,SD")
    assert rc == 1  # the broken pair still fails the run
    assert "evaluate: Scored 7 images" in stdout
    line = next(l for l in stdout.splitlines() if "EN" in l and "SD" in l and "images:" in l)
    en = float(line.split("EN")[1].split()[1])
    assert 0 < en < 8
    assert (tmp_path / "e" / "metrics" / "summary.csv").is_file()
    rc = cli.main(["--checkpoint", str(ckpt), "--img_dir", str(frames), "--save_path", str(tmp_path / "x"),
                   "--evaluate", "--metrics", "EN,NOPE"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown metric 'NOPE'" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()  # nothing fused before the bad flag was found


def test_export_onnx_script_writes_a_matching_model(ckpt, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("export_onnx_script", ROOT / "scripts" / "export_onnx.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "m" / "student.onnx"
    assert script.main(["--checkpoint", str(ckpt), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert out.is_file() and "dynamic batch/height/width" in line and "(ok)" in line
    assert script.main(["--checkpoint", str(tmp_path / "absent.pt"), "--out", str(out)]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_prints_its_table_and_final_line(ckpt):
    proc = subprocess.run([sys.executable, "scripts/benchmark.py", "--checkpoint", str(ckpt), "--size", "64x48",
                           "--engines", "reference,fast,onnx", "--repeats", "1", "--no_memory"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert any(l.startswith("| fast |") for l in lines) and any(l.startswith("| onnx |") for l in lines)
    last = lines[-1].split()
    assert last[0] == "speedup" and last[1].endswith("x") and float(last[1][:-1]) > 0
    assert last[2] == "maxdiff" and int(last[3]) <= 1


def test_keep_freed_memory_toggles_on_linux():
    from utils.memory import keep_freed_memory
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc malloc setting")
    assert keep_freed_memory(True) is True
    assert keep_freed_memory(False) is True


def load_benchmark_script():
    spec = importlib.util.spec_from_file_location("benchmark_script", ROOT / "scripts" / "benchmark.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_benchmark_uses_checkpoints_pt_and_says_which_weights(ckpt, tmp_path, monkeypatch, capsys):
    bench = load_benchmark_script()
    local = tmp_path / "checkpoints" / "checkpoints.pt"
    local.parent.mkdir()
    local.write_bytes(ckpt.read_bytes())
    monkeypatch.setattr(bench, "LOCAL_CKPT", local)
    monkeypatch.setattr(bench, "RELEASE_CKPT", tmp_path / "absent.pt")
    argv = ["--size", "32x24", "--engines", "reference,fast", "--repeats", "1", "--no_memory", "--device", "cpu"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert f"  weights: {local} (the authors' file in checkpoints/)\n" in out
    assert out.strip().splitlines()[-1].endswith("maxdiff 0")
    # the timed module really holds those weights (and not the random fallback's)
    from models.checkpoint import load_student
    y, ir = torch.rand(1, 1, 24, 32), torch.rand(1, 1, 24, 32)
    with torch.no_grad():
        want = load_student(ckpt)(y, ir)[0]
        runners, _ = bench.student_runners(["reference"], None, torch.device("cpu"), tmp_path)
        assert torch.allclose(runners["reference"](y, ir), want, atol=1e-6)

    monkeypatch.setattr(bench, "LOCAL_CKPT", tmp_path / "none.pt")
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "  weights: RANDOM weights: no --checkpoint and no " in out and "scripts/download_weights.py" in out
    with torch.no_grad():
        runners, _ = bench.student_runners(["reference"], None, torch.device("cpu"), tmp_path)
        assert (runners["reference"](y, ir) - want).abs().max() > 1e-3
    assert bench.pick_checkpoint(str(ckpt)) == (ckpt, f"{ckpt} (--checkpoint)")


def test_benchmark_help_matches_the_default_engine(capsys):
    from models.engines import resolve_engine_name
    bench = load_benchmark_script()
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    default = resolve_engine_name("auto", "cpu")
    assert default == "fast"
    assert f"default: {default}, the engine of test.py's default --engine auto" in text
    assert "onnx on CPU" not in text and "default engines" not in text
    assert "checkpoints/checkpoints.pt when present" in text
