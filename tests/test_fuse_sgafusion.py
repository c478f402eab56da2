"""test.py --method sgafusion end to end on tiny generated pairs, with a tiny random SGAFusion checkpoint
written here (and the shipped demo checkpoint): one image per pair, grey visible and 3-channel IR,
bad pairs, resume, grids, equality with the plain fuse() and with the 'sgafusion' fuser."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.sgafusion.build import build_cue, build_net, save_sgafusion
from models.sgafusion.engine import load_sgafusion_file
from models.sgafusion.inference import fuse

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"variant": "working", "num_classes": 5, "cue_dim": 16, "dehaze_pool": 2}
CUE = {"tiny": {"embed_dim": 16, "width": 32, "layers": 1, "patch_size": 16, "image_size": 32, "seed": 0},
       "hidden": 16, "num_classes": 3}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net, cue = build_net(MODEL), build_cue(CUE, "working")
    with torch.no_grad():
        net.fusion_head.bias.fill_(0.5)
        net.fusion_head.weight.mul_(20)  # spread the output so rounding and colour show
    path = tmp_path_factory.mktemp("sga") / "tiny_sgafusion.pt"
    save_sgafusion(path, net, cue, include_cue_base=True, meta={"model_config": MODEL, "cue_config": CUE})
    return path


def write_pair(root: Path, name: str, h=20, w=28, seed=0, vis_channels=3, ir_channels=1):
    rng = np.random.default_rng(seed)
    for sub in ("Ir", "Vis"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    vis = rng.integers(0, 256, (h, w, vis_channels) if vis_channels > 1 else (h, w), dtype=np.uint8)
    ir = rng.integers(0, 256, (h, w, ir_channels) if ir_channels > 1 else (h, w), dtype=np.uint8)
    cv2.imwrite(str(root / "Vis" / f"{name}.png"), vis)
    cv2.imwrite(str(root / "Ir" / f"{name}.png"), ir)
    return vis, ir


@pytest.fixture
def run(cli, ckpt, capsys):
    def _run(*flags):
        argv = ["--method", "sgafusion", "--device", "cpu", "--workers", "0", *map(str, flags)]
        if "--checkpoint" not in argv:
            argv += ["--checkpoint", str(ckpt)]
        capsys.readouterr()
        rc = cli.main(argv)
        out, err = capsys.readouterr()
        return rc, out, err
    return _run


def expected(ckpt: Path, vis_bgr: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """The plain fuse() on the same pixels, rounded: uint8 BGR (or grey luma for a grey visible image)."""
    net, cue, _ = load_sgafusion_file(ckpt)
    colour = vis_bgr.ndim == 3
    rgb = vis_bgr[:, :, ::-1] if colour else np.repeat(vis_bgr[:, :, None], 3, axis=2)
    v = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    i = (torch.from_numpy(ir[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255)[None] if ir.ndim == 3
         else torch.from_numpy(ir.astype(np.float32) / 255)[None, None])
    out = fuse(net, cue, v, i)[0]
    if not colour:
        out = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2])[None]
    arr = (out * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return arr[:, :, ::-1] if colour else arr[:, :, 0]


def test_fuses_each_pair_like_the_plain_fuse(run, ckpt, tmp_path):
    src = tmp_path / "in"
    pairs = {n: write_pair(src, n, seed=k) for k, n in enumerate(("a", "b"))}
    rc, out, err = run("--img_dir", src, "--save_path", tmp_path / "out", "--grid")
    assert rc == 0 and "fused 2 pair(s), 0 failed" in out and "SGAFusion (working variant)" in out, out + err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a.png", "b.png"]
    for name, (vis, ir) in pairs.items():
        got = cv2.imread(str(tmp_path / "out" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert got.shape == (20, 28, 3) and got.std() > 5
        np.testing.assert_array_equal(got, expected(ckpt, vis, ir))
        grid = cv2.imread(str(tmp_path / "out" / "grid" / f"{name}.png"))
        assert grid.shape == (20, 3 * 28 + 8, 3)
        np.testing.assert_array_equal(grid[:, -28:], got)


def test_grey_visible_and_colour_ir(run, ckpt, tmp_path):
    src = tmp_path / "in"
    vis_g, ir_g = write_pair(src, "grey_vis", seed=3, vis_channels=1)
    vis_c, ir_c = write_pair(src, "colour_ir", seed=4, ir_channels=3)
    rc, out, err = run("--img_dir", src, "--save_path", tmp_path / "out")
    assert rc == 0 and "fused 2 pair(s)" in out, out + err
    grey = cv2.imread(str(tmp_path / "out" / "grey_vis.png"), cv2.IMREAD_UNCHANGED)
    assert grey.shape == (20, 28)  # a grey visible image gives a grey output
    np.testing.assert_array_equal(grey, expected(ckpt, vis_g, ir_g))
    colour = cv2.imread(str(tmp_path / "out" / "colour_ir.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(colour, expected(ckpt, vis_c, ir_c))


def test_bad_pair_does_not_stop_the_others_and_outputs_are_kept(run, tmp_path):
    src = tmp_path / "in"
    write_pair(src, "good", seed=1)
    write_pair(src, "small", seed=2)
    cv2.imwrite(str(src / "Ir" / "small.png"), np.zeros((10, 10), np.uint8))  # size mismatch
    (src / "Vis" / "broken.png").write_bytes(b"not an image")
    cv2.imwrite(str(src / "Ir" / "broken.png"), np.zeros((20, 28), np.uint8))
    rc, out, _ = run("--img_dir", src, "--save_path", tmp_path / "out", "--batch_size", "3")
    assert rc == 1 and "fused 1 pair(s), 2 failed" in out
    assert "failed broken:" in out and "failed small:" in out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]
    before = (tmp_path / "out" / "good.png").stat().st_mtime_ns
    rc, out, _ = run("--img_dir", src, "--save_path", tmp_path / "out", "--tile", "16")
    assert "1 already in" in out and "--tile ignored" in out
    assert (tmp_path / "out" / "good.png").stat().st_mtime_ns == before


def test_batching_gives_the_same_images(run, tmp_path):
    src = tmp_path / "in"
    for k in range(3):
        write_pair(src, f"p{k}", seed=10 + k)
    assert run("--img_dir", src, "--save_path", tmp_path / "one")[0] == 0
    assert run("--img_dir", src, "--save_path", tmp_path / "three", "--batch_size", "3")[0] == 0
    for k in range(3):
        a = cv2.imread(str(tmp_path / "one" / f"p{k}.png"), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imread(str(tmp_path / "three" / f"p{k}.png"), cv2.IMREAD_UNCHANGED).astype(int)
        assert np.abs(a - b).max() <= 1  # batched float arithmetic may round differently by a level


def test_bad_checkpoint_is_one_line(run, tmp_path):
    src = tmp_path / "in"
    write_pair(src, "a")
    torch.save({"student": {}}, tmp_path / "not_sga.pt")
    for path, words in ((tmp_path / "missing.pt", "missing.pt"), (tmp_path / "not_sga.pt", "not an SGAFusion")):
        rc, _, err = run("--img_dir", src, "--save_path", tmp_path / "out", "--checkpoint", path)
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_fuser_matches_test_py(ckpt, tmp_path, run):
    from models.fusers import get_fuser
    src = tmp_path / "in"
    vis, ir = write_pair(src, "a", seed=7)
    assert run("--img_dir", src, "--save_path", tmp_path / "out")[0] == 0
    fused = get_fuser("sgafusion", str(ckpt))(np.ascontiguousarray(vis[:, :, ::-1]), ir)
    np.testing.assert_array_equal(fused[:, :, ::-1], cv2.imread(str(tmp_path / "out" / "a.png")))


def test_shipped_demo_checkpoint_loads_and_fuses(run, tmp_path):
    demo = ROOT / "checkpoints" / "sgafusion_demo.pt"
    if not demo.is_file():
        pytest.skip(f"{demo} is not in the checkout yet")
    assert demo.stat().st_size < 5 * 2 ** 20
    net, cue, info = load_sgafusion_file(demo)
    assert info["stage"] == "finetune" and net.variant == "working"
    src = tmp_path / "in"
    write_pair(src, "a", h=24, w=32)
    rc, out, err = run("--img_dir", src, "--save_path", tmp_path / "out", "--checkpoint", demo)
    assert rc == 0 and "the SGAFusion demo" in out, out + err
