"""Focal-L built on the meta device has X-Decoder's exact state_dict (focall_keys.tsv) and parameter count."""
import re

import torch
from timm.models.focalnet import FocalNet, checkpoint_filter_fn

from xdecoder.backbone import FocalNetBackbone, timm_to_xdecoder_key, xdecoder_to_timm_key
from xdecoder.checkpoint import UNUSED_KEYS, is_text_key
from xdecoder.model import XDecoder


def read_tsv(path):
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    header, rows = rows[0], rows[1:]
    return [dict(zip(header, r)) for r in rows]


def shape_str(t):
    return "x".join(str(s) for s in t.shape) or "scalar"


def test_focall_state_dict_equals_the_key_list(shared_dir):
    rows = read_tsv(shared_dir / "fixtures" / "xdecoder_tiny" / "focall_keys.tsv")
    assert len(rows) == 930
    with torch.device("meta"):
        model = XDecoder()
    sd = model.state_dict()
    assert sorted(sd) == sorted(r["key"] for r in rows)
    assert {k: shape_str(v) for k, v in sd.items()} == {r["key"]: r["shape"] for r in rows}
    assert sum(p.numel() for p in model.parameters()) == 341_551_353
    # our split of the keys agrees with the list's `used_by` column
    for r in rows:
        use = "unused" if r["key"] in UNUSED_KEYS else ("text" if is_text_key(r["key"]) else "image")
        assert use == r["used_by"], r["key"]


def test_inference_only_layout_is_the_image_path(make_xdecoder):
    full = make_xdecoder().state_dict()
    small = XDecoder(make_xdecoder().cfg, inference_only=True).state_dict()
    image = [k for k in full if k not in UNUSED_KEYS and not is_text_key(k)]
    assert sorted(small) == sorted(image)
    assert {k: v.shape for k, v in small.items()} == {k: full[k].shape for k in image}
    assert len(image) < len(full)


def test_backbone_key_mapping_agrees_with_timms_checkpoint_filter():
    backbone = FocalNetBackbone(embed_dim=8, depths=(1, 1, 2, 1))
    xd = {k: v for k, v in backbone.state_dict().items() if not re.match(r"norm\d\.", k)}
    ref = FocalNet(embed_dim=8, depths=(1, 1, 2, 1), focal_levels=(4,) * 4, use_overlap_down=True,
                   use_post_norm=True, normalize_modulator=True, layerscale_value=1e-4, num_classes=0)
    timm_sd = checkpoint_filter_fn(xd, ref)
    ours = {xdecoder_to_timm_key(k) for k in xd}
    assert set(timm_sd) == ours
    assert all(timm_to_xdecoder_key(xdecoder_to_timm_key(k)) == k for k in xd)
    result = ref.load_state_dict(timm_sd, strict=False)  # shapes checked by torch
    assert not result.unexpected_keys and all(k.startswith("norm.") for k in result.missing_keys)
    assert "layers.0.downsample.proj.weight" in xd
    assert xd["layers.0.blocks.0.modulation.f.weight"].dim() == 2  # X-Decoder keeps linear layers as matrices
