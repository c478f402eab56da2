"""Inference engines for the student: build one by name.

    engine = build_engine("auto", student)              # auto | reference | fast | compile | onnx
    fused = engine(y, ir)                                # (B, 1, H, W) each, H, W multiples of 4
"""
from __future__ import annotations

from typing import Optional

import torch


from ..student import Student
from .base import Engine, EngineError
from .folded import FoldedStudent, fold_batchnorm, oneDNN_fusion_available
from .onnx_engine import OnnxEngine, export_student_onnx
from .torch_engines import CompiledEngine, FastEngine, ReferenceEngine, compiler_available

ENGINE_NAMES = ("auto", "reference", "fast", "compile", "onnx")


def resolve_engine_name(name: str, device: torch.device | str = "cpu") -> str:
    """'auto' -> 'fast': the quickest engine measured on CPU (and the one for CUDA); onnx is an option."""
    if name != "auto":
        return name
    return "fast"


def build_engine(name: str, model: Optional[Student] = None, onnx_path: Optional[str] = None,
                 device: torch.device | str = "cpu") -> Engine:
    """An engine by name (see ENGINE_NAMES). `model` (a Student on `device`) is needed by all engines
    but onnx with `onnx_path`; onnx without a path exports `model` in memory."""
    if name not in ENGINE_NAMES:
        raise EngineError(f"--engine {name}: unknown engine (choose from {', '.join(ENGINE_NAMES)})")
    name = resolve_engine_name(name, device)
    if name == "onnx":
        return OnnxEngine(onnx_path, device=device, model=model)
    if model is None:
        raise EngineError(f"--engine {name}: needs the student weights (--checkpoint)")
    if name == "reference":
        return ReferenceEngine(model)
    if name == "fast":
        return FastEngine(model)
    return CompiledEngine(model)


__all__ = ["Engine", "EngineError", "ENGINE_NAMES", "build_engine", "FoldedStudent", "fold_batchnorm",
           "ReferenceEngine", "FastEngine", "CompiledEngine", "OnnxEngine", "export_student_onnx",
           "compiler_available", "oneDNN_fusion_available", "resolve_engine_name"]
