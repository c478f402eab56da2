"""Strict loading of X-Decoder checkpoints: errors name the file and the problem; conversion round trip."""
import json

import pytest
import torch

from xdecoder.checkpoint import CheckpointError
from xdecoder.config import XDecoderConfig
from xdecoder.converted import load_authors_checkpoint, load_converted
from scripts.convert_xdecoder import main as convert_main


def cfg_of(path):
    return XDecoderConfig(**json.loads(path.read_text()))


def test_authors_checkpoint_loads_strictly_with_every_value(tiny_checkpoint):
    ckpt, cfg_json, model = tiny_checkpoint
    loaded = load_authors_checkpoint(ckpt, cfg_of(cfg_json))
    ref = model.state_dict()
    got = loaded.state_dict()
    assert sorted(got) == sorted(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)


@pytest.mark.parametrize("damage, message", [
    ("missing", "missing keys sem_seg_head.predictor.decoder_norm.weight"),
    ("unexpected", "unexpected keys sem_seg_head.predictor.extra_head.weight"),
])
def test_missing_or_unexpected_key_is_named(tiny_checkpoint, tmp_path, damage, message):
    ckpt, cfg_json, model = tiny_checkpoint
    sd = model.state_dict()
    if damage == "missing":
        sd.pop("sem_seg_head.predictor.decoder_norm.weight")
    else:
        sd["sem_seg_head.predictor.extra_head.weight"] = torch.zeros(3)
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(CheckpointError) as err:
        load_authors_checkpoint(bad, cfg_of(cfg_json))
    assert str(bad) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_other_variant_is_refused(tiny_checkpoint, make_xdecoder, tmp_path):
    _, cfg_json, _ = tiny_checkpoint
    other = tmp_path / "other_variant.pt"
    torch.save(make_xdecoder(embed_dim=16).state_dict(), other)  # same keys, other widths
    with pytest.raises(CheckpointError, match="another X-Decoder variant or size: backbone"):
        load_authors_checkpoint(other, cfg_of(cfg_json))
    deeper = tmp_path / "deeper.pt"
    torch.save(make_xdecoder(depths=(1, 1, 2, 1)).state_dict(), deeper)  # more blocks: extra keys
    with pytest.raises(CheckpointError, match="unexpected keys backbone.layers.2.blocks.1"):
        load_authors_checkpoint(deeper, cfg_of(cfg_json))


def test_truncated_and_missing_files(tiny_checkpoint, tmp_path):
    ckpt, cfg_json, _ = tiny_checkpoint
    cut = tmp_path / "cut.pt"
    data = ckpt.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch checkpoint \(.*truncated or corrupt"):
        load_authors_checkpoint(cut, cfg_of(cfg_json))
    with pytest.raises(CheckpointError, match="nope.pt: no such checkpoint file"):
        load_authors_checkpoint(tmp_path / "nope.pt", cfg_of(cfg_json))


def test_convert_script_round_trip_and_errors(tiny_checkpoint, tmp_path, capsys):
    ckpt, cfg_json, model = tiny_checkpoint
    out = tmp_path / "tiny.safetensors"
    assert convert_main(["--checkpoint", str(ckpt), "--out", str(out), "--config", str(cfg_json),
                         "--classes", "background", "road", "car"]) == 0
    small, sets = load_converted(out)
    assert sets["release"][0][-1] == "background" and sets["release"][0][11] == "motocycle"
    assert sets["labels"][0] == ["background", "road", "car"]
    assert not any(k.startswith("sem_seg_head.predictor.lang_encoder.lang_encoder") for k in small.state_dict())
    # the converted model computes what the full model computes
    names, emb = sets["labels"]
    model.set_text_embeddings(emb)
    small.set_text_embeddings(emb)
    image = torch.rand(1, 3, 40, 72) * 255
    with torch.no_grad():
        assert torch.allclose(small.sem_seg(image), model.sem_seg(image), atol=1e-6)
    # the cached embeddings are those the text encoder gives
    from xdecoder.converted import class_embeddings
    assert torch.allclose(emb, class_embeddings(model, names), atol=1e-6)
    # never overwrites; a damaged file is one error line naming it
    assert convert_main(["--checkpoint", str(ckpt), "--out", str(out), "--config", str(cfg_json)]) == 2
    assert "exists" in capsys.readouterr().err
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(out.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        load_converted(cut)
    assert convert_main(["--checkpoint", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "x.safetensors"),
                         "--config", str(cfg_json)]) == 2
    assert "absent.pt: no such checkpoint file" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
