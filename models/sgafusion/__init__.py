"""SGAFusion: degradation-aware infrared-visible fusion steered by a CLIP degradation cue.

See docs/sgafusion.md. `SGAFusionNet(variant="release" | "working")` is the fusion network,
`ClipCueEncoder` the CLIP cue (with LoRA from `lora.add_lora`), `build.build_net` / `build.build_cue`
build both from config sections and `inference.fuse` runs one batch.
"""
from .build import VARIANTS, build_cue, build_net, cue_state_dict, load_cue, load_cue_state, load_net
from .cue import ClipCueEncoder, Cue, CueWeightsError, load_clip_visual, tiny_clip_visual
from .inference import fuse, ir_to_gray, to_uint8_release
from .network import SGAFusionNet

__all__ = ["SGAFusionNet", "ClipCueEncoder", "Cue", "CueWeightsError", "VARIANTS", "build_net", "build_cue",
           "cue_state_dict", "load_cue", "load_cue_state", "load_net", "load_clip_visual", "tiny_clip_visual",
           "fuse", "ir_to_gray", "to_uint8_release"]
