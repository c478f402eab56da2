"""What every inference engine is: a callable (y, ir) -> fused on one device, with a name."""
from __future__ import annotations

import torch


class EngineError(ValueError):
    """An engine that cannot be built here (missing file, missing runtime); the message says the fix."""


class Engine:
    """Run the student on (B, 1, H, W) Y and IR in [0, 1] and return the fused (B, 1, H, W) in (-1, 1).

    H and W must already be what the network accepts (multiples of 4; models.inference pads and
    tiles). Calls run without autograd. Subclasses set `name` and implement `run`.
    """

    name = "engine"

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)

    def run(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.run(y.to(self.device), ir.to(self.device))

    def describe(self) -> str:
        """One short phrase for summaries, e.g. 'fast (BN folded, channels-last, oneDNN fused) on cpu'."""
        return f"{self.name} on {self.device}"
