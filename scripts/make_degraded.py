"""Write degraded copies of a folder of clean IR/VIS pairs, with a labels CSV (docs/degradation.md).

    python scripts/make_degraded.py --img_dir data/demo/test --out result/degraded
    python scripts/make_degraded.py --img_dir DIR --out OUT --kinds haze,low_light --strengths 0.5,1 --seed 3

Layout of OUT (every leaf folder is a complete pair folder that test.py --img_dir accepts):
    clean/Ir/<name>.png, clean/Vis/<name>.png          the clean pairs, re-encoded as PNG
    <kind>/s<strength>/Ir/<name>.png, .../Vis/<name>.png  one folder per degradation and strength
    labels.csv   name, kind, label, strength, seed, vis, ir, clean_vis, clean_ir (paths relative to OUT)

Images keep their bit depth (8 or 16) and channel layout (a grey visible image stays grey). Existing
files are never overwritten: they are kept, and the run resumes. labels.csv is only ever extended; a
run whose settings (seed, classes) disagree with an existing labels.csv stops before writing anything.
Defaults come from configs/degradation.yaml (section make_degraded); --config files merge over it, then
--set KEY=VALUE, then the flags (unknown keys are errors). Exits 1 if a pair failed.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.degradation import DegradationError, degrade_pair, pair_seed, parse_kinds  # noqa: E402
from data.degraded_pairs import read_pair_float  # noqa: E402
from data.imageio import ImageReadError, write_image_atomic  # noqa: E402
from data.pairs import PairingError, add_pair_dir_arguments, pair_folders, resolve_dirs  # noqa: E402
from utils.atomic import atomic_path  # noqa: E402
from utils.config import ConfigError, add_config_arguments, config_from_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = ROOT / "configs" / "degradation.yaml"  # lists every key of both degradation scripts
CLEAN_PAIRS_HELP = "folder of clean pairs: Ir/ (Inf, ir, IR) and Vis/ (Vi, vi, VIS)"
COLUMNS = ["name", "kind", "label", "strength", "seed", "vis", "ir", "clean_vis", "clean_ir"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, "configs/degradation.yaml", "make_degraded.kinds=[haze]")
    add_pair_dir_arguments(p, CLEAN_PAIRS_HELP)
    p.add_argument("--out", help="output folder")
    p.add_argument("--classes", help="comma-separated class list (the label is the index in it)")
    p.add_argument("--kinds", help="comma-separated degradations to write (default: every class)")
    p.add_argument("--strengths", help="comma-separated strengths in (0, 1], e.g. 0.2,0.6,1")
    p.add_argument("--seed", type=int, help="base seed")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace, section: str, flags: Sequence[str], list_flags: Sequence[str]) -> dict:
    """configs/degradation.yaml, the --config files over it, --set items, then the flags (`classes` and `seed`
    at the top level, the others in `section`); comma-separated list flags are split; checked strictly."""
    mapping = {f: f if f in ("classes", "seed") else f"{section}.{f}" for f in flags}
    return config_from_args(args, DEFAULTS, mapping, list_flags)


def parse_strengths(spec) -> List[float]:
    """Strengths from '0.2,0.5' or a list; each in (0, 1], sorted, no duplicates."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    try:
        values = sorted({round(float(v), 6) for v in items if str(v).strip()})
    except ValueError:
        raise ConfigError(f"--strengths {spec}: expected numbers such as 0.25,0.5,1") from None
    if not values or values[0] <= 0 or values[-1] > 1:
        raise ConfigError(f"--strengths {spec}: need one or more values in (0, 1]")
    return values


def strength_dir(strength: float) -> str:
    return f"s{strength:.2f}"


def quantise(img: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float [0, 1] -> the integer type of the source file, rounded to nearest."""
    return np.round(np.clip(img, 0.0, 1.0) * float(np.iinfo(dtype).max)).astype(dtype)


def write_if_new(path: Path, img: np.ndarray) -> bool:
    """Write `img` (RGB or grey) to `path` unless it exists; True if written."""
    if path.exists():
        return False
    write_image_atomic(path, np.ascontiguousarray(img[:, :, ::-1]) if img.ndim == 3 else img)
    return True


def read_labels(path: Path) -> Dict[Tuple[str, str, str], Dict[str, str]]:
    """Existing labels.csv rows keyed by (name, kind, strength); ConfigError if it is not ours."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != COLUMNS:
            raise ConfigError(f"{path}: exists and is not a labels file of this script (columns {reader.fieldnames})")
        return {(r["name"], r["kind"], r["strength"]): r for r in reader}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args, "make_degraded", ("classes", "seed", "img_dir", "out", "kinds", "strengths"),
                           list_flags=("classes", "kinds", "strengths"))
        sec = cfg.get("make_degraded", {})
        classes = parse_kinds(cfg.get("classes"))
        kinds = parse_kinds(sec.get("kinds"), default=classes)
        outside = [k for k in kinds if k not in classes]
        if outside:
            raise ConfigError(f"--kinds {','.join(outside)}: not in the class list ({', '.join(classes)}); add to --classes")
        strengths = parse_strengths(sec.get("strengths"))
        seed = int(cfg.get("seed") or 0)
        ir_dir, vis_dir = resolve_dirs(sec.get("img_dir") if not (args.ir_dir and args.vis_dir) else None,
                                       args.ir_dir, args.vis_dir)
        out = Path(sec.get("out") or "")
        if not str(sec.get("out") or ""):
            raise ConfigError("--out: no output folder given")
    except (ConfigError, DegradationError, PairingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pairing = pair_folders(ir_dir, vis_dir)
    if not pairing.pairs:
        print(f"error: no IR/VIS pairs with matching names in {ir_dir} and {vis_dir}", file=sys.stderr)
        return 2

    def rel(p: Path) -> str:
        return p.relative_to(out).as_posix()

    plan = []  # (name, kind, strength) in writing order
    for name, _, _ in pairing.pairs:
        for kind in kinds:
            for s in ([0.0] if kind == "clean" else strengths):
                plan.append((name, kind, s))
    rows: Dict[Tuple[str, str, str], Dict[str, str]] = {}
    for name, kind, s in plan:
        folder = out / "clean" if kind == "clean" else out / kind / strength_dir(s)
        rows[(name, kind, f"{s:.6g}")] = {
            "name": name, "kind": kind, "label": str(classes.index(kind)), "strength": f"{s:.6g}",
            "seed": str(pair_seed(seed, name, kind)), "vis": rel(folder / "Vis" / f"{name}.png"),
            "ir": rel(folder / "Ir" / f"{name}.png"), "clean_vis": rel(out / "clean" / "Vis" / f"{name}.png"),
            "clean_ir": rel(out / "clean" / "Ir" / f"{name}.png")}
    labels_path = out / "labels.csv"
    existing: Dict[Tuple[str, str, str], Dict[str, str]] = {}
    try:
        if labels_path.exists():
            existing = read_labels(labels_path)
            for key, row in rows.items():
                old = existing.get(key)
                if old is not None and old != row:
                    raise ConfigError(f"{labels_path}: {key[0]} {key[1]} {key[2]} was made with other settings "
                                      f"(label {old['label']}, seed {old['seed']}); use another --out")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    written = kept = 0
    failed: List[Tuple[str, str]] = []
    done_rows = set()
    by_pair = {}
    for name, kind, s in plan:
        by_pair.setdefault(name, []).append((kind, s))
    bar = tqdm(total=len(plan), desc="degrading", unit="img", dynamic_ncols=True)
    for name, ir_path, vis_path in pairing.pairs:
        try:
            vis, ir, vis_dtype, ir_dtype = read_pair_float(ir_path, vis_path)
        except ImageReadError as exc:
            failed.append((name, str(exc)))
            bar.update(len(by_pair[name]))
            continue
        # the clean copies first: every labels row points at them
        try:
            for img, path, dt in ((vis, out / "clean" / "Vis" / f"{name}.png", vis_dtype),
                                  (ir, out / "clean" / "Ir" / f"{name}.png", ir_dtype)):
                if write_if_new(path, quantise(img, dt)):
                    written += 1
                else:
                    kept += 1
        except OSError as exc:
            failed.append((name, f"cannot write under {out}: {exc}"))
            bar.update(len(by_pair[name]))
            continue
        for kind, s in by_pair[name]:
            folder = out / "clean" if kind == "clean" else out / kind / strength_dir(s)
            try:
                if kind != "clean":
                    targets = [folder / "Vis" / f"{name}.png", folder / "Ir" / f"{name}.png"]
                    if all(t.exists() for t in targets):
                        kept += 2
                    else:
                        vis_d, ir_d = degrade_pair(vis, ir, kind, s, seed=pair_seed(seed, name, kind))
                        for img, path, dt in ((vis_d, targets[0], vis_dtype), (ir_d, targets[1], ir_dtype)):
                            if write_if_new(path, quantise(img, dt)):
                                written += 1
                            else:
                                kept += 1
                done_rows.add((name, kind, f"{s:.6g}"))
            except (OSError, DegradationError) as exc:
                failed.append((name, f"{kind} {s:g}: {exc}"))
            bar.update(1)
    bar.close()

    merged = dict(existing)
    merged.update({k: rows[k] for k in rows if k in done_rows})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for key in sorted(merged, key=lambda k: (k[0], k[1], float(k[2]))):
        w.writerow(merged[key])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(labels_path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {written} image(s), kept {kept} existing, {len(failed)} pair(s) failed | "
          f"{len(merged)} rows in {labels_path}")
    for name, reason in failed:
        print(f"  failed {name}: {reason}")
    for p in pairing.ir_only + pairing.vis_only:
        print(f"  no partner: {p}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
