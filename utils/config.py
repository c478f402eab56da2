"""YAML configs: load, merge, override from the command line with `--set key=value`."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used."""


def load_config(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a YAML mapping. A key `base: other.yaml` (relative to this file) is loaded first and merged under it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    base = data.pop("base", None)
    if base:
        data = merge(load_config(path.parent / base), data)
    return data


def merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge; values of `over` win. Neither input is modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(cfg: Dict[str, Any], key: str, value: Any) -> None:
    """cfg['a']['b'] = value for key 'a.b' (intermediate mappings are created)."""
    parts = key.split(".")
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.setdefault(p, {}), dict):
            raise ConfigError(f"--set {key}: '{p}' is not a section")
        node = node[p]
    node[parts[-1]] = value


def get_dotted(cfg: Dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = cfg
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def apply_overrides(cfg: Dict[str, Any], items: Optional[Iterable[str]]) -> Dict[str, Any]:
    """Apply `key=value` strings; values are parsed as YAML (numbers, booleans, lists, null)."""
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        set_dotted(cfg, key.strip(), value)
    return cfg


def apply_flags(cfg: Dict[str, Any], flags: Dict[str, Any], mapping: Dict[str, str]) -> Dict[str, Any]:
    """Copy command-line flags that were given (not None) into cfg at the dotted keys of `mapping`."""
    for flag, key in mapping.items():
        if flags.get(flag) is not None:
            set_dotted(cfg, key, flags[flag])
    return cfg


def check_config(cfg: Dict[str, Any], reference: Dict[str, Any], where: str = "config") -> Dict[str, Any]:
    """Placeholder (strict checking lands with utils/config's check_config): returns cfg unchanged."""
    return cfg
