"""YAML configs: load, merge, override from the command line with `--set key=value`, check strictly.

Strict checking (`check_config`): every key must exist in a reference config (the defaults file, which
lists every key) and every value must have the reference value's type; see docs/configs.md.
"""
from __future__ import annotations

import argparse
import copy
import difflib
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

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


# ---------------------------------------------------------------------------------------------------
# Strict checking against a reference config (the defaults file that lists every key).

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a section (a mapping of keys)"}


def dotted_keys(cfg: Dict[str, Any], prefix: str = "") -> list:
    """All keys of a nested mapping as dotted paths, sections included ('train', 'train.epochs', ...)."""
    out = []
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        out.append(key)
        if isinstance(v, dict):
            out.extend(dotted_keys(v, key + "."))
    return out


def _unknown_key(key: str, known: list, where: str) -> ConfigError:
    """ConfigError for `key`, suggesting the closest known key (difflib): first among the keys of the same
    section, then a key of the same name in another section ('trian.epochs', 'data.epochs' -> 'train.epochs'),
    then any key that is very close."""
    parent, _, last = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    close = [siblings[m] for m in difflib.get_close_matches(last, list(siblings), n=1, cutoff=0.6)]
    if not close:   # the same (or a very close) name in another section
        for leaf in difflib.get_close_matches(last, sorted({k.rpartition(".")[2] for k in known}), n=1, cutoff=0.8):
            close = difflib.get_close_matches(key, [k for k in known if k.rpartition(".")[2] == leaf], n=1, cutoff=0)
    if not close:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown {where} key '{key}'{hint}")


def _convert(key: str, value: Any, ref: Any, where: str) -> Any:
    """`value` converted to the type of the reference value `ref`, or ConfigError naming the key."""
    want = type(ref)
    ok = False
    if ref is None:                      # the reference says "any type"
        return value
    if want is bool:
        ok = isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif want is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):       # PyYAML reads 1e-4 (no dot) as a string; accept what float() reads
            try:
                return float(value)
            except ValueError:
                pass
    elif want is str:
        ok = isinstance(value, str)
    elif want in (list, tuple):
        ok = isinstance(value, (list, tuple))
        want = list
    else:                                # any other reference type: the same type is required
        ok = isinstance(value, want)
    if not ok:
        word = _TYPE_WORDS.get(want, f"a {want.__name__}")
        raise ConfigError(f"{where} key '{key}' expects {word}, got {value!r}")
    return value


def check_config(cfg: Dict[str, Any], reference: Dict[str, Any], where: str = "config") -> Dict[str, Any]:
    """Check `cfg` against `reference` (a config that lists every allowed key) and return a converted copy.

    A key missing from `reference` raises ConfigError `unknown config key 'train.epoch' (did you mean
    'train.epochs'?)` (the suggestion only when a known dotted key is close). A value whose type differs from
    the reference value's raises `config key 'train.epochs' expects an integer, got 'one'`. Types: int,
    float (ints and numeric strings such as YAML's `1e-4` are converted to float), bool, str, list; a
    reference value of None allows any value; a section (dict) must stay a dict, and an empty reference
    section `{}` allows any keys in it. `where` is the word used in messages ("config" -> "config key").
    """
    known = dotted_keys(reference)

    def walk(node: Dict[str, Any], ref: Dict[str, Any], prefix: str) -> Dict[str, Any]:
        out = {}
        for k, v in node.items():
            key = f"{prefix}{k}"
            if k not in ref:       # name the whole dotted key of a misspelt section: 'trian.epochs'
                while isinstance(v, dict) and v:
                    k, v = next(iter(v.items()))
                    key = f"{key}.{k}"
                raise _unknown_key(key, known, where)
            r = ref[k]
            if isinstance(r, dict):
                if not isinstance(v, dict):
                    raise ConfigError(f"{where} key '{key}' expects {_TYPE_WORDS[dict]}, got {v!r}")
                out[k] = walk(v, r, key + ".") if r else copy.deepcopy(v)
            else:
                out[k] = _convert(key, copy.deepcopy(v), r, where)
        return out

    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {cfg!r}")
    return walk(cfg, reference, "")


def compose_config(defaults: Dict[str, Any] | str | os.PathLike, files: Iterable[str | os.PathLike] = (),
                   overrides: Optional[Iterable[str]] = None, reference: Optional[Dict[str, Any]] = None,
                   where: str = "config") -> Dict[str, Any]:
    """Defaults, then each `--config` file merged over them in order, then `--set key=value` items; checked.

    `defaults` is a mapping or a YAML file (loaded with `base:` handling); `reference` (default: the
    defaults) lists every allowed key. Each file is checked on its own first, so an unknown key in it fails
    with the file's name in front: `my.yaml: unknown config key 'grdi' (did you mean 'grid'?)`. The merged
    result (after `--set`) is checked again and returned with its values converted.
    """
    cfg = load_config(defaults) if isinstance(defaults, (str, os.PathLike)) else copy.deepcopy(defaults)
    reference = copy.deepcopy(cfg) if reference is None else reference
    for f in files or ():
        part = load_config(f)
        try:
            check_config(part, reference, where)
        except ConfigError as exc:
            raise ConfigError(f"{f}: {exc}") from None
        cfg = merge(cfg, part)
    apply_overrides(cfg, overrides)
    return check_config(cfg, reference, where)


# ---------------------------------------------------------------------------------------------------
# The command line of the config-driven scripts: --config FILE ... --set KEY=VALUE ... then flags.

def add_config_arguments(parser: argparse.ArgumentParser, defaults: str, set_example: str, note: str = "") -> None:
    """Add `--config FILE` (repeatable, merged over the `defaults` file named in the help) and `--set KEY=VALUE`
    (repeatable, applied after the files; `set_example` is shown in the help); `note` ends the --config help."""
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help=f"YAML file merged over {defaults} (repeatable: later files win){note}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one config key after the --config files, e.g. --set {set_example}")


def config_from_args(args: argparse.Namespace, defaults: str | os.PathLike, flags: Mapping[str, str],
                     list_flags: Sequence[str] = ()) -> Dict[str, Any]:
    """The `defaults` file (it lists every key), `args.config` files merged over it in order, the `args.set`
    items, then each flag of `flags` (flag -> dotted key) that was given (not None); a string given to a flag of
    `list_flags` is split at commas. Checked strictly against the defaults (ConfigError naming the key)."""
    reference = load_config(defaults)
    cfg = compose_config(reference, args.config, args.set, reference=reference)
    given = {}
    for f in flags:
        v = getattr(args, f, None)
        given[f] = [x.strip() for x in v.split(",") if x.strip()] if f in list_flags and isinstance(v, str) else v
    return check_config(apply_flags(cfg, given, dict(flags)), reference)
