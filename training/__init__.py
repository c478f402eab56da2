"""Training: per-method runs (SAGE, SGAFusion), the step schedule, the resumable run state and logs.

train.py picks the method named by the config's `method:` key. Each method has a defaults file, which
lists every config key the method reads (the reference strict checking compares against), and a class
that builds the run (see training/sage.py for the interface).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple


class Method(NamedTuple):
    module: str     # module holding the run class
    run_class: str  # built as run_class(cfg, device, dist_info)
    defaults: str   # config file (relative to the repository) with every key and its default
    flag_keys: Tuple[Tuple[str, str], ...] = ()  # train.py flags that mean another config key for this method
    prepare: Optional[str] = None  # function of `module` that completes the checked config (cfg -> cfg)


METHODS = {
    "sage": Method("training.sage", "SageTraining", "configs/fmb.yaml"),
    "sgafusion": Method("training.sgafusion", "SGAFusionTraining", "configs/sgafusion/defaults.yaml",
                        flag_keys=(("export", "export.checkpoint_to"),), prepare="prepare_config"),
}


def prepare_config(method: str, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The method's own completion of a checked config (e.g. stage-dependent defaults), if it has one."""
    spec = METHODS[method]
    if not spec.prepare:
        return cfg
    fn: Callable[[Dict[str, Any]], Dict[str, Any]] = getattr(importlib.import_module(spec.module), spec.prepare)
    return fn(cfg)


def run_class(method: str):
    spec = METHODS[method]
    return getattr(importlib.import_module(spec.module), spec.run_class)
