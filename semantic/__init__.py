"""Semantic supervision of the teacher by a frozen segmenter, and segmentation evaluation.

The release uses X-Decoder Focal-L here; this reproduction offers SegFormer backends that can be run
offline (see docs/semantic.md). Entry point for train.py: `build_semantic_loss(cfg, device)`.
"""
from .build import build_judge, build_semantic_loss
from .classes import CITYSCAPES_CLASSES, FMB_CLASSES, SemanticConfigError
from .semantic_loss import SemanticLoss

__all__ = ["build_semantic_loss", "build_judge", "SemanticLoss", "SemanticConfigError", "FMB_CLASSES",
           "CITYSCAPES_CLASSES"]
