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


def test_release_resize_is_plain_bilinear_with_align_corners(extractor):
    """sam.feature_resize: release reproduces the release's portrait preprocessing; the default antialiases."""
    from SAM.features import SAMFeatureExtractor, resize_long_side_to_width
    x = torch.rand(1, 1, 72, 40, generator=torch.Generator().manual_seed(1))
    release = resize_long_side_to_width(x, "release")
    assert release.shape == (1, 1, 40, 22)
    # align_corners=True keeps the four corner pixels exactly
    for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert release[0, 0, r, c] == x[0, 0, r, c]
    ours = resize_long_side_to_width(x, "antialias")
    assert ours.shape == release.shape and (ours - release).abs().max() > 1e-2
    ext = SAMFeatureExtractor(resize="release")
    torch.testing.assert_close(ext.preprocess(x), release.repeat(1, 3, 1, 1), rtol=0, atol=0)
    landscape = torch.rand(1, 3, 40, 72)
    assert torch.equal(ext.preprocess(landscape), landscape)
    with pytest.raises(ValueError, match="resize"):
        SAMFeatureExtractor(resize="nearest")


def test_fixture_portrait_preprocessing_and_features(shared_dir):
    """The release fixture's portrait case: preprocessing and block outputs with its SAM weights."""
    from SAM.features import SAMFeatureExtractor
    fx = torch.load(shared_dir / "fixtures" / "sage_release" / "student.pt", weights_only=True)
    ext = SAMFeatureExtractor(resize="release")
    ext.load_state_dict(fx["sam_extractor_state_dict"], strict=True)
    with torch.no_grad():
        pre = ext.preprocess(fx["sam_portrait_input"])
        feats = ext(fx["sam_portrait_input"])
    torch.testing.assert_close(pre, fx["sam_portrait_preprocessed"], rtol=0, atol=1e-6)
    for ours, ref in zip(feats, fx["sam_portrait_features"]):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
