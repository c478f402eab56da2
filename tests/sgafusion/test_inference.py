"""SGAFusion's fusion entry point: the release's pre/post-processing, any size, grey and 3-channel inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models.checkpoint import read_state_dict
from models.sgafusion.cue import Cue
from models.sgafusion.inference import fuse, ir_to_gray, to_uint8_release
from models.sgafusion.network import SGAFusionNet

from .tiny import images, tiny_cue, tiny_net


def test_ir_to_gray_matches_pil_convert_L():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    rgb[0, :4] = [[255, 255, 255], [0, 0, 0], [1, 2, 3], [128, 128, 127]]
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    ours = ir_to_gray(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    assert ours.shape == (1, 1, 13, 17)
    assert np.array_equal((ours[0, 0] * 255).round().to(torch.uint8).numpy(), expected)


def test_release_uint8_is_truncation():
    x = torch.tensor([-1.0, 0.0, 0.5, 0.9999, 1.0, 3.0]).view(1, 1, 1, 6)
    assert to_uint8_release(x).flatten().tolist() == [0, 0, 127, 254, 255, 255]


def test_fixture_end_to_end(shared_dir, single_thread):
    """Fixture net + cue through fuse() and the release's 8-bit output equal the fixture's picture."""
    folder = shared_dir / "fixtures" / "sgafusion_release"
    fx = torch.load(str(folder / "net.pt"), weights_only=True)
    net = SGAFusionNet("release")
    net.load_state_dict(read_state_dict(folder / "net.pt"), strict=True)
    vi = fx["inputs"]["vi_uint8"].permute(2, 0, 1)[None].float() / 255
    ir_rgb = fx["inputs"]["ir_uint8"][None, None].float().expand(-1, 3, -1, -1) / 255  # IR saved as RGB
    cue = Cue(fx["inputs"]["feature"], torch.zeros(1, 9), None, torch.zeros(1, 512))
    fused = fuse(net.eval(), None, vi, ir_rgb, cue=cue)
    assert fused.min() >= 1e-5 and fused.max() <= 1
    got = to_uint8_release(fused)[0].permute(1, 2, 0)
    diff = (got.int() - fx["outputs"]["fused_uint8"].int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() <= 1e-3


@pytest.mark.parametrize("h,w", [(23, 37), (32, 32)])
def test_fuse_shapes_grey_visible_and_rgb_ir(h, w, single_thread):
    net, cue = tiny_net("working").eval(), tiny_cue().eval()
    vi, ir = images(2, h, w)
    grey_vi = vi[:, :1].expand(-1, 3, -1, -1)
    out = fuse(net, cue, grey_vi, ir.expand(-1, 3, -1, -1))
    assert out.shape == (2, 3, h, w) and out.min() >= 1e-5 and out.max() <= 1
    # the same IR as one channel or three identical channels gives the same fusion (up to 8-bit rounding)
    out1 = fuse(net, cue, grey_vi, ir)
    assert (out - out1).abs().max() < 0.05


def test_bad_pairs():
    net = tiny_net("release").eval()
    vi, ir = images(1, 16, 16)
    cue = Cue(torch.rand(1, 32), torch.zeros(1, 9), None, torch.zeros(1, 16))
    with pytest.raises(ValueError, match="differ"):
        fuse(net, None, vi, ir[..., :8], cue=cue)
    with pytest.raises(ValueError, match="RGB"):
        fuse(net, None, vi[:, :1], ir, cue=cue)
    with pytest.raises(ValueError, match="IR must be"):
        fuse(net, None, vi, torch.rand(1, 2, 16, 16), cue=cue)
