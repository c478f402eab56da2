"""ONNX export of the student (dynamic batch, height and width) and an ONNX Runtime engine."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from utils.errors import first_line

from ..student import Student
from .base import Engine, EngineError
from .folded import FoldedStudent

INPUT_NAMES = ("y", "ir")
OUTPUT_NAME = "fused"
DEFAULT_OPSET = 17


def export_student_onnx(model: Student, path: str | os.PathLike | io.BytesIO, opset: int = DEFAULT_OPSET,
                        sample_hw: tuple = (64, 96)) -> Path | io.BytesIO:
    """Write `model` (BatchNorm folded, plain ONNX ops) to `path` (or a BytesIO) with inputs y, ir
    (B, 1, H, W) and output fused (B, 1, H, W); B, H, W are dynamic (H, W multiples of 4 at run time)."""
    if not isinstance(path, io.BytesIO):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    net = FoldedStudent.from_student(model.cpu().eval(), fused_ops=False).eval()  # forward: fused only
    h, w = sample_hw
    sample = (torch.rand(1, 1, h, w), torch.rand(1, 1, h, w))
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(net, sample, path if isinstance(path, io.BytesIO) else str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes={n: axes for n in (*INPUT_NAMES, OUTPUT_NAME)})
    return path


class OnnxEngine(Engine):
    """The exported student in ONNX Runtime (CPU, or CUDA when the runtime has that provider).

    `path` is an .onnx file, or None with `model` given: the student is then exported in memory.
    On CPU it runs MLAS convolutions in a blocked channel layout with fused activations and needs the
    least memory of the engines; it is about as fast as the `fast` engine (docs/inference.md#benchmark).
    """

    name = "onnx"

    def __init__(self, path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                 threads: int | None = None, model: Student | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineError("--engine onnx needs the onnxruntime package (pip install onnxruntime)") from None
        if path:
            path = Path(path)
            if not path.is_file():
                raise EngineError(f"{path}: no such ONNX file (export one with "
                                  "`python scripts/export_onnx.py --checkpoint ... --out student.onnx`)")
            source, label = str(path), path.name
        elif model is not None:
            buf = export_student_onnx(model, io.BytesIO())
            model.to(device)  # the export ran on the CPU
            source, label = buf.getvalue(), "exported in memory"
        else:
            raise EngineError("--engine onnx needs --onnx FILE or the student weights (--checkpoint)")
        device = torch.device(device)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        else:
            device = torch.device("cpu")  # ONNX Runtime CPU build: inputs go through host memory
        super().__init__(device)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(source, opts, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise EngineError(f"{path}: not a loadable ONNX model ({first_line(exc)[:200]})") from None
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(INPUT_NAMES):
            raise EngineError(f"{path}: inputs are {names}, expected {list(INPUT_NAMES)} "
                              "(export with scripts/export_onnx.py)")
        self.label = label

    def run(self, y, ir):
        feed = {"y": np.ascontiguousarray(y.float().cpu().numpy()), "ir": np.ascontiguousarray(ir.float().cpu().numpy())}
        out = self.session.run([OUTPUT_NAME], feed)[0]
        return torch.from_numpy(out)

    def describe(self) -> str:
        return f"{self.name} ({self.label}, BN folded, ONNX Runtime {self.session.get_providers()[0]})"
