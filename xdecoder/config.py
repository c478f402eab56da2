"""X-Decoder's settings for the semantic-segmentation path, with the Focal-L values as defaults.

The field names follow X-Decoder's config keys (docs/xdecoder.md lists them); `from_fixture_config`
reads the `hyperparameters` table of a reference fixture's config.json.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Tuple

# config.json key -> dataclass field
_FIXTURE_KEYS = {
    "INPUT.PIXEL_MEAN": "pixel_mean",
    "INPUT.PIXEL_STD": "pixel_std",
    "MODEL.DECODER.SIZE_DIVISIBILITY": "size_divisibility",
    "MODEL.BACKBONE.FOCAL.PATCH_SIZE": "patch_size",
    "MODEL.BACKBONE.FOCAL.EMBED_DIM": "embed_dim",
    "MODEL.BACKBONE.FOCAL.DEPTHS": "depths",
    "MODEL.BACKBONE.FOCAL.FOCAL_LEVELS": "focal_levels",
    "MODEL.BACKBONE.FOCAL.FOCAL_WINDOWS": "focal_windows",
    "MODEL.BACKBONE.FOCAL.MLP_RATIO": "mlp_ratio",
    "MODEL.BACKBONE_DIM": "backbone_dim",
    "MODEL.ENCODER.CONVS_DIM": "convs_dim",
    "MODEL.ENCODER.MASK_DIM": "mask_dim",
    "MODEL.ENCODER.TRANSFORMER_ENC_LAYERS": "enc_layers",
    "MODEL.ENCODER.NUM_CLASSES": "train_classes",
    "MODEL.DECODER.HIDDEN_DIM": "hidden_dim",
    "MODEL.DECODER.NUM_OBJECT_QUERIES": "num_queries",
    "MODEL.DECODER.NHEADS": "nheads",
    "MODEL.DECODER.DIM_FEEDFORWARD": "dim_feedforward",
    "MODEL.DECODER.DEC_LAYERS": "dec_layers",
    "MODEL.DIM_PROJ": "dim_proj",
    "MODEL.TEXT.CONTEXT_LENGTH": "context_length",
    "MODEL.TEXT.WIDTH": "text_width",
    "MODEL.TEXT.HEADS": "text_heads",
    "MODEL.TEXT.LAYERS": "text_layers",
}

# switches that must hold for this implementation (the release's Focal-L values)
_REQUIRED = {
    "MODEL.BACKBONE.FOCAL.PATCH_NORM": True,
    "MODEL.BACKBONE.FOCAL.USE_CONV_EMBED": True,
    "MODEL.BACKBONE.FOCAL.SCALING_MODULATOR": True,
    "MODEL.BACKBONE.FOCAL.USE_POSTLN": True,
    "MODEL.BACKBONE.FOCAL.USE_POSTLN_IN_MODULATION": False,
    "MODEL.BACKBONE.FOCAL.USE_LAYERSCALE": True,
    "MODEL.ENCODER.NAME": "transformer_encoder_fpn",
    "MODEL.ENCODER.NORM": "GN",
    "MODEL.DECODER.PRE_NORM": False,
    "MODEL.DECODER.ENFORCE_INPUT_PROJ": False,
    "MODEL.TEXT.AUTOGRESSIVE": True,
}


class XDecoderConfigError(ValueError):
    """A configuration this implementation does not cover."""


@dataclass
class XDecoderConfig:
    """Sizes of X-Decoder's inference path (defaults: Focal-L, `xdecoder_focall_last.pt`)."""
    pixel_mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)  # RGB mean on the 0..255 scale
    pixel_std: Tuple[float, float, float] = (58.395, 57.12, 57.375)     # RGB std on the 0..255 scale
    size_divisibility: int = 32          # input padded bottom/right to a multiple of this
    patch_size: int = 4                  # FocalNet stem stride
    embed_dim: int = 192                 # FocalNet stage-1 channels (stage i: embed_dim * 2**i)
    depths: Tuple[int, ...] = (2, 2, 18, 2)          # FocalNet blocks per stage
    focal_levels: Tuple[int, ...] = (4, 4, 4, 4)     # focal levels per stage
    focal_windows: Tuple[int, ...] = (3, 3, 3, 3)    # kernel of focal level 0 per stage
    mlp_ratio: float = 4.0               # FocalNet MLP expansion
    backbone_dim: int = 1536             # rows of the (unused) retrieval projection backbone_proj
    convs_dim: int = 512                 # pixel-decoder width
    mask_dim: int = 512                  # mask-feature channels
    enc_layers: int = 6                  # transformer-encoder layers on res5
    train_classes: int = 133             # training classes (sizes the unused criterion.empty_weight)
    hidden_dim: int = 512                # decoder width
    num_queries: int = 201               # queries, the last one is the class-token query
    nheads: int = 8                      # heads of decoder and pixel-decoder attention
    dim_feedforward: int = 2048          # FFN width of decoder and pixel-decoder encoder
    dec_layers: int = 10                 # transformer decoder layers + 1
    dim_proj: int = 512                  # joint vision-language width
    context_length: int = 77             # tokens per prompt
    text_width: int = 512                # text transformer width
    text_heads: int = 8                  # text attention heads
    text_layers: int = 12                # text transformer blocks
    vocab_size: int = 49408              # CLIP BPE vocabulary

    def __post_init__(self) -> None:
        for name in ("pixel_mean", "pixel_std", "depths", "focal_levels", "focal_windows"):
            setattr(self, name, tuple(getattr(self, name)))
        if not (len(self.depths) == len(self.focal_levels) == len(self.focal_windows) == 4):
            raise XDecoderConfigError("X-Decoder's FocalNet has 4 stages (depths, focal_levels, focal_windows)")
        if self.convs_dim != self.hidden_dim:
            raise XDecoderConfigError(f"convs_dim {self.convs_dim} != hidden_dim {self.hidden_dim}: the decoder's "
                                      f"input projection (ENFORCE_INPUT_PROJ) is not implemented")
        if self.mask_dim != self.hidden_dim:
            raise XDecoderConfigError(f"mask_dim {self.mask_dim} must equal hidden_dim {self.hidden_dim}")
        if self.dec_layers < 2 or self.num_queries < 2:
            raise XDecoderConfigError("dec_layers and num_queries must be at least 2")

    @property
    def stage_channels(self) -> Tuple[int, ...]:
        return tuple(self.embed_dim * 2 ** i for i in range(4))

    @classmethod
    def from_fixture_config(cls, data: Dict[str, Any], column: str = "tiny") -> "XDecoderConfig":
        """From a fixture's config.json (parsed): its `hyperparameters` rows, `column` 'tiny' or 'focall'."""
        rows = {r["key"]: r for r in data.get("hyperparameters", [])}
        if not rows:
            raise XDecoderConfigError("config.json has no 'hyperparameters' table")
        for key, want in _REQUIRED.items():
            if key in rows and rows[key][column] != want:
                raise XDecoderConfigError(f"config.json: {key} = {rows[key][column]!r}, only {want!r} is implemented")
        kwargs = {f: rows[k][column] for k, f in _FIXTURE_KEYS.items() if k in rows}
        return cls(**kwargs)

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}
