"""Checkpoint loading: the release file, wrapped/prefixed variants, and one-line errors for wrong files."""
from __future__ import annotations

import zipfile
from collections import OrderedDict

import pytest
import torch

from models.checkpoint import CheckpointError, load_student, load_weights, read_state_dict, strip_prefix
from models.student import Student


@pytest.fixture(scope="module")
def release(shared_dir):
    return shared_dir / "sage_reference" / "checkpoints" / "checkpoints.pt"


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(0)
    model = Student()
    with torch.no_grad():  # non-default BN statistics so a wrong load would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.state_dict()


def assert_same_weights(model: torch.nn.Module, state):
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), state[k].cpu()), k


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_release_file_is_cuda_saved_and_loads_on_cpu(release):
    with zipfile.ZipFile(release) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"cuda" in pkl  # the file really was saved from CUDA: the test below means something
    model = load_student(release)
    assert not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    ref = torch.load(release, map_location="cpu", weights_only=True)
    assert_same_weights(model, ref)


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "student", "module.", "student+module."])
def test_wrapped_and_prefixed_checkpoints(tmp_path, weights, wrap):
    state = weights
    if "module." in wrap:
        state = OrderedDict((f"module.{k}", v) for k, v in state.items())
    obj = state if wrap in ("bare", "module.") else {wrap.split("+")[0]: state, "epoch": 3, "lr": 1e-4}
    path = tmp_path / "ck.pt"
    torch.save(obj, path)
    assert_same_weights(load_student(path), weights)


def test_strip_prefix_only_touches_leading_module():
    out = strip_prefix({"module.a.module.b": torch.zeros(1), "c": torch.ones(1)})
    assert list(out) == ["a.module.b", "c"]


def test_pickled_objects_are_refused_weights_only(tmp_path, weights):
    """weights_only=True: a checkpoint that needs arbitrary unpickling is not executed."""
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": weights, "obj": zipfile.ZipInfo("x")}, path)
    with pytest.raises(CheckpointError) as exc:
        read_state_dict(path)
    assert one_line(exc) == (f"{path}: not a readable PyTorch checkpoint (it holds a pickled Python object "
                             "(zipfile.ZipInfo) that weights_only loading refuses; re-save just the state_dict)")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as exc:
        load_student(tmp_path / "nope.pt")
    assert one_line(exc) == f"{tmp_path / 'nope.pt'}: no such checkpoint file"


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
                     .numpy().tobytes())
    with pytest.raises(CheckpointError) as exc:
        load_student(path)
    assert one_line(exc) == f"{path}: not a readable PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"


def test_empty_file_and_directory(tmp_path):
    (tmp_path / "empty.pt").touch()
    with pytest.raises(CheckpointError) as exc:
        load_student(tmp_path / "empty.pt")
    assert one_line(exc) == f"{tmp_path / 'empty.pt'}: not a readable PyTorch checkpoint (empty file)"
    with pytest.raises(CheckpointError) as exc:
        load_student(tmp_path)
    assert one_line(exc) == f"{tmp_path}: is a directory, not a checkpoint file"


def test_truncated_release(tmp_path, release):
    path = tmp_path / "truncated.pt"
    path.write_bytes(release.read_bytes()[:200_000])
    with pytest.raises(CheckpointError) as exc:
        load_student(path)
    assert one_line(exc) == f"{path}: not a readable PyTorch checkpoint (a truncated or corrupt zip archive)"


def test_teacher_like_weights_name_missing_and_unexpected_keys(tmp_path):
    teacher = {"encoder_img1.0.weight": torch.zeros(16, 2, 3, 3), "encoder_img1.0.bias": torch.zeros(16),
               "encoder_mask1_vi.0.weight": torch.zeros(16, 4, 3, 3), "decoder2.6.weight": torch.zeros(1, 16, 3, 3),
               "decoder2.6.bias": torch.zeros(1)}
    path = tmp_path / "teacher.pt"
    torch.save(teacher, path)
    with pytest.raises(CheckpointError) as exc:
        load_student(path)
    msg = one_line(exc)
    assert msg.startswith(f"{path}: not a SAGE student checkpoint")
    assert "missing keys: module1.0.weight, module1.0.bias" in msg and "(121 in all)" in msg
    assert "unexpected keys: encoder_img1.0.weight" in msg and "(5 in all)" in msg


def test_shape_mismatch(tmp_path):
    path = tmp_path / "narrow.pt"
    torch.save(Student(width=16).state_dict(), path)
    with pytest.raises(CheckpointError) as exc:
        load_student(path)
    assert one_line(exc).startswith(f"{path}: shape mismatch for module1.0.weight: file has (16, 2, 3, 3)")


@pytest.mark.parametrize("obj,found", [([1, 2], "list"), ({"epoch": 3, "optimizer": {}}, "a dict with keys"),
                                       ({}, "a dict with keys")])
def test_no_weights_inside(tmp_path, obj, found):
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as exc:
        read_state_dict(path)
    msg = one_line(exc)
    assert msg.startswith(f"{path}: no weights found") and found in msg


def test_load_weights_keeps_model_on_partial_keys(weights):
    model = Student()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    partial = {k: v for k, v in weights.items() if not k.startswith("module5")}
    with pytest.raises(CheckpointError, match="missing keys: module5.0.weight"):
        load_weights(model, partial, "x.pt", what="SAGE student")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded
