"""Tiny random X-Decoders for the xdecoder tests (nothing is downloaded)."""
from __future__ import annotations

import pytest
import torch

from xdecoder.config import XDecoderConfig
from xdecoder.model import XDecoder

TINY = dict(embed_dim=8, depths=(1, 1, 1, 1), backbone_dim=64, convs_dim=32, mask_dim=32, enc_layers=1,
            train_classes=5, hidden_dim=32, num_queries=4, nheads=2, dim_feedforward=32, dec_layers=3, dim_proj=16,
            text_width=16, text_heads=2, text_layers=1)


def tiny_config(**over) -> XDecoderConfig:
    return XDecoderConfig(**{**TINY, **over})


def tiny_model(seed: int = 0, **over) -> XDecoder:
    """A full tiny X-Decoder with random weights; layerscales raised so the backbone blocks matter."""
    torch.manual_seed(seed)
    model = XDecoder(tiny_config(**over)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma_1", "gamma_2")) or ".ls" in name:
                p.uniform_(0.25, 0.75)
        model.sem_seg_head.predictor.lang_encoder.logit_scale.fill_(3.0)
    return model


@pytest.fixture(scope="session")
def make_xdecoder():
    """tiny_model(seed=0, **config overrides) -> a random full tiny XDecoder in eval mode."""
    return tiny_model


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """(path of a tiny 'authors' checkpoint' .pt, its config as a JSON file, the model)."""
    import json

    d = tmp_path_factory.mktemp("xdecoder")
    model = tiny_model()
    torch.save(model.state_dict(), d / "tiny_last.pt")
    (d / "tiny.json").write_text(json.dumps(model.cfg.to_dict()))
    return d / "tiny_last.pt", d / "tiny.json", model
