"""Box label files: M3FD's VOC-style XML and YOLO-style text (ground truth, or predictions with a confidence).

Boxes are held as pixel corners (x1, y1, x2, y2) in continuous coordinates, with 0-based class indices
into a class list (M3FD's six classes by default). Formats and conventions: docs/downstream.md.

* YOLO text: one object a line, `class cx cy w h` with the centre and size divided by the image width /
  height; predictions add a trailing `conf` column. An empty file means "no objects".
* VOC XML (M3FD): `<object><name>People</name><bndbox><xmin>..</xmin><ymin>..</ymin><xmax>..</xmax>
  <ymax>..</ymax></bndbox></object>`; the corner values are taken as they are (no 1-pixel shift).

A box reaching outside the image is clipped to it with a LabelWarning; one that keeps no area is
dropped (also with a warning). Anything malformed raises LabelError naming the file and the line.
"""
from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from xml.parsers import expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from utils.atomic import atomic_path

M3FD_CLASSES: Tuple[str, ...] = ("People", "Car", "Bus", "Lamp", "Motorcycle", "Truck")
LABEL_EXTENSIONS: Tuple[str, ...] = (".txt", ".xml")


class LabelError(ValueError):
    """A label or prediction file that cannot be used; the message names the file (and line) and the problem."""


class LabelWarning(UserWarning):
    """A label that was usable after a repair (a box clipped to the image or dropped)."""


@dataclass
class Boxes:
    """Objects of one image: xyxy (N, 4) float64 pixels, labels (N,) int64, scores (N,) float64 or None."""

    xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    scores: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def make_boxes(rows: Sequence[Sequence[float]], labels: Sequence[int],
               scores: Optional[Sequence[float]] = None) -> Boxes:
    """Boxes from lists (rows of x1, y1, x2, y2)."""
    xyxy = np.asarray(rows, np.float64).reshape(-1, 4)
    lab = np.asarray(labels, np.int64).reshape(-1)
    sc = None if scores is None else np.asarray(scores, np.float64).reshape(-1)
    return Boxes(xyxy, lab, sc)


def clip_boxes(boxes: Boxes, width: int, height: int, where: str, predictions: bool = False) -> Boxes:
    """Clip boxes to [0, W] x [0, H] with a LabelWarning naming `where`.

    Ground truth: one warning per clipped box; a box left without area is dropped (with a warning).
    Predictions: one warning per file with the count; boxes without area are kept (they can match
    nothing, so they count as false positives, as the detector made them).
    """
    if len(boxes) == 0:
        return boxes
    lo = np.zeros(4)
    hi = np.array([width, height, width, height], np.float64)
    clipped = np.clip(boxes.xyxy, lo, hi)
    # a thousandth of a pixel is rounding in a text file (6 decimals of a normalised value), not an error
    moved = np.any(np.abs(clipped - boxes.xyxy) > 1e-3, axis=1)
    if predictions:
        if moved.any():
            warnings.warn(f"{where}: {int(moved.sum())} predicted box(es) reach outside the {width}x{height} "
                          f"image; clipped to it", LabelWarning, stacklevel=3)
        return Boxes(clipped, boxes.labels, boxes.scores)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    for i in np.flatnonzero(moved & keep):
        warnings.warn(f"{where}: box {i + 1} {np.round(boxes.xyxy[i], 2).tolist()} reaches outside the "
                      f"{width}x{height} image; clipped to {np.round(clipped[i], 2).tolist()}", LabelWarning,
                      stacklevel=3)
    for i in np.flatnonzero(~keep):
        warnings.warn(f"{where}: box {i + 1} {np.round(boxes.xyxy[i], 2).tolist()} has no area inside the "
                      f"{width}x{height} image; dropped", LabelWarning, stacklevel=3)
    return Boxes(clipped[keep], boxes.labels[keep], None if boxes.scores is None else boxes.scores[keep])


# ----------------------------------------------------------------------------- YOLO text

def read_yolo(path: str | os.PathLike, num_classes: int, width: int, height: int,
              with_conf: bool = False) -> Boxes:
    """Read a YOLO text file into pixel boxes of a `width` x `height` image.

    Ground truth has 5 columns (`class cx cy w h`), predictions (`with_conf`) 6 (`... conf`). Blank
    lines are skipped; an empty file gives no boxes.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise LabelError(f"{path}: not a text file") from None
    except OSError as exc:
        raise LabelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    ncol = 6 if with_conf else 5
    layout = "class cx cy w h conf" if with_conf else "class cx cy w h"
    rows, labels, scores = [], [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {lineno}"
        if len(fields) != ncol:
            raise LabelError(f"{where}: expected {ncol} values ({layout}), found {len(fields)}: '{line.strip()[:80]}'")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise LabelError(f"{where}: not a number in '{line.strip()[:80]}'") from None
        if not all(math.isfinite(v) for v in values):
            raise LabelError(f"{where}: non-finite value in '{line.strip()[:80]}'")
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < num_classes:
            raise LabelError(f"{where}: class '{fields[0]}' is not an integer in 0..{num_classes - 1}")
        cx, cy, w, h = values[1:5]
        if w < 0 or h < 0:
            raise LabelError(f"{where}: negative box size (w={fields[3]}, h={fields[4]})")
        if with_conf and not 0.0 <= values[5] <= 1.0:
            raise LabelError(f"{where}: confidence {fields[5]} is outside [0, 1]")
        rows.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
        labels.append(int(cls))
        if with_conf:
            scores.append(values[5])
    return clip_boxes(make_boxes(rows, labels, scores if with_conf else None), width, height, str(path),
                      predictions=with_conf)


def yolo_lines(boxes: Boxes, width: int, height: int) -> List[str]:
    """YOLO text lines (`class cx cy w h`, plus `conf` when the boxes have scores), 6 decimals."""
    out = []
    for i in range(len(boxes)):
        x1, y1, x2, y2 = boxes.xyxy[i]
        vals = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
        line = f"{int(boxes.labels[i])} " + " ".join(f"{v:.6f}" for v in vals)
        if boxes.scores is not None:
            line += f" {float(boxes.scores[i]):.6f}"
        out.append(line)
    return out


def write_yolo(path: str | os.PathLike, boxes: Boxes, width: int, height: int) -> None:
    """Write a YOLO text file atomically (an empty file for no boxes)."""
    lines = yolo_lines(boxes, width, height)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(line + "\n" for line in lines))


# ----------------------------------------------------------------------------- VOC XML (M3FD)

class _Element(ET.Element):
    """An XML element that remembers the line it starts on (for error messages)."""

    sourceline = 0


def _parse_xml(path: Path) -> ET.Element:
    """Parse with expat directly, so every element knows its line; errors name the file and line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    builder = ET.TreeBuilder(element_factory=_Element)
    parser = expat.ParserCreate()

    def start(tag, attrs):
        builder.start(tag, attrs).sourceline = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise LabelError(f"{path}, line {exc.lineno}: not well-formed XML ({expat.ErrorString(exc.code)})") from None
    return builder.close()


def _number(elem: ET.Element, tag: str, path: Path) -> float:
    child = elem.find(tag)
    line = getattr(elem, "sourceline", "?")
    if child is None or child.text is None or not child.text.strip():
        raise LabelError(f"{path}, line {line}: <{elem.tag}> has no <{tag}> value")
    try:
        value = float(child.text.strip())
    except ValueError:
        raise LabelError(f"{path}, line {getattr(child, 'sourceline', line)}: <{tag}> is not a number: "
                         f"'{child.text.strip()[:40]}'") from None
    if not math.isfinite(value):
        raise LabelError(f"{path}, line {getattr(child, 'sourceline', line)}: <{tag}> is not finite")
    return value


def xml_image_size(path: str | os.PathLike) -> Optional[Tuple[int, int]]:
    """(width, height) from a VOC XML's <size>, or None when it has none."""
    path = Path(path)
    size = _parse_xml(path).find("size")
    if size is None or size.find("width") is None:
        return None
    return int(_number(size, "width", path)), int(_number(size, "height", path))


def read_voc(path: str | os.PathLike, class_names: Sequence[str], width: Optional[int] = None,
             height: Optional[int] = None) -> Boxes:
    """Read a VOC-style XML (M3FD) into pixel boxes; class names match case-insensitively.

    The image size comes from the arguments, else from the XML's <size>; boxes are clipped to it.
    """
    path = Path(path)
    root = _parse_xml(path)
    if root.tag != "annotation":
        raise LabelError(f"{path}, line {getattr(root, 'sourceline', '?')}: root element is <{root.tag}>, "
                         f"expected <annotation> (VOC format)")
    lookup = {n.lower(): i for i, n in enumerate(class_names)}
    rows, labels = [], []
    for obj in root.iter("object"):
        line = getattr(obj, "sourceline", "?")
        name_el = obj.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        if not name:
            raise LabelError(f"{path}, line {line}: <object> has no <name>")
        if name.lower() not in lookup:
            raise LabelError(f"{path}, line {getattr(name_el, 'sourceline', line)}: unknown class '{name}' "
                             f"(known: {', '.join(class_names)})")
        box = obj.find("bndbox")
        if box is None:
            raise LabelError(f"{path}, line {line}: <object> '{name}' has no <bndbox>")
        x1, y1, x2, y2 = (_number(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:
            raise LabelError(f"{path}, line {getattr(box, 'sourceline', line)}: <bndbox> has xmax < xmin or "
                             f"ymax < ymin ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
        rows.append([x1, y1, x2, y2])
        labels.append(lookup[name.lower()])
    if width is None or height is None:
        size = root.find("size")
        if size is None:
            raise LabelError(f"{path}: no <size> element and no image size given")
        width, height = int(_number(size, "width", path)), int(_number(size, "height", path))
    return clip_boxes(make_boxes(rows, labels), int(width), int(height), str(path))


# ----------------------------------------------------------------------------- either

def read_labels(path: str | os.PathLike, class_names: Sequence[str], width: int, height: int) -> Boxes:
    """Ground truth of one image from a .txt (YOLO) or .xml (VOC) file, in pixels of a W x H image."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_yolo(path, len(class_names), width, height)
    if suffix == ".xml":
        return read_voc(path, class_names, width, height)
    raise LabelError(f"{path}: unknown label format '{suffix}' (expected {' or '.join(LABEL_EXTENSIONS)})")
