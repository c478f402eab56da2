"""Generate the small synthetic demo dataset under data/demo/ (deterministic).

Each scene is a street at night or in fog: warm people and vehicles are bright in the infrared image
and hard to see in the visible one; texture and colour exist only in the visible image. Labels follow
FMB's 15 classes (0 background, 1 Road, 2 Sidewalk, 3 Building, 4 Lamp, 5 Sign, 6 Vegetation, 7 Sky,
8 Person, 9 Car, 10 Truck, 11 Bus, 12 Motorcycle, 13 Bicycle, 14 Pole). Boxes/ holds YOLO text files
(`class cx cy w h`, M3FD's classes 0 People, 1 Car, 2 Bus, 5 Truck) around the visible part of each
person and vehicle, for the detection demo (docs/downstream.md).

    python scripts/make_demo_data.py --out data/demo [--train 6 --test 3 --width 256 --height 192]

The output is committed; re-running with the same arguments reproduces it byte for byte.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.imageio import write_image_atomic  # noqa: E402
from downstream.detection.labels import M3FD_CLASSES, Boxes, make_boxes, write_yolo  # noqa: E402

ROAD, SIDEWALK, BUILDING, LAMP, SIGN, VEG, SKY, PERSON, CAR, TRUCK, BUS, MOTO, BICYCLE, POLE = range(1, 15)

# Box classes (M3FD's list, downstream.detection.labels.M3FD_CLASSES) of the labelled objects.
BOX_CLASS = {PERSON: M3FD_CLASSES.index("People"), CAR: M3FD_CLASSES.index("Car"),
             BUS: M3FD_CLASSES.index("Bus"), TRUCK: M3FD_CLASSES.index("Truck")}

# Visible colour (BGR, 0..255) and infrared temperature (0..1) per class.
VIS_BGR = {0: (60, 60, 60), ROAD: (90, 90, 95), SIDEWALK: (140, 150, 160), BUILDING: (110, 130, 170),
           LAMP: (200, 230, 255), SIGN: (40, 40, 200), VEG: (50, 130, 60), SKY: (200, 160, 110),
           PERSON: (70, 60, 90), CAR: (60, 50, 160), TRUCK: (150, 150, 150), BUS: (40, 170, 220),
           MOTO: (30, 30, 30), BICYCLE: (40, 40, 40), POLE: (80, 80, 80)}
IR_TEMP = {0: 0.25, ROAD: 0.42, SIDEWALK: 0.38, BUILDING: 0.33, LAMP: 0.75, SIGN: 0.3, VEG: 0.28, SKY: 0.08,
           PERSON: 0.95, CAR: 0.78, TRUCK: 0.72, BUS: 0.7, MOTO: 0.82, BICYCLE: 0.5, POLE: 0.3}


def smooth_noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: random values on a coarse grid, upsampled bicubically."""
    small = rng.uniform(-1, 1, (max(2, h // scale), max(2, w // scale))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def draw_scene(rng: np.random.Generator, h: int, w: int, objects: Optional[list] = None) -> np.ndarray:
    """A label map (H, W) uint8 of one street scene.

    When `objects` is a list, each person and vehicle is appended to it as (class, own mask (H, W) bool),
    the mask drawn with the same calls as the scene (no extra random numbers are drawn).
    """
    lab = np.full((h, w), SKY, np.uint8)

    def own(draw, cls: int) -> None:
        if objects is not None:
            m = np.zeros((h, w), np.uint8)
            draw(m, 1)
            objects.append((cls, m > 0))

    horizon = int(h * rng.uniform(0.38, 0.5))
    # buildings along the horizon
    x = 0
    while x < w:
        bw = int(rng.integers(w // 8, w // 4))
        top = int(horizon - rng.integers(h // 8, horizon - h // 12))
        lab[max(top, 0):horizon + 2, x:x + bw] = BUILDING
        x += bw + int(rng.integers(0, w // 20))
    # vegetation blobs
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = int(rng.integers(0, w)), int(horizon - rng.integers(0, h // 10))
        cv2.ellipse(lab, (cx, cy), (int(rng.integers(w // 20, w // 9)), int(rng.integers(h // 14, h // 8))),
                    0, 0, 360, VEG, -1)
    # road (trapezoid) and sidewalks
    lab[horizon:] = SIDEWALK
    vx = int(w * rng.uniform(0.35, 0.65))
    road = np.array([[vx - w // 30, horizon], [vx + w // 30, horizon], [w + w // 3, h], [-w // 3, h]], np.int32)
    cv2.fillPoly(lab, [road], ROAD)
    # poles, a lamp and a sign
    for _ in range(int(rng.integers(1, 3))):
        px = int(rng.integers(0, w))
        ptop = int(horizon - rng.integers(h // 6, h // 3))
        cv2.rectangle(lab, (px, ptop), (px + max(2, w // 120), int(horizon + h * 0.2)), POLE, -1)
        cv2.circle(lab, (px + 1, ptop), max(3, w // 80), LAMP, -1)
    sx = int(rng.integers(w // 10, w - w // 10))
    cv2.rectangle(lab, (sx, horizon - h // 8), (sx + w // 25, horizon - h // 8 + h // 20), SIGN, -1)
    # vehicles, nearer ones lower and bigger
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.choice([CAR, CAR, TRUCK, BUS]))
        cy = int(rng.uniform(horizon + h * 0.1, h * 0.92))
        s = (cy - horizon) / (h - horizon)
        vw, vh = int(w * (0.12 + 0.22 * s) * (1.4 if cls != CAR else 1)), int(h * (0.07 + 0.14 * s))
        cx = int(rng.integers(0, max(1, w - vw)))

        def vehicle(img, value, cx=cx, cy=cy, vw=vw, vh=vh):
            cv2.rectangle(img, (cx, cy - vh), (cx + vw, cy), value, -1)
            for wx in (cx + vw // 5, cx + 4 * vw // 5):
                cv2.circle(img, (wx, cy), max(2, vh // 5), value, -1)  # wheels belong to the vehicle

        vehicle(lab, cls)
        own(vehicle, cls)
    # people, and sometimes a cyclist
    for _ in range(int(rng.integers(2, 5))):
        py = int(rng.uniform(horizon + h * 0.05, h * 0.97))
        s = (py - horizon) / (h - horizon)
        ph, pw = int(h * (0.1 + 0.25 * s)), max(3, int(w * (0.015 + 0.03 * s)))
        px = int(rng.integers(pw, w - pw))

        def person(img, value, px=px, py=py, ph=ph, pw=pw):
            cv2.ellipse(img, (px, py - ph // 2), (pw, ph // 2 - ph // 8), 0, 0, 360, value, -1)
            cv2.circle(img, (px, py - ph + ph // 8), max(2, pw * 2 // 3), value, -1)

        person(lab, PERSON)
        own(person, PERSON)
        if rng.uniform() < 0.3:
            cv2.circle(lab, (px + pw * 2, py), max(2, ph // 6), BICYCLE, 2)
    return lab


def object_boxes(lab: np.ndarray, objects: list, min_visible: float = 0.25, min_pixels: int = 12) -> Boxes:
    """Boxes (M3FD classes) around the visible part of each person and vehicle of a scene.

    An object keeps the pixels of its own mask that still carry its class in the final label map
    (later objects may cover it); one with fewer than `min_visible` of its pixels or `min_pixels`
    pixels left is not labelled.
    """
    rows, labels = [], []
    for cls, mask in objects:
        visible = mask & (lab == cls)
        n = int(visible.sum())
        if n < min_pixels or n < min_visible * int(mask.sum()):
            continue
        ys, xs = np.nonzero(visible)
        rows.append([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
        labels.append(BOX_CLASS[cls])
    return make_boxes(rows, labels)


def render(rng: np.random.Generator, lab: np.ndarray, condition: str):
    """(VIS BGR uint8, IR gray uint8) for a label map."""
    h, w = lab.shape
    vis = np.zeros((h, w, 3), np.float32)
    ir = np.zeros((h, w), np.float32)
    for cls in np.unique(lab):
        m = lab == cls
        vis[m] = VIS_BGR[int(cls)]
        ir[m] = IR_TEMP[int(cls)]
    # visible texture: colour variation, window grids on buildings, lane marks
    vis += 18 * smooth_noise(rng, h, w, 6)[..., None] + 6 * smooth_noise(rng, h, w, 3)[..., None]
    yy, xx = np.mgrid[0:h, 0:w]
    windows = (lab == BUILDING) & ((yy // 6) % 3 == 0) & ((xx // 5) % 3 == 0)
    vis[windows] = (120, 210, 240) if rng.uniform() < 0.5 else (40, 60, 80)
    lanes = (lab == ROAD) & (np.abs(xx - w / 2 - (yy - h) * 0.05) < 2) & ((yy // 8) % 2 == 0)
    vis[lanes] = (220, 220, 220)
    if condition == "night":
        vis *= 0.25
    else:  # fog: blend towards a bright grey with depth (top = far)
        fog = np.clip(1.1 - yy / h, 0.35, 0.9)[..., None]
        vis = vis * (1 - fog) + 185 * fog
    # infrared: smooth temperatures, sensor blur and noise, no texture
    ir += 0.04 * smooth_noise(rng, h, w, 8)
    ir = cv2.GaussianBlur(ir, (0, 0), 1.2)
    return (np.clip(vis, 0, 255) + 0.5).astype(np.uint8), (np.clip(ir, 0, 1) * 255 + 0.5).astype(np.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/demo", help="output root (train/ and test/ go inside)")
    p.add_argument("--train", type=int, default=6, help="number of training scenes")
    p.add_argument("--test", type=int, default=3, help="number of test scenes")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--seed", type=int, default=2025)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    for split, n in (("train", a.train), ("test", a.test)):
        for i in range(n):
            name = f"{split}_{i:03d}"
            objects: list = []
            lab = draw_scene(rng, a.height, a.width, objects)
            vis, ir = render(rng, lab, "night" if i % 2 == 0 else "fog")
            write_image_atomic(out / split / "Vis" / f"{name}.png", vis)
            write_image_atomic(out / split / "Ir" / f"{name}.png", ir)
            if split == "train":
                write_image_atomic(out / split / "Label" / f"{name}.png", lab)
            write_yolo(out / split / "Boxes" / f"{name}.txt", object_boxes(lab, objects), a.width, a.height)
    print(f"wrote {a.train} training and {a.test} test scenes ({a.width}x{a.height}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
