"""SegFormer models from `transformers`: architecture presets, loading from a folder (or an explicit hub id),
the model's own input normalisation, and saving a trained segmenter.

Nothing here downloads unless the caller passes a string that is not an existing folder and looks like a
hub id ("owner/name"): that is the user's explicit request, and without network it fails in one line.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from utils.errors import first_line

from .classes import SemanticConfigError, resolve_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SEGMENTER_META = "segmenter.json"  # written by scripts/train_segmenter.py next to config.json

# SegFormer encoder sizes (MiT-B0..B3 from the SegFormer paper) plus a tiny one for tests and CPU demos.
ARCHS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(hidden_sizes=[16, 32, 64, 96], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 3],
                 decoder_hidden_size=64),
    "b0": dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=256),
    "b1": dict(hidden_sizes=[64, 128, 320, 512], depths=[2, 2, 2, 2], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=256),
    "b2": dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=768),
    "b3": dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 18, 3], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=768),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class InputSpec:
    """How a model wants its pixels: value = ((rgb in [0,1]) * scale - mean) / std, at `size` (H, W) if given."""

    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0
    size: Optional[Tuple[int, int]] = None

    def to_processor_dict(self) -> Dict[str, Any]:
        """A preprocessor_config.json that SegformerImageProcessor reads back."""
        out: Dict[str, Any] = {"image_processor_type": "SegformerImageProcessor", "do_resize": self.size is not None,
                               "do_rescale": True, "rescale_factor": self.scale / 255.0, "do_normalize": True,
                               "image_mean": list(self.mean), "image_std": list(self.std),
                               "do_reduce_labels": False}
        if self.size is not None:
            out["size"] = {"height": int(self.size[0]), "width": int(self.size[1])}
        return out


def input_spec_from_processor(d: Dict[str, Any]) -> InputSpec:
    """InputSpec from a SegformerImageProcessor dict (preprocessor_config.json); missing keys -> ImageNet defaults."""
    scale = float(d.get("rescale_factor", 1 / 255)) * 255.0 if d.get("do_rescale", True) else 255.0
    if d.get("do_normalize", True):
        mean = tuple(float(v) for v in d.get("image_mean", IMAGENET_MEAN))
        std = tuple(float(v) for v in d.get("image_std", IMAGENET_STD))
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    size = d.get("size")
    hw = None
    if isinstance(size, dict) and "height" in size and "width" in size:
        hw = (int(size["height"]), int(size["width"]))
    elif isinstance(size, dict) and "shortest_edge" in size:
        hw = (int(size["shortest_edge"]),) * 2
    elif isinstance(size, int):
        hw = (size, size)
    return InputSpec(mean, std, scale, hw)  # type: ignore[arg-type]


def normalise(rgb: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> the model's pixel_values (B, 3, H, W). Differentiable."""
    mean = torch.tensor(spec.mean, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * spec.scale - mean) / std


def build_config(arch: str, class_names: Sequence[str]):
    """A SegformerConfig of a preset size (tiny, b0..b3) whose id2label are the given class names."""
    from transformers import SegformerConfig

    if arch not in ARCHS:
        raise SemanticConfigError(f"--arch {arch}: unknown SegFormer size (choose {', '.join(ARCHS)})")
    names = list(class_names)
    return SegformerConfig(num_labels=len(names), id2label={i: n for i, n in enumerate(names)},
                           label2id={n: i for i, n in enumerate(names)}, semantic_loss_ignore_index=255,
                           **ARCHS[arch])


def class_names_of(model) -> List[str]:
    """The model's class names in output order (config.id2label; LABEL_k when it has none)."""
    cfg = model.config
    return [str(cfg.id2label.get(i, cfg.id2label.get(str(i), f"LABEL_{i}"))) for i in range(cfg.num_labels)]


def looks_like_hub_id(model_ref: str) -> bool:
    """'owner/name' whose owner is not a local folder (so 'checkpoints/typo' stays a missing local path)."""
    ref = str(model_ref)
    return bool(_HUB_ID.match(ref)) and not ref.startswith((".", "/", "~")) and not Path(ref.split("/")[0]).exists()


def load_segformer(model_ref: str, where: str = "semantic.model", allow_hub: bool = True):
    """(SegformerForSemanticSegmentation in eval mode, InputSpec, metadata dict) from a folder or a hub id.

    A folder must hold config.json (model_type segformer) and the weights; preprocessor_config.json is
    read for normalisation and size when present (ImageNet mean/std otherwise); segmenter.json (written
    by scripts/train_segmenter.py) is returned as the metadata ({} when absent). With allow_hub, a
    string that is not a local path but looks like a hub id is fetched (the user asked for it by name).
    """
    from transformers import SegformerForSemanticSegmentation

    if not model_ref:
        raise SemanticConfigError(f"{where}: not set; give a local SegFormer folder (config.json + weights)")
    path = resolve_path(str(model_ref))
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise SemanticConfigError(f"{path}: not a SegFormer model folder (no config.json); give the folder "
                                      f"written by save_pretrained or scripts/train_segmenter.py")
        try:
            cfg = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as exc:
            raise SemanticConfigError(f"{cfg_file}: not valid JSON ({exc.msg})") from None
        if cfg.get("model_type") != "segformer":
            raise SemanticConfigError(f"{cfg_file}: model_type is {cfg.get('model_type')!r}, not 'segformer'; "
                                      f"this backend needs a SegFormer model")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise SemanticConfigError(f"{path}: no weights (model.safetensors or pytorch_model.bin) next to config.json")
        try:
            model = SegformerForSemanticSegmentation.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise SemanticConfigError(f"{path}: cannot load the SegFormer weights ({first_line(exc)})") from None
        proc_file = path / "preprocessor_config.json"
        proc = json.loads(proc_file.read_text()) if proc_file.is_file() else {}
        meta_file = path / SEGMENTER_META
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    elif allow_hub and looks_like_hub_id(str(model_ref)):
        # The user named a hub model explicitly: fetching it is their request.
        try:
            model = SegformerForSemanticSegmentation.from_pretrained(str(model_ref))
        except Exception as exc:  # noqa: BLE001 - network, auth and format errors all end the same way
            raise SemanticConfigError(
                f"{where}={model_ref}: no such local folder, and fetching it from the Hugging Face hub failed "
                f"({first_line(exc)}); download it where there is network and give the local folder") from None
        proc = {}
        try:
            from transformers import SegformerImageProcessor
            proc = SegformerImageProcessor.from_pretrained(str(model_ref)).to_dict()
        except Exception:  # noqa: BLE001 - no processor file: SegFormer's ImageNet defaults
            proc = {}
        meta = {}
    else:
        raise SemanticConfigError(f"{where}={model_ref}: no such model folder (expected config.json + "
                                  f"model.safetensors from save_pretrained or scripts/train_segmenter.py)")
    model.eval()
    return model, input_spec_from_processor(proc), meta


def save_segmenter(model, out_dir: str | Path, spec: InputSpec, meta: Dict[str, Any]) -> Path:
    """Write model (save_pretrained), preprocessor_config.json and segmenter.json into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    (out / "preprocessor_config.json").write_text(json.dumps(spec.to_processor_dict(), indent=2))
    (out / SEGMENTER_META).write_text(json.dumps(meta, indent=2, default=str))
    return out
