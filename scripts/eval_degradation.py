"""Robustness benchmark: fuse degraded copies of a folder's pairs with each method and score them
(docs/degradation.md).

    python scripts/eval_degradation.py --img_dir data/demo/test --methods sage --out result/degradation_benchmark
    python scripts/eval_degradation.py --img_dir DIR --methods sage,sgafusion \\
        --checkpoints sage=checkpoints/checkpoints.pt,sgafusion=checkpoints/sgafusion_demo.pt \\
        --kinds haze,low_light,ir_noise --strengths 0.25,0.5,1 --metrics EN,SD,Qabf,VIF --out OUT
    python scripts/eval_degradation.py --labels DEGRADED/labels.csv --methods sage --out OUT  # a made set

For every pair, degradation (--kinds) and strength (--strengths) the pair is degraded with
data/degradation.py (seeded per image and degradation, the same seed at every strength), quantised
to 8 bits as a saved file would be, and fused by every method (models/fusers.py). The clean pair is
fused too (kind 'clean', strength 0). Each fused image gets
  - the fusion metrics of metrics/ (default all 21) with the clean sources as A and B (--sources
    clean: how much of the scene survives) or the degraded inputs (--sources degraded);
  - reference metrics against the same method's fusion of the clean pair (PSNR_ref in dB on grey levels,
    SSIM_ref: 11x11 Gaussian SSIM), which measure how far the degradation moves the result.
With --labels the degraded pairs are read from a labels CSV (scripts/make_degraded.py's) instead; rows
without a clean pair are scored against their degraded inputs and get no reference metrics.

Outputs in OUT (existing files are kept: the run stops unless --overwrite):
    results.csv   method, kind, strength, name, <metrics>..., PSNR_ref, SSIM_ref  (one row per image)
    summary.csv   method, kind, strength, n, <mean of each column>
    summary.md    the tables (reference metrics across methods, then all metrics per method)
    plots/overview.png  reference metrics vs strength, a panel per degradation, a line per method
    plots/<kind>.png    every metric vs strength for one degradation, a line per method
    fused/<method>/<kind>/s<strength>/<name>.png  with --save_images
Defaults come from configs/degradation.yaml (section eval_degradation); --config files merge over it, then
--set KEY=VALUE, then the flags (unknown keys are errors). Exits 1 if a pair or a fusion
failed (the run goes on), 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.degradation import DegradationError, degrade_pair, pair_seed, parse_kinds  # noqa: E402
from data.degraded_pairs import read_pair_float  # noqa: E402
from data.imageio import ImageReadError, write_image_atomic  # noqa: E402
from data.pairs import PairingError, add_pair_dir_arguments, pair_folders, resolve_dirs  # noqa: E402
from metrics import HIGHER_IS_BETTER, MetricNameError, compute_metrics, parse_metric_list  # noqa: E402
from metrics.evaluate import format_value, summarize  # noqa: E402
from models.checkpoint import CheckpointError  # noqa: E402
from models.engines import EngineError  # noqa: E402
from models.fusers import FuserError, get_fuser  # noqa: E402
from scripts.make_degraded import CLEAN_PAIRS_HELP, build_config, parse_strengths, strength_dir  # noqa: E402
from utils.atomic import atomic_path  # noqa: E402
from utils.config import ConfigError, add_config_arguments  # noqa: E402
from utils.device import DeviceError, pick_device  # noqa: E402
from utils.errors import first_line  # noqa: E402

REFERENCE_METRICS = ("PSNR", "SSIM")  # against the clean fusion; columns are named <metric>_ref
OUTPUTS = ("results.csv", "summary.csv", "summary.md")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, "configs/degradation.yaml", "eval_degradation.sources=degraded")
    add_pair_dir_arguments(p, CLEAN_PAIRS_HELP)
    p.add_argument("--out", help="output folder")
    p.add_argument("--labels", help="score an already degraded set instead: a labels CSV (scripts/make_degraded.py's; "
                                    "clean_vis/clean_ir may be empty where no clean pair exists)")
    p.add_argument("--methods", help="comma-separated fusion methods (models/fusers.py): sage, sgafusion, average")
    p.add_argument("--checkpoints", help="method=path,... (or paths in the order of --methods; 'default' keeps the config's)")
    p.add_argument("--kinds", help="comma-separated degradations (default: every class but clean)")
    p.add_argument("--classes", help="comma-separated class list (the default for --kinds)")
    p.add_argument("--strengths", help="comma-separated strengths in (0, 1]")
    p.add_argument("--metrics", help="comma-separated fusion metrics, e.g. EN,SD,SSIM (default: all 21)")
    p.add_argument("--reference_metrics", help="comma-separated metrics against the clean fusion: PSNR, SSIM ('none': skip)")
    p.add_argument("--sources", choices=("clean", "degraded"), help="source images A, B of the fusion metrics")
    p.add_argument("--seed", type=int, help="base seed of the degradations")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--max_pairs", type=int, help="use only the first N pairs (by name)")
    p.add_argument("--save_images", action="store_true", default=None, help="also write the fused images")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--no_plots", action="store_true", help="tables only, no plots")
    return p.parse_args(argv)


def _list(spec) -> List[str]:
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [str(s).strip() for s in items if str(s).strip()]


def parse_checkpoints(spec, methods: Sequence[str], defaults: Dict[str, Optional[str]]) -> Dict[str, Optional[str]]:
    """{method: checkpoint} from 'm=path,...' or paths in method order ('default' or '' keeps the default)."""
    out = {m: defaults.get(m) for m in methods}
    items = _list(spec)
    if not items:
        return out
    if all("=" in it for it in items):
        for it in items:
            m, path = (s.strip() for s in it.split("=", 1))
            if m not in out:
                raise ConfigError(f"--checkpoints {it}: method '{m}' is not in --methods ({', '.join(methods)})")
            out[m] = path or out[m]
        return out
    if any("=" in it for it in items) or len(items) > len(methods):
        raise ConfigError(f"--checkpoints {spec}: give method=path pairs, or at most one path per method in order")
    for m, path in zip(methods, items):
        out[m] = out[m] if path == "default" else path
    return out


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 RGB or grey -> (H, W) uint8 grey levels exactly as metrics/ reads files (Pillow convert('L'))."""
    return img if img.ndim == 2 else np.array(Image.fromarray(img, "RGB").convert("L"), dtype=np.uint8)


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def reference_scores(fused: np.ndarray, ref: np.ndarray, names: Sequence[str]) -> Dict[str, float]:
    """{<name>_ref: value}: PSNR (dB, peak 255) and SSIM (11x11 Gaussian window, sigma 1.5) of grey `fused` vs `ref`."""
    import kornia

    out: Dict[str, float] = {}
    f = torch.from_numpy(fused.astype(np.float32) / 255.0)[None, None]
    r = torch.from_numpy(ref.astype(np.float32) / 255.0)[None, None]
    for name in names:
        if name == "PSNR":
            mse = float(((f - r) ** 2).mean())
            out["PSNR_ref"] = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
        elif name == "SSIM":
            out["SSIM_ref"] = float(kornia.metrics.ssim(f, r, 11).mean())
    return out


Pair = Tuple[np.ndarray, np.ndarray]  # (vis float RGB (H, W, 3) or grey (H, W), ir float (H, W)) in [0, 1]


@dataclass
class Group:
    """One image: its clean pair (a loader, or None when there is no clean reference) and its degraded
    versions as (kind, strength, loader(clean pair or None) -> degraded pair)."""

    name: str
    clean: Optional[Callable[[], Pair]]
    variants: List[Tuple[str, float, Callable[[Optional[Pair]], Pair]]]


def synthetic_groups(pairs, kinds: Sequence[str], strengths: Sequence[float], seed: int) -> List[Group]:
    """Groups for clean pairs degraded here (data/degradation.py, seed pair_seed(seed, name, kind))."""
    groups = []
    for name, ir_path, vis_path in pairs:
        def load(ir_path=ir_path, vis_path=vis_path) -> Pair:
            return read_pair_float(ir_path, vis_path)[:2]

        def make(kind: str, s: float, name=name) -> Callable[[Optional[Pair]], Pair]:
            return lambda clean: degrade_pair(clean[0], clean[1], kind, s, seed=pair_seed(seed, name, kind))
        groups.append(Group(name, load, [(k, s, make(k, s)) for k in kinds for s in strengths]))
    return groups


LABEL_COLUMNS = ("name", "kind", "strength", "vis", "ir")


def labelled_groups(labels: Path) -> List[Group]:
    """Groups from a labels CSV (scripts/make_degraded.py's, or any with name, kind, strength, vis, ir and
    optionally clean_vis, clean_ir; paths relative to the CSV's folder). Rows of kind 'clean' are skipped
    (the clean pair is scored from clean_vis/clean_ir); an empty clean_vis means no clean reference."""
    try:
        with labels.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{labels}: not a labels file (missing columns {', '.join(missing)})")
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(f"{labels}: cannot read ({exc.strerror or exc})") from None
    base = labels.parent
    groups: Dict[str, Group] = {}
    for i, r in enumerate(rows, start=2):
        try:
            s = float(r["strength"])
        except ValueError:
            raise ConfigError(f"{labels}: line {i}: strength '{r['strength']}' is not a number") from None
        name, cv, ci = r["name"], (r.get("clean_vis") or "").strip(), (r.get("clean_ir") or "").strip()
        if name not in groups:
            clean = (lambda cv=cv, ci=ci: read_pair_float(base / ci, base / cv)[:2]) if cv and ci else None
            groups[name] = Group(name, clean, [])
        if r["kind"] != "clean":
            groups[name].variants.append(
                (r["kind"], s, lambda _clean, v=r["vis"], ir=r["ir"]: read_pair_float(base / ir, base / v)[:2]))
    return list(groups.values())


def run(groups: Sequence[Group], fusers: Dict[str, Callable], metrics: Sequence[str], ref_names: Sequence[str],
        sources: str, device: torch.device, save_dir: Optional[Path], progress: bool = True
        ) -> Tuple[List[Dict], List[str]]:
    """Load or degrade, fuse and score; returns (rows, errors). One row per (method, kind, strength, image).

    Without a clean pair the metrics use the degraded inputs as sources and the reference metrics are NaN.
    """
    rows: List[Dict] = []
    errors: List[str] = []
    bar = tqdm(total=sum((1 + len(g.variants)) * len(fusers) for g in groups), desc="degrade+fuse+score",
               unit="img", dynamic_ncols=True, disable=not progress)
    nan_ref = {f"{m}_ref": math.nan for m in ref_names}
    for g in groups:
        clean: Optional[Pair] = None
        if g.clean is not None:
            try:
                clean = g.clean()
            except (ImageReadError, OSError) as exc:
                errors.append(f"{g.name}: {first_line(exc)[:200]}")
                bar.update((1 + len(g.variants)) * len(fusers))
                continue
        else:
            bar.update(len(fusers))  # no clean pair to score
        clean8 = (to_u8(clean[0]), to_u8(clean[1])) if clean is not None else None
        clean_fused: Dict[str, np.ndarray] = {}
        jobs = ([("clean", 0.0, None)] if clean is not None else []) + list(g.variants)
        for kind, s, load in jobs:
            if load is None:
                vis8, ir8 = clean8
            else:
                try:
                    vis_d, ir_d = load(clean)
                except (DegradationError, ImageReadError, OSError) as exc:
                    errors.append(f"{g.name} {kind} {s:g}: {first_line(exc)[:200]}")
                    bar.update(len(fusers))
                    continue
                vis8, ir8 = to_u8(vis_d), to_u8(ir_d)
            src = clean8 if (sources == "clean" and clean8 is not None) else (vis8, ir8)
            a, b = to_gray(src[1]), to_gray(src[0])
            for method, fuse in fusers.items():
                bar.update(1)
                if clean is not None and kind != "clean" and method not in clean_fused:
                    continue  # its clean fusion failed (reported once)
                try:
                    fused = fuse(vis8, ir8)
                except Exception as exc:  # noqa: BLE001 - any fusion error: reported, the run goes on
                    errors.append(f"{g.name} {kind} {s:g} {method}: fusion failed ({first_line(exc)[:200]})")
                    continue
                fused_g = to_gray(fused)
                if save_dir is not None:
                    sub = save_dir / method / ("clean" if kind == "clean" else f"{kind}/{strength_dir(s)}")
                    try:
                        write_image_atomic(sub / f"{g.name}.png",
                                           np.ascontiguousarray(fused[:, :, ::-1]) if fused.ndim == 3 else fused)
                    except OSError as exc:
                        errors.append(f"{g.name} {kind} {s:g} {method}: cannot write {sub / (g.name + '.png')} ({exc})")
                if fused_g.shape != a.shape:
                    errors.append(f"{g.name} {kind} {s:g}: degraded images are "
                                  f"{fused_g.shape[1]}x{fused_g.shape[0]}, the clean pair {a.shape[1]}x{a.shape[0]}")
                    continue
                values = compute_metrics(a, b, fused_g, metrics, device, warn=False)
                if kind == "clean":
                    clean_fused[method] = fused_g
                    ref = dict(nan_ref)
                elif method in clean_fused:
                    ref = reference_scores(fused_g, clean_fused[method], ref_names)
                else:
                    ref = dict(nan_ref)
                rows.append({"method": method, "kind": kind, "strength": s, "name": g.name, **values, **ref})
    bar.close()
    return rows, errors


def aggregate(rows: Sequence[Dict], columns: Sequence[str]) -> List[Dict]:
    """Mean per (method, kind, strength) over images, in first-seen order."""
    groups: Dict[Tuple[str, str, float], List[Dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["kind"], r["strength"]), []).append(r)
    out = []
    for (method, kind, s), items in groups.items():
        mean, _ = summarize([{c: r[c] for c in columns} for r in items], columns)
        out.append({"method": method, "kind": kind, "strength": s, "n": len(items), **mean})
    return out


def csv_text(rows: Sequence[Dict], header: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([repr(float(r[c])) if isinstance(r[c], float) else r[c] for c in header])
    return buf.getvalue()


def _better(col: str) -> str:
    base = col[:-4] if col.endswith("_ref") else col
    return "↑" if HIGHER_IS_BETTER.get(base, True) else "↓"


def markdown(summary: Sequence[Dict], methods: Sequence[str], metrics: Sequence[str], ref_cols: Sequence[str]) -> str:
    """The Markdown report: reference metrics side by side for the methods, then each method's metrics."""
    keys = []
    for r in summary:
        if (r["kind"], r["strength"]) not in keys:
            keys.append((r["kind"], r["strength"]))
    index = {(r["method"], r["kind"], r["strength"]): r for r in summary}
    lines = ["# Robustness to degradation", ""]

    def cell(method, key, col):
        r = index.get((method, *key))
        return format_value(r[col]) if r is not None else "-"
    if ref_cols:
        lines += ["## Against each method's fusion of the clean pair", ""]
        head = [f"{m} {c} {_better(c)}" for c in ref_cols for m in methods]
        lines += ["| degradation | strength | " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(head)]
        for key in keys:
            if key[0] == "clean":
                continue
            vals = [cell(m, key, c) for c in ref_cols for m in methods]
            lines.append(f"| {key[0]} | {key[1]:g} | " + " | ".join(vals) + " |")
        lines.append("")
    for m in methods:
        lines += [f"## {m}: fusion metrics", ""]
        lines += ["| degradation | strength | n | " + " | ".join(f"{c} {_better(c)}" for c in metrics) + " |",
                  "|---|---:|---:|" + "---:|" * len(metrics)]
        for key in keys:
            r = index.get((m, *key))
            if r is None:
                continue
            lines.append(f"| {key[0]} | {key[1]:g} | {r['n']} | " + " | ".join(format_value(r[c]) for c in metrics) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(out: Path, summary: Sequence[Dict], methods: Sequence[str], kinds: Sequence[str], metrics: Sequence[str],
         ref_cols: Sequence[str]) -> List[Path]:
    """plots/overview.png (reference metrics per degradation) and plots/<kind>.png (every metric)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    index = {(r["method"], r["kind"], r["strength"]): r for r in summary}

    def series(method, kind, col):
        pts = sorted((s, r[col]) for (m, k, s), r in index.items() if m == method and k in (kind, "clean")
                     and math.isfinite(r[col]))
        return [p[0] for p in pts], [p[1] for p in pts]

    def figure(path: Path, panels: List[Tuple[str, str, str]], title: str, cols: int = 6) -> None:
        cols = max(1, min(cols, len(panels)))
        rows_n = math.ceil(len(panels) / cols)
        height = 2.3 * rows_n + 0.6
        fig, axes = plt.subplots(rows_n, cols, figsize=(2.6 * cols + 0.5, height), squeeze=False)
        fig.subplots_adjust(left=0.5 / (2.6 * cols + 0.5), right=0.98, bottom=0.45 / height, top=1 - 0.5 / height,
                            wspace=0.35, hspace=0.6)  # fixed spacing: tight_layout costs seconds per figure
        for ax in axes.flat[len(panels):]:
            ax.axis("off")
        for ax, (kind, col, label) in zip(axes.flat, panels):
            for m in methods:
                xs, ys = series(m, kind, col)
                ax.plot(xs, ys, marker="o", markersize=3, label=m)
            ax.set_title(label, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("strength", fontsize=7)
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(title, fontsize=11)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)

    written = []
    if ref_cols:
        panels = [(k, c, f"{k}: {c} {_better(c)}") for c in ref_cols for k in kinds]
        figure(folder / "overview.png", panels, "fused degraded pair vs fused clean pair", cols=min(len(kinds), 8))
        written.append(folder / "overview.png")
    for k in kinds:
        panels = [(k, c, f"{c} {_better(c)}") for c in list(metrics) + list(ref_cols)]
        figure(folder / f"{k}.png", panels, f"{k} (strength 0 = clean pair)")
        written.append(folder / f"{k}.png")
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.reference_metrics is not None and args.reference_metrics.strip().lower() == "none":
            args.reference_metrics = ""
        cfg = build_config(args, "eval_degradation", (
            "classes", "seed", "img_dir", "out", "methods", "kinds", "strengths", "metrics", "reference_metrics",
            "sources", "device", "save_images"), list_flags=("classes", "methods", "kinds", "strengths",
                                                             "reference_metrics"))
        sec = cfg.get("eval_degradation", {})
        classes = parse_kinds(cfg.get("classes"))
        kinds = parse_kinds(sec.get("kinds"), default=[c for c in classes if c != "clean"])
        kinds = [k for k in kinds if k != "clean"]  # the clean pair is always scored
        strengths = parse_strengths(sec.get("strengths"))
        metrics = parse_metric_list(sec.get("metrics"))
        ref_names = [n.upper() for n in _list(sec.get("reference_metrics"))]
        bad = [n for n in ref_names if n not in REFERENCE_METRICS]
        if bad:
            raise ConfigError(f"--reference_metrics {','.join(bad)}: choose from {', '.join(REFERENCE_METRICS)}")
        sources = sec.get("sources") or "clean"
        if sources not in ("clean", "degraded"):
            raise ConfigError(f"sources {sources}: choose clean or degraded")
        methods = _list(sec.get("methods"))
        if not methods:
            raise ConfigError("--methods: no method named")
        checkpoints = parse_checkpoints(args.checkpoints, methods, dict(sec.get("checkpoints") or {}))
        device = pick_device(sec.get("device") or "auto")
        pairing = None
        if args.labels:
            groups = labelled_groups(Path(args.labels))
            if args.max_pairs:
                groups = groups[:args.max_pairs]
            kinds = list(dict.fromkeys(k for g in groups for k, _, _ in g.variants))
        else:
            ir_dir, vis_dir = resolve_dirs(sec.get("img_dir") if not (args.ir_dir and args.vis_dir) else None,
                                           args.ir_dir, args.vis_dir)
            pairing = pair_folders(ir_dir, vis_dir)
            if not pairing.pairs:
                raise PairingError(f"no IR/VIS pairs with matching names in {ir_dir} and {vis_dir}")
            pairs = pairing.pairs[:args.max_pairs] if args.max_pairs else pairing.pairs
            groups = synthetic_groups(pairs, kinds, strengths, int(cfg.get("seed") or 0))
        if not groups:
            raise ConfigError(f"{args.labels}: no rows")
        if not sec.get("out"):
            raise ConfigError("--out: no output folder given")
        out = Path(sec["out"])
        existing = [out / f for f in OUTPUTS if (out / f).exists()]
        if existing and not args.overwrite:
            raise ConfigError(f"{existing[0]}: exists (an earlier run); use another --out or --overwrite")
        fusers = {m: get_fuser(m, checkpoints.get(m), device) for m in methods}
    except (ConfigError, DegradationError, MetricNameError, DeviceError, PairingError, FuserError,
            CheckpointError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_dir = out / "fused" if sec.get("save_images") else None
    rows, errors = run(groups, fusers, metrics, ref_names, sources, device, save_dir, progress=not args.no_progress)
    ref_cols = [f"{n}_ref" for n in ref_names]
    columns = list(metrics) + ref_cols
    summary = aggregate(rows, columns)
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in (("results.csv", csv_text(rows, ["method", "kind", "strength", "name", *columns])),
                        ("summary.csv", csv_text(summary, ["method", "kind", "strength", "n", *columns])),
                        ("summary.md", markdown(summary, methods, metrics, ref_cols))):
        with atomic_path(out / fname) as tmp:
            tmp.write_text(text, encoding="utf-8")
    plots = plot(out, summary, methods, kinds, metrics, ref_cols) if summary and not args.no_plots else []
    print(f"scored {len(rows)} fused image(s) of {len(groups)} pair(s), {len(methods)} method(s), "
          f"{len(kinds)} degradation(s); {len(errors)} error(s) | "
          f"report: {out}/ (results.csv, summary.csv, summary.md, {len(plots)} plot(s))")
    for e in errors:
        print(f"  failed {e}")
    for p in (pairing.ir_only + pairing.vis_only) if pairing is not None else []:
        print(f"  no partner: {p}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
