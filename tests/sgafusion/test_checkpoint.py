"""SGAFusion weights reload with weights_only=True, strictly, with one-line errors."""
from __future__ import annotations

import pytest
import torch

from models.checkpoint import CheckpointError
from models.sgafusion.build import build_cue, build_net, cue_state_dict, load_cue, load_cue_state, load_net

from .tiny import CUE_DIM, TINY_CLIP, images, tiny_cue


def test_net_roundtrip(tmp_path, single_thread):
    net = build_net({"cue_dim": CUE_DIM}).eval()
    path = tmp_path / "net.pt"
    torch.save({"net": net.state_dict(), "epoch": 3}, str(path))
    assert isinstance(torch.load(str(path), weights_only=True)["net"], dict)
    again = load_net(path, {"cue_dim": CUE_DIM})
    vi, ir = images(1, 16, 16)
    cue, tokens = torch.rand(1, CUE_DIM), torch.rand(1, 3, CUE_DIM)
    with torch.no_grad():
        assert torch.equal(net(vi, ir, cue, tokens)[1], again(vi, ir, cue, tokens)[1])


def test_variant_mismatch_names_the_keys(tmp_path):
    path = tmp_path / "release.pt"
    torch.save(build_net({"variant": "release", "cue_dim": CUE_DIM}).state_dict(), str(path))
    with pytest.raises(CheckpointError, match=r"release.pt: .*missing keys: .*cue_gate"):
        load_net(path, {"variant": "working", "cue_dim": CUE_DIM})


def test_shape_mismatch(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(build_net({"variant": "release"}).state_dict(), str(path))
    with pytest.raises(CheckpointError, match="shape mismatch for seg_head.weight"):
        load_net(path, {"variant": "release", "num_classes": 5})


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(build_net({"variant": "release"}), str(path))  # the release saves whole modules
    with pytest.raises(CheckpointError, match="whole.pth: .*pickled Python object"):
        load_net(path, {"variant": "release"})


def test_unknown_config_key():
    with pytest.raises(ValueError, match="unknown keys"):
        build_net({"varient": "release"})


def test_cue_roundtrip_trained_tensors_only(tmp_path, single_thread):
    cue = tiny_cue()
    with torch.no_grad():
        for name, p in cue.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    state = cue_state_dict(cue)
    assert all(k.startswith("head.") or "lora_" in k for k in state)
    path = tmp_path / "cue.pt"
    torch.save({"cue": state}, str(path))
    section = {"tiny": dict(TINY_CLIP), "hidden": CUE_DIM}
    again = load_cue(path, section)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(cue.eval()(x).tokens, again(x).tokens)


def test_cue_missing_lora_is_an_error(tmp_path):
    cue = tiny_cue()
    state = {k: v for k, v in cue_state_dict(cue).items() if "lora_" not in k}
    with pytest.raises(CheckpointError, match="cue.pt: .*missing keys: .*lora_"):
        load_cue_state(tiny_cue(), state, tmp_path / "cue.pt")


def test_release_head_keys_load(tmp_path):
    """A bare fc1/fc2 head (the release classifier's own key names) loads into the head."""
    cue = build_cue({"tiny": dict(TINY_CLIP), "hidden": CUE_DIM}, "release")
    head = {k: v + 1 for k, v in cue.head.state_dict().items()}  # fc1.weight, ..., fc2.bias
    load_cue_state(cue, head, "head.pt")
    assert torch.equal(cue.head.fc2.bias, head["fc2.bias"])


def test_combined_checkpoint_roundtrip(tmp_path, single_thread):
    from models.sgafusion.build import load_sgafusion, save_sgafusion

    net, cue = build_net({"cue_dim": CUE_DIM}).eval(), tiny_cue().eval()
    path = tmp_path / "sgafusion.pt"
    save_sgafusion(path, net, cue, include_cue_base=True, meta={"epoch": 2})
    obj = torch.load(str(path), weights_only=True)
    assert obj["variant"] == "working" and obj["epoch"] == 2
    net2, cue2 = load_sgafusion(path, {"cue_dim": CUE_DIM}, {"tiny": dict(TINY_CLIP), "hidden": CUE_DIM})
    vi, ir = images(1, 16, 16)
    from models.sgafusion.inference import fuse

    assert torch.equal(fuse(net, cue, vi, ir), fuse(net2, cue2, vi, ir))
