"""Inference engines: BatchNorm folding, the folded network, and reference == fast == ONNX on random and real pairs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from data.colour import fused_to_bgr8
from data.imageio import read_ir, read_vis
from models.checkpoint import load_student
from models.engines import (ENGINE_NAMES, EngineError, FoldedStudent, OnnxEngine, build_engine, export_student_onnx,
                            fold_batchnorm, resolve_engine_name)
from models.inference import fuse_padded
from models.student import Student


def random_student(seed: int = 0) -> Student:
    """A student whose BatchNorms have non-trivial statistics and affine parameters (so folding matters)."""
    torch.manual_seed(seed)
    model = Student()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.2, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        model.final_decoder[0].weight.mul_(20)  # spread the output over many grey levels
    return model.eval()


@pytest.fixture(scope="module")
def student():
    return random_student()


@pytest.fixture(scope="module")
def release(shared_dir):
    return load_student(shared_dir / "sage_reference" / "checkpoints" / "checkpoints.pt")


@pytest.fixture(scope="module")
def real_crop(shared_dir):
    """Y (1, 1, 96, 136), IR, and VIS chroma (2, 96, 136) cropped from the first released test pair."""
    d = shared_dir / "sage_reference" / "data" / "test"
    vis, _ = read_vis(d / "Vis" / "00000.png")
    ir = read_ir(d / "Ir" / "00000.png")
    r, c = slice(300, 396), slice(400, 536)
    y = torch.from_numpy(np.ascontiguousarray(vis[0, r, c]))[None, None]
    return y, torch.from_numpy(np.ascontiguousarray(ir[r, c]))[None, None], torch.from_numpy(np.ascontiguousarray(vis[1:, r, c]))


def grey_diff(a: torch.Tensor, b: torch.Tensor, crcb=None) -> int:
    """Largest difference in grey levels between the 8-bit outputs of two fused (1, 1, H, W) tensors."""
    a8, b8 = fused_to_bgr8(a[0].float(), crcb), fused_to_bgr8(b[0].float(), crcb)
    return int(np.abs(a8.astype(int) - b8.astype(int)).max())


def test_fold_batchnorm_equals_conv_then_bn():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(5, 7, 3, padding=1), nn.BatchNorm2d(7)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.1, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 5, 11, 13)
    w, b = fold_batchnorm(conv, bn)
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.conv2d(x, w, b, padding=1), bn(conv(x)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(w, conv.weight)  # folding changed something


@pytest.mark.parametrize("fused_ops", [True, False])
def test_folded_student_features_match_to_1e5(student, release, fused_ops):
    g = torch.Generator().manual_seed(2)
    y, ir = torch.rand(2, 1, 40, 56, generator=g), torch.rand(2, 1, 40, 56, generator=g)
    for model in (student, release):
        folded = FoldedStudent.from_student(model, fused_ops=fused_ops)
        with torch.inference_mode():
            ref, ref_taps = model(y, ir)
            out, taps = folded.features(y, ir)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert len(taps) == 5
        for t, r in zip(taps, ref_taps):
            assert t.shape == r.shape
            torch.testing.assert_close(t, r, rtol=1e-5, atol=1e-5)


def engines_for(model, tmp_path):
    path = export_student_onnx(model, tmp_path / "s.onnx")
    return {"reference": build_engine("reference", model), "fast": build_engine("fast", model),
            "onnx-file": build_engine("onnx", onnx_path=str(path)), "onnx-memory": build_engine("onnx", model)}


@pytest.fixture(scope="module")
def engines(student, tmp_path_factory):
    return engines_for(student, tmp_path_factory.mktemp("onnx"))


def test_engines_agree_on_random_inputs(engines):
    g = torch.Generator().manual_seed(3)
    y, ir = torch.rand(3, 1, 48, 64, generator=g), torch.rand(3, 1, 48, 64, generator=g)
    ref = engines["reference"](y, ir)
    assert ref.shape == (3, 1, 48, 64) and ref.std() > 0.05
    for name, engine in engines.items():
        out = engine(y, ir)
        assert out.shape == ref.shape, name
        assert (out - ref).abs().max() < 1e-4, name
        assert grey_diff(out[:1], ref[:1]) <= 1, name


def test_engines_agree_on_a_real_crop(release, real_crop, tmp_path):
    y, ir, crcb = real_crop
    engines = engines_for(release, tmp_path)
    ref = fuse_padded(engines["reference"], y, ir)
    for name, engine in engines.items():
        out = fuse_padded(engine, y, ir)
        assert grey_diff(out, ref, crcb) <= 1, name
        assert (out - ref).abs().max() < 1e-4, name


@pytest.mark.parametrize("h,w", [(13, 17), (1, 1), (5, 3), (30, 7), (2, 64), (101, 39)])
def test_odd_sizes_through_every_engine(engines, h, w):
    g = torch.Generator().manual_seed(h * 1000 + w)
    y, ir = torch.rand(1, 1, h, w, generator=g), torch.rand(1, 1, h, w, generator=g)
    ref = fuse_padded(engines["reference"], y, ir)
    assert ref.shape == (1, 1, h, w)
    for name, engine in engines.items():
        out = fuse_padded(engine, y, ir)
        assert out.shape == (1, 1, h, w), name
        assert (out - ref).abs().max() < 1e-4, name


def test_default_engine_reproduces_a_released_output_at_full_size(release, shared_dir):
    """The engine test.py picks by default, on one full 1024x768 released pair, vs the authors' PNG."""
    import cv2
    d = shared_dir / "sage_reference"
    vis, _ = read_vis(d / "data" / "test" / "Vis" / "00001.png")
    ir = read_ir(d / "data" / "test" / "Ir" / "00001.png")
    engine = build_engine("auto", release)
    out = fuse_padded(engine, torch.from_numpy(vis[None, 0:1]), torch.from_numpy(ir)[None, None])
    ours = fused_to_bgr8(out[0], torch.from_numpy(vis[1:])).astype(int)
    theirs = cv2.imread(str(d / "result" / "test" / "00001.png")).astype(int)
    diff = np.abs(ours - theirs)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_auto_engine_choice_and_errors(student, tmp_path):
    assert resolve_engine_name("auto", "cpu") == "fast"
    assert resolve_engine_name("auto", "cuda") == "fast"
    assert resolve_engine_name("reference", "cpu") == "reference"
    assert set(ENGINE_NAMES) >= {"auto", "reference", "fast", "compile", "onnx"}
    with pytest.raises(EngineError, match="unknown engine"):
        build_engine("turbo", student)
    with pytest.raises(EngineError, match="no such ONNX file"):
        OnnxEngine(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="not a loadable ONNX model"):
        OnnxEngine(bad)
    with pytest.raises(EngineError, match="needs the student weights"):
        build_engine("fast", None)
