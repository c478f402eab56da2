"""Detectors for the downstream detection protocol: torchvision's detection models, built without downloads.

`build_detector(arch, class_names)` gives a `Detector`: a torchvision model (randomly initialised,
weights=None, weights_backbone=None) behind a small wrapper that takes 0-based class labels (Faster
R-CNN counts a background class 0 internally; FCOS / RetinaNet do not). `load_pretrained` puts a
user's local weights file into it: a COCO detector state dict of the same architecture (all keys
strictly, except the class-count-dependent classifier layers, which are re-initialised) or an ImageNet
classification state dict for the backbone (strictly, its classifier dropped). Architectures:
docs/downstream.md.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torchvision.models import detection as tvd
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.misc import FrozenBatchNorm2d

from models.checkpoint import CheckpointError, key_mismatch, key_names, load_checkpoint as read_checkpoint_file

CHECKPOINT_FORMAT = "sage-detector-v1"

# Torchvision constructors (all take weights=None, weights_backbone=None, num_classes=...).
TORCHVISION_ARCHS = {
    "fasterrcnn_mobilenet_v3_large_fpn": tvd.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_resnet50_fpn": tvd.fasterrcnn_resnet50_fpn,
    "fcos_resnet50_fpn": tvd.fcos_resnet50_fpn,
    "retinanet_resnet50_fpn": tvd.retinanet_resnet50_fpn,
}
ARCHS = tuple(TORCHVISION_ARCHS) + ("tiny",)

# Layers whose shape depends on the number of classes: replaced when COCO weights are loaded.
CLASS_HEAD_KEYS = {
    "fasterrcnn": ("roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
                   "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias"),
    "fcos": ("head.classification_head.cls_logits.weight", "head.classification_head.cls_logits.bias"),
    "retinanet": ("head.classification_head.cls_logits.weight", "head.classification_head.cls_logits.bias"),
    "tiny": ("head.classification_head.cls_logits.weight", "head.classification_head.cls_logits.bias"),
}


class WeightsError(CheckpointError):
    """A weights or checkpoint file that does not fit the detector; the message names the file and keys."""


def _family(arch: str) -> str:
    return "tiny" if arch == "tiny" else arch.split("_")[0]


class TinyBackbone(nn.Module):
    """A small conv backbone (strides 8, 16, 32) with an FPN, for tests and CPU demos.

    Args:
        width: channels of the first stage (later stages: 1.5x and 2x).
        out_channels: FPN channels (a multiple of 16: the FCOS head uses GroupNorm with 16-channel groups).
    """

    def __init__(self, width: int = 16, out_channels: int = 32):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(True),
                                 nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(True))

        c3, c4, c5 = 2 * width, 3 * width, 4 * width
        self.stem = nn.Sequential(block(3, width, 2), block(width, width, 2))  # stride 4
        self.c3, self.c4, self.c5 = block(width, c3, 2), block(c3, c4, 2), block(c4, c5, 2)
        self.fpn = FeaturePyramidNetwork([c3, c4, c5], out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """(B, 3, H, W) -> {'p3': (B, C, H/8, W/8), 'p4': .../16, 'p5': .../32}."""
        f3 = self.c3(self.stem(x))
        f4 = self.c4(f3)
        f5 = self.c5(f4)
        return self.fpn(OrderedDict([("p3", f3), ("p4", f4), ("p5", f5)]))


def _tiny_fcos(num_classes: int, min_size: int, max_size: int) -> nn.Module:
    backbone = TinyBackbone()
    anchors = tvd.anchor_utils.AnchorGenerator(sizes=((8,), (16,), (32,)), aspect_ratios=((1.0,),) * 3)
    head = tvd.fcos.FCOSHead(backbone.out_channels, 1, num_classes, num_convs=2)
    return tvd.FCOS(backbone, num_classes, min_size=min_size, max_size=max_size, anchor_generator=anchors, head=head,
                    score_thresh=0.05, detections_per_img=100)


class Detector(nn.Module):
    """A torchvision detector with 0-based labels.

    Args:
        net: the torchvision detection model.
        arch: its name (one of ARCHS).
        class_names: the classes, in label order.
        min_size, max_size: the model's resize range (kept for the checkpoint).
    """

    def __init__(self, net: nn.Module, arch: str, class_names: Sequence[str], min_size: int, max_size: int):
        super().__init__()
        self.net = net
        self.arch = arch
        self.class_names = list(class_names)
        self.min_size, self.max_size = int(min_size), int(max_size)
        self.label_offset = 1 if _family(arch) == "fasterrcnn" else 0
        self.frozen_bn = False  # set when a pretrained backbone's BatchNorm layers were frozen

    def forward(self, images: List[torch.Tensor], targets: Optional[List[Dict[str, torch.Tensor]]] = None):
        """images: list of (3, H_i, W_i) RGB in [0, 1]; targets: list of {'boxes': (N, 4) xyxy pixels,
        'labels': (N,) int64 0-based}. Training: dict of loss terms. Eval: list of {'boxes' (M, 4),
        'labels' (M,) 0-based, 'scores' (M,)}."""
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            targets = [{"boxes": t["boxes"], "labels": t["labels"] + self.label_offset} for t in targets]
            return self.net(images, targets)
        out = self.net(images)
        return [{"boxes": o["boxes"], "labels": o["labels"] - self.label_offset, "scores": o["scores"]} for o in out]

    def meta(self) -> Dict:
        return {"arch": self.arch, "class_names": self.class_names, "min_size": self.min_size,
                "max_size": self.max_size, "frozen_bn": self.frozen_bn}


def build_detector(arch: str, class_names: Sequence[str], min_size: int = 800, max_size: int = 1333) -> Detector:
    """A randomly initialised detector for `class_names` (nothing is downloaded)."""
    num = len(class_names)
    if arch == "tiny":
        net = _tiny_fcos(num, min_size, max_size)
    elif arch in TORCHVISION_ARCHS:
        classes = num + 1 if _family(arch) == "fasterrcnn" else num
        net = TORCHVISION_ARCHS[arch](weights=None, weights_backbone=None, num_classes=classes,
                                      min_size=min_size, max_size=max_size)
    else:
        raise WeightsError(f"unknown detector architecture '{arch}' (choose from {', '.join(ARCHS)})")
    return Detector(net, arch, class_names, min_size, max_size)


# ----------------------------------------------------------------------------- weights files

def _read_state(path: str | os.PathLike, what: str) -> Dict:
    obj = read_checkpoint_file(path, missing=f"no such file (given as {what})", error=WeightsError)
    if not isinstance(obj, dict):
        raise WeightsError(f"{what} {path}: expected a state dict, found {type(obj).__name__}")
    return obj


def _load_strict(module: nn.Module, state: Dict[str, torch.Tensor], path, allowed_mismatch: Sequence[str] = ()
                 ) -> List[str]:
    """Load `state` into `module`: every key must exist and match in shape, except shape mismatches in
    `allowed_mismatch`, which keep their fresh initialisation; returns those replaced keys."""
    own = module.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    if missing or unexpected:
        raise WeightsError(f"{path}: does not fit the detector ({key_mismatch(list(missing), list(unexpected))})")
    replaced, bad = [], []
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"{path}: entry '{k}' is not a tensor")
        if tuple(v.shape) != tuple(own[k].shape):
            (replaced if k in allowed_mismatch else bad).append(k)
    if bad:
        k = bad[0]
        raise WeightsError(f"{path}: shape mismatch for {len(bad)} key(s), e.g. '{k}': file "
                           f"{tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
    module.load_state_dict({k: (own[k] if k in replaced else v) for k, v in state.items()}, strict=True)
    return replaced


def freeze_batchnorm(module: nn.Module) -> int:
    """Replace every BatchNorm2d under `module` by a FrozenBatchNorm2d with its statistics; returns the count."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
            count += 1
        else:
            count += freeze_batchnorm(child)
    return count


def load_pretrained(detector: Detector, path: str | os.PathLike, freeze_bn: bool = True) -> str:
    """Initialise from a local weights file (COCO detector or ImageNet backbone); returns what was loaded.

    A file whose keys start with 'backbone.' is a detector state dict of the same architecture; anything
    else is taken as the backbone network's classification state dict (its 'classifier.' / 'fc.' layers
    dropped, a 'features.' prefix removed for MobileNet). With `freeze_bn` the backbone's BatchNorm layers
    then keep the loaded statistics (FrozenBatchNorm2d), as torchvision does for pretrained backbones.
    """
    state = _read_state(path, "--weights")
    state = state.get("model", state) if isinstance(state.get("model"), dict) else state
    net = detector.net
    if not any(k.endswith("num_batches_tracked") for k in state):
        # saved from a model with frozen BatchNorm (torchvision's pretrained files): freeze ours to match
        detector.frozen_bn = freeze_batchnorm(net.backbone) > 0 or detector.frozen_bn
    if any(k.startswith("backbone.") for k in state):
        replaced = _load_strict(net, state, path, CLASS_HEAD_KEYS[_family(detector.arch)])
        what = f"detector weights from {path}" + (f" (class layers re-initialised: {key_names(replaced)})"
                                                   if replaced else "")
    else:
        body = getattr(net.backbone, "body", None)
        if body is None:
            raise WeightsError(f"{path}: backbone weights need a torchvision backbone (arch {detector.arch} has none)")
        sub = {k: v for k, v in state.items() if not k.startswith(("classifier.", "fc."))}
        own = body.state_dict()
        if not any(k in own for k in sub) and all(k.startswith("features.") for k in sub):
            sub = {k[len("features."):]: v for k, v in sub.items()}
        if any(isinstance(m, FrozenBatchNorm2d) for m in body.modules()):  # frozen BN has no batch counter
            sub = {k: v for k, v in sub.items() if not k.endswith("num_batches_tracked")}
        _load_strict(body, sub, path)
        what = f"backbone weights from {path}"
    if freeze_bn:
        freeze_batchnorm(net.backbone)
        detector.frozen_bn = True
    return what


def save_checkpoint(detector: Detector, path: str | os.PathLike, extra: Optional[Dict] = None) -> None:
    """Write a detector checkpoint (weights + what is needed to rebuild it) atomically."""
    from utils.run_state import save_atomic

    model = detector.module if hasattr(detector, "module") else detector
    save_atomic({"format": CHECKPOINT_FORMAT, **model.meta(), "model": model.state_dict(), **(extra or {})}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Detector:
    """Rebuild a detector saved by save_checkpoint and load its weights strictly."""
    state = _read_state(path, "--checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a detector checkpoint of scripts/train_detector.py (no 'format: "
                           f"{CHECKPOINT_FORMAT}' entry)")
    detector = build_detector(state["arch"], state["class_names"], int(state["min_size"]), int(state["max_size"]))
    if state.get("frozen_bn"):
        freeze_batchnorm(detector.net.backbone)  # trained from a pretrained backbone: frozen BN layers
        detector.frozen_bn = True
    _load_strict(detector, state["model"], path)
    return detector.to(map_location)


def checkpoint_class_names(path: str | os.PathLike) -> List[str]:
    """The class list stored in a detector checkpoint (without building the model)."""
    state = _read_state(path, "--checkpoint")
    names = state.get("class_names")
    if state.get("format") != CHECKPOINT_FORMAT or not isinstance(names, list):
        raise WeightsError(f"{path}: not a detector checkpoint of scripts/train_detector.py (no 'format: "
                           f"{CHECKPOINT_FORMAT}' entry)")
    return [str(n) for n in names]


def count_parameters(module: nn.Module) -> Tuple[int, int]:
    """(all, trainable) parameter counts."""
    return (sum(p.numel() for p in module.parameters()),
            sum(p.numel() for p in module.parameters() if p.requires_grad))
