"""The 2-block SAM ViT-B feature extractor of SAM/features.py."""
from __future__ import annotations


import pytest
import torch

from SAM.features import build_sam_feature_extractor
from SAM.model import CheckpointError


@pytest.fixture(scope="module")
def extractor():
    with pytest.warns(UserWarning, match="RANDOM weights"):
        return build_sam_feature_extractor(None)


def test_shapes_frozen_and_grad_to_input(extractor):
    x = torch.rand(2, 1, 64, 80, requires_grad=True)
    f1, f2 = extractor(x)
    assert f1.shape == f2.shape == (2, 768, 4, 5)
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.training
    (f2.square().mean() + f1.mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_windows_pad_for_sizes_over_one_window(extractor):
    # 16 x 30 tokens: two 14-token windows across, padded; rows beyond 14 too
    f1, f2 = extractor(torch.rand(1, 1, 256, 480))
    assert f1.shape == (1, 768, 16, 30) and torch.isfinite(f2).all()


def test_gray_is_repeated_to_three_channels(extractor):
    x = torch.rand(1, 1, 32, 48)
    a = extractor(x)
    b = extractor(x.repeat(1, 3, 1, 1))
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)


def test_portrait_resized_so_long_side_equals_width(extractor):
    f1, _ = extractor(torch.rand(1, 1, 128, 64))   # H > W -> 64 x 32 -> 4 x 2 tokens
    assert f1.shape == (1, 768, 4, 2)


def test_no_absolute_position_embedding(extractor):
    # a translation-invariant check: with no abs pos and zero-initialised rel pos, one constant window
    # of tokens gives one feature vector everywhere inside it
    f1, _ = extractor(torch.full((1, 1, 64, 64), 0.5))
    flat = f1[0].flatten(1)
    torch.testing.assert_close(flat, flat[:, :1].expand_as(flat))


def test_loads_full_sam_state_dict_with_prefix(tmp_path, random_sam):
    path = tmp_path / "sam_vit_b.pth"
    torch.save(random_sam.state_dict(), path)
    ext = build_sam_feature_extractor(str(path))
    enc = random_sam.image_encoder
    torch.testing.assert_close(ext.patch_embed.proj.weight, enc.patch_embed.proj.weight)
    torch.testing.assert_close(ext.blocks[1].mlp.lin2.bias, enc.blocks[1].mlp.lin2.bias)
    torch.testing.assert_close(ext.blocks[0].attn.rel_pos_h, enc.blocks[0].attn.rel_pos_h)
    # same as SAM's own encoder run on its first two blocks without pos_embed
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        t = enc.patch_embed(x)
        t = enc.blocks[1](enc.blocks[0](t))
        ours = ext(x)[1]
    torch.testing.assert_close(ours, t.permute(0, 3, 1, 2))
    # encoder-only file (no prefix) too; other encoder keys (pos_embed, later blocks) are ignored
    enc_only = {k: v for k, v in enc.state_dict().items() if k.startswith(("patch_embed.", "blocks.0.", "blocks.1.", "blocks.2.", "pos_embed"))}
    torch.save(enc_only, tmp_path / "enc.pth")
    ext2 = build_sam_feature_extractor(str(tmp_path / "enc.pth"))
    torch.testing.assert_close(ext2.blocks[1].attn.qkv.weight, enc.blocks[1].attn.qkv.weight)


def test_bad_checkpoints_fail_with_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        build_sam_feature_extractor(str(tmp_path / "missing.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no SAM image-encoder weights"):
        build_sam_feature_extractor(str(tmp_path / "other.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        build_sam_feature_extractor(str(tmp_path / "junk.pth"))


def test_contrast_loss_runs_on_the_extractor(extractor):
    """losses/contrast.py calls extractor(x) -> sequence of maps; the loss gets a gradient."""
    from losses.contrast import contrast_loss
    torch.manual_seed(0)
    out = torch.rand(2, 1, 32, 48, requires_grad=True)
    y, ir, ref = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48)
    vm, im = torch.rand(2, 2, 32, 48), torch.rand(2, 2, 32, 48)
    loss = contrast_loss(out, y, ir, ref, vm, im, extractor)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and out.grad.abs().sum() > 0
