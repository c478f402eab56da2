"""Engines that run the student with PyTorch: the plain module, the folded fast network, and torch.compile."""
from __future__ import annotations

import shutil

import torch

from ..student import Student
from .base import Engine, EngineError
from .folded import FoldedStudent


class ReferenceEngine(Engine):
    """The Student module exactly as trained (Conv, BatchNorm, LeakyReLU as separate eager ops)."""

    name = "reference"

    def __init__(self, model: Student):
        super().__init__(next(model.parameters()).device)
        self.model = model.eval()

    def run(self, y, ir):
        return self.model(y, ir)[0]


class FastEngine(Engine):
    """FoldedStudent on channels-last tensors (BatchNorm folded, oneDNN conv + LeakyReLU fusion on CPU)."""

    name = "fast"

    def __init__(self, model: Student, fused_ops: bool = True):
        device = next(model.parameters()).device
        super().__init__(device)
        self.net = FoldedStudent.from_student(model.eval(), fused_ops=fused_ops).to(device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one algorithm search per image size

    def run(self, y, ir):
        return self.net(y, ir)

    def describe(self) -> str:
        extra = ", oneDNN conv+activation fusion" if self.net.fused_ops and self.device.type == "cpu" else ""
        return f"{self.name} (BN folded, channels-last{extra}) on {self.device}"


def compiler_available() -> bool:
    """torch.compile's CPU backend (inductor) needs a C++ compiler; CUDA needs triton."""
    return shutil.which("g++") is not None or shutil.which("c++") is not None or shutil.which("clang++") is not None


class CompiledEngine(FastEngine):
    """FoldedStudent through torch.compile (inductor, weights frozen as constants).

    Compiles once per input size (tens of seconds on a small CPU), so it pays off on folders of
    many frames of one size; `fast` is as quick per frame in our measurements and starts at once.
    """

    name = "compile"

    def __init__(self, model: Student):
        if not compiler_available():
            raise EngineError("--engine compile: torch.compile needs a C++ compiler (g++) on PATH; "
                              "use --engine fast")
        super().__init__(model, fused_ops=False)  # inductor chooses its own fused kernels
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True  # fold weights into the graph (enables its oneDNN packing)
        self.compiled = torch.compile(self.net, dynamic=False)

    def run(self, y, ir):
        return self.compiled(y, ir)

    def describe(self) -> str:
        return f"{self.name} (torch.compile inductor, frozen weights) on {self.device}"
