"""Class lists (in label order) and reading them from configs.

FMB's labels index 0 = background, 1 = Road, ... 14 = Pole (docs/sage.md#semantic-term). The release's
X-Decoder prompt list puts "road" first and "background" last; here every list is in label order, so
class k of a logit tensor is the class whose pixels carry the value k in the label PNGs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np
import yaml

from utils.errors import first_line

REPO_ROOT = Path(__file__).resolve().parents[1]

FMB_CLASSES: List[str] = ["background", "Road", "Sidewalk", "Building", "Lamp", "Sign", "Vegetation", "Sky",
                          "Person", "Car", "Truck", "Bus", "Motorcycle", "Bicycle", "Pole"]

# The 19 Cityscapes training classes in trainId order, spelt as in the SegFormer Cityscapes checkpoints'
# config.json (id2label).
CITYSCAPES_CLASSES: List[str] = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                                 "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                                 "bus", "train", "motorcycle", "bicycle"]

DEFAULT_IGNORE_INDEX = 255


def check_label_range(label, num_classes: int, ignore_index: int, what: str, hint: str,
                      error: type[Exception] = ValueError) -> None:
    """The one label check: every value of `label` (integer numpy array or tensor, any shape) is a class
    0..num_classes-1 or `ignore_index`; otherwise raise `error` naming `what`, up to 8 bad values and `hint`."""
    bad = (label != ignore_index) & ((label < 0) | (label >= num_classes))
    if not bool(bad.any()):
        return
    values = label[bad]
    values = values.cpu().numpy() if hasattr(values, "cpu") else np.asarray(values)
    raise error(f"{what}: label values {np.unique(values)[:8].tolist()} are outside the class list "
                f"0..{num_classes - 1} (ignore index {ignore_index}); {hint}")


class SemanticConfigError(ValueError):
    """A semantic config value, class list or mapping that cannot be used; the message names the fix."""


def resolve_path(value: str | Path) -> Path:
    """A config path as given (relative to the working directory), else relative to the repository root."""
    p = Path(value).expanduser()
    if p.exists() or p.is_absolute():
        return p
    alt = REPO_ROOT / p
    return alt if alt.exists() else p


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse a YAML file; a missing or malformed file raises SemanticConfigError naming it."""
    p = resolve_path(path)
    if not p.is_file():
        raise SemanticConfigError(f"{path}: no such {what} file")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SemanticConfigError(f"{p}: not valid YAML ({first_line(exc)})") from None


def load_class_names(value: Optional[Any]) -> List[str]:
    """Class names in label order from None (FMB), a list, or a YAML file holding a list or `class_names:`."""
    if value is None:
        return list(FMB_CLASSES)
    if isinstance(value, (str, Path)):
        data = read_yaml(value, "class list")
        if isinstance(data, dict):
            data = data.get("class_names")
        if not isinstance(data, list):
            raise SemanticConfigError(f"{value}: expected a list of class names (or a `class_names:` list)")
        value = data
    if not isinstance(value, (list, tuple)) or not value:
        raise SemanticConfigError(f"semantic.class_names: expected a non-empty list of names, got {value!r}")
    names = [str(v) for v in value]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SemanticConfigError(f"semantic.class_names: duplicate names {dup}")
    return names


def check_num_classes(names: Sequence[str], num_classes: Optional[int], where: str = "semantic.num_classes") -> int:
    """len(names), after checking it against an explicit num_classes."""
    if num_classes is not None and int(num_classes) != len(names):
        raise SemanticConfigError(f"{where}={num_classes} but the class list has {len(names)} names "
                                  f"({', '.join(names[:4])}, ...); make them agree")
    return len(names)


def resolve_ignore_classes(value: Optional[Sequence[Any]], names: Sequence[str]) -> List[int]:
    """Label values treated like the ignore index, from indices or class names (None -> none)."""
    out: List[int] = []
    for v in value or ():
        if isinstance(v, str) and not v.lstrip("-").isdigit():
            if v not in names:
                raise SemanticConfigError(f"semantic.ignore_classes: '{v}' is not in the class list {list(names)}")
            out.append(list(names).index(v))
        else:
            k = int(v)
            if not 0 <= k < len(names):
                raise SemanticConfigError(f"semantic.ignore_classes: {k} is outside 0..{len(names) - 1}")
            out.append(k)
    return sorted(set(out))


def background_classes(names: Sequence[str]) -> List[str]:
    """The class named 'background' (any case), if the list has one: FMB-style lists ignore it by default."""
    return [n for n in names if n.lower() == "background"]


def check_ignore_index(ignore_index: int, names: Sequence[str], where: str = "semantic.ignore_index") -> int:
    """The ignore index must not be a class index (it would silently drop that class)."""
    if 0 <= int(ignore_index) < len(names):
        raise SemanticConfigError(f"{where} {ignore_index} is a class index ({names[int(ignore_index)]}); use a value "
                                  f">= {len(names)} such as 255 and list the class under ignore_classes instead")
    return int(ignore_index)
