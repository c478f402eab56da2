"""Training: per-method runs (SAGE, SGAFusion), the step schedule, the resumable run state and logs.

train.py picks the method named by the config's `method:` key. Each method has a defaults file, which
lists every config key the method reads (the reference strict checking compares against), and a class
that builds the run (see training/sage.py for the interface).
"""
from __future__ import annotations

import importlib
from typing import NamedTuple


class Method(NamedTuple):
    module: str     # module holding the run class
    run_class: str  # built as run_class(cfg, device, dist_info)
    defaults: str   # config file (relative to the repository) with every key and its default


METHODS = {
    "sage": Method("training.sage", "SageTraining", "configs/fmb.yaml"),
}


def run_class(method: str):
    spec = METHODS[method]
    return getattr(importlib.import_module(spec.module), spec.run_class)
