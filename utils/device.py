"""Device selection: CUDA when present, else CPU."""
from __future__ import annotations

import torch


class DeviceError(ValueError):
    pass


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU raises DeviceError."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name}: not a device (use auto, cpu or cuda)") from None
