"""The CLIP cue encoder: CLIP normalisation inside, tokens, and loading CLIP weights from files."""
from __future__ import annotations

import pytest
import torch

from models.sgafusion.cue import CLIP_MEAN, CLIP_STD, ClipCueEncoder, CueWeightsError, load_clip_visual

from .tiny import CUE_DIM, TINY_CLIP, tiny_cue


def test_outputs_and_preprocessing(single_thread):
    cue = tiny_cue().eval()
    image = torch.rand(2, 3, 50, 70)
    x = cue.preprocess(image)
    s = TINY_CLIP["image_size"]
    assert x.shape == (2, 3, s, s)
    # CLIP's own normalisation: a mid-grey image maps to (0.5 - mean) / std
    grey = cue.preprocess(torch.full((1, 3, s, s), 0.5))
    expected = (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(grey[0, :, 0, 0], expected, atol=1e-6)
    with torch.no_grad():
        out = cue(image)
    n_tokens = (s // TINY_CLIP["patch_size"]) ** 2
    assert out.feature.shape == (2, CUE_DIM) and (out.feature >= 0).all()
    assert out.logits.shape == (2, 9)
    assert out.tokens.shape == (2, n_tokens, CUE_DIM)
    assert out.embedding.shape == (2, TINY_CLIP["embed_dim"])


def test_same_preprocessing_in_train_and_eval(single_thread):
    cue = tiny_cue()
    image = torch.rand(1, 3, 40, 40)
    assert torch.equal(cue.train().preprocess(image), cue.eval().preprocess(image))


def test_bad_image_shape():
    with pytest.raises(ValueError, match="RGB"):
        tiny_cue().preprocess(torch.rand(1, 1, 32, 32))


def _tiny_openai_state_dict():
    """A tiny full CLIP (image + text towers) as an OpenAI-format state_dict, randomly initialised.

    Its weights are rounded to float16 values, as OpenAI's files store them (open_clip loads them
    through float16 tensors)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    model = CLIP(16, CLIPVisionCfg(layers=1, width=64, patch_size=16, image_size=32),
                 CLIPTextCfg(context_length=8, vocab_size=40, width=64, heads=1, layers=1), quick_gelu=True)
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return model, model.state_dict()


def test_load_openai_format_file(tmp_path, single_thread):
    model, sd = _tiny_openai_state_dict()
    path = tmp_path / "ViT-tiny.pt"
    torch.save(sd, str(path))
    visual = load_clip_visual(path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(visual(x), model.visual.eval()(x), atol=1e-6)
    enc = ClipCueEncoder(visual, num_classes=3, hidden=8)
    with torch.no_grad():
        assert enc(torch.rand(1, 3, 20, 30)).tokens.shape == (1, 4, 8)


def test_missing_and_foreign_weight_files(tmp_path):
    with pytest.raises(CueWeightsError, match="no such CLIP weights"):
        load_clip_visual(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CueWeightsError, match="junk.pt: not readable CLIP weights"):
        load_clip_visual(junk)


def test_load_open_clip_folder_and_safetensors(tmp_path, single_thread):
    """An open_clip / Hugging Face folder (open_clip_config.json + weights) loads; so does a bare .safetensors."""
    import json

    from safetensors.torch import save_file

    model, sd = _tiny_openai_state_dict()
    cfg = {"embed_dim": 16, "quick_gelu": True,
           "vision_cfg": {"layers": 1, "width": 64, "patch_size": 16, "image_size": 32},
           "text_cfg": {"context_length": 8, "vocab_size": 40, "width": 64, "heads": 1, "layers": 1}}
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "open_clip_model.safetensors"))
    visual = load_clip_visual(folder)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(visual(x), model.visual.eval()(x), atol=1e-6)
