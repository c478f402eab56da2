"""Benchmark the inference engines: median time per pair, speed-up over the reference, output difference, memory.

    python scripts/benchmark.py                              # student, 1024x768, engines reference,reference+malloc,fast,onnx
    python scripts/benchmark.py --engines reference,fast,compile,onnx --repeats 7
    python scripts/benchmark.py --model teacher              # teacher at 800x600: explicit attention vs SDPA

Student: a real 1024x768 pair from the reference data's sage_reference/data/test ($SAGE_REFERENCE_DIR, docs/testing.md) when present (else a synthetic
one). Weights: --checkpoint, else checkpoints/checkpoints.pt (where scripts/download_weights.py puts the
authors' file), else the copy in the reference data, else random weights (said so in the output;
the timings hold for any weights, the differences are those of random weights). Every engine
is warmed up, then the engines are timed in turns (round robin, so a busy machine slows them alike)
and the median is reported. `reference` is the plain module in a default process (as the release
runs it); every other row uses test.py's process setting keep_freed_memory (glibc malloc reuses
freed feature maps, utils/memory.py), and `reference+malloc` shows what that setting alone
gives the plain module. The difference is the largest per-channel difference, in grey levels,
between the 8-bit colour outputs of the engine and of the reference. Peak memory is measured in a
fresh process per engine (peak RSS on CPU, peak allocated on CUDA). The last line reads
`speedup <ratio>x maxdiff <levels>` for the --headline engine (default: the engine test.py's default
`--engine auto` runs, which is `fast`; onnx is an option, not the default).

Teacher: random weights (no teacher is released), the real pair resized to 800x600 with synthetic
segment images; "explicit" is the release's softmax(QK^T)V attention (the reference), "sdpa" PyTorch's
scaled_dot_product_attention. Explicit attention is skipped when its attention matrices would not fit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data.colour import fused_to_bgr8  # noqa: E402
from data.imageio import read_ir, read_vis  # noqa: E402
from models.inference import fuse_padded  # noqa: E402
from utils.reference import reference_dir  # noqa: E402

SHARED = reference_dir() / "sage_reference"
REAL_PAIR = (SHARED / "data" / "test" / "Ir" / "00000.png", SHARED / "data" / "test" / "Vis" / "00000.png")
LOCAL_CKPT = ROOT / "checkpoints" / "checkpoints.pt"      # where the README puts the authors' file
RELEASE_CKPT = SHARED / "checkpoints" / "checkpoints.pt"  # the reference data's copy beside the checkout
STUDENT_ENGINES = ("reference", "reference+malloc", "fast", "onnx")
TEACHER_ENGINES = ("explicit", "sdpa")


# ---- inputs ----------------------------------------------------------------------------------------
def load_inputs(size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor, str]:
    """(VIS YCrCb (3, H, W), IR (1, H, W), description) at size (W, H): the real pair, resized if needed."""
    import cv2
    w, h = size
    if all(p.is_file() for p in REAL_PAIR):
        ir, (vis, _) = read_ir(REAL_PAIR[0]), read_vis(REAL_PAIR[1])
        src = f"real pair {REAL_PAIR[1].name} of {REAL_PAIR[1].parent.parent}"
        if ir.shape != (h, w):
            ir = cv2.resize(ir, (w, h), interpolation=cv2.INTER_AREA)
            vis = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in vis])
            src += f" resized to {w}x{h}"
    else:
        rng = np.random.default_rng(0)
        smooth = lambda c: cv2.resize(rng.random((h // 16, w // 16, c), dtype=np.float32), (w, h)).reshape(h, w, c)
        ir = smooth(1)[..., 0]
        vis = np.concatenate([smooth(1), 0.5 + 0.1 * (smooth(2) - 0.5)], axis=2).transpose(2, 0, 1)
        src = f"synthetic {w}x{h} pair (no {REAL_PAIR[0].parent.parent})"
    return torch.from_numpy(np.ascontiguousarray(vis)), torch.from_numpy(np.ascontiguousarray(ir))[None], src


def segment_images(h: int, w: int, k: int = 4, seed: int = 0) -> torch.Tensor:
    """(1, k, H, W) synthetic segment images: piecewise-constant random blobs in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, k, max(1, h // 64), max(1, w // 64), generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="nearest")


# ---- engines -----------------------------------------------------------------------------------------
def pick_checkpoint(checkpoint: Optional[str]) -> Tuple[Optional[Path], str]:
    """(student weights to benchmark or None for random weights, a line saying which and why)."""
    if checkpoint:
        return Path(checkpoint), f"{checkpoint} (--checkpoint)"
    for path, why in ((LOCAL_CKPT, "the authors' file in checkpoints/"),
                      (RELEASE_CKPT, "the authors' file in the reference data")):
        if path.is_file():
            return path, f"{path} ({why})"
    local = LOCAL_CKPT.relative_to(ROOT) if LOCAL_CKPT.is_relative_to(ROOT) else LOCAL_CKPT
    return None, (f"RANDOM weights: no --checkpoint and no {local} "
                  "(`python scripts/download_weights.py` fetches the authors' file); the timings hold for any "
                  "weights, the max diff column is that of random weights")


def student_runners(names, checkpoint: Optional[str], device, workdir: Path) -> Tuple[Dict[str, Callable], str]:
    """name -> fn(y, ir) -> fused, for the student engines `names`; and a description (weights, engines)."""
    from models.checkpoint import load_student
    from models.engines import build_engine, export_student_onnx
    from models.student import Student
    ckpt, weights = pick_checkpoint(checkpoint)
    if ckpt:
        model = load_student(ckpt, device)
    else:
        torch.manual_seed(0)
        model = Student().to(device).eval()
    described = []
    onnx_path = None
    if "onnx" in names:
        onnx_path = export_student_onnx(model, workdir / "student.onnx")
        model.to(device)
    from utils.memory import keep_freed_memory
    runners = {}
    for n in names:
        base = "reference" if n == "reference+malloc" else n
        engine = build_engine(base, model, onnx_path=onnx_path, device=device)
        # test.py's allocator setting for every engine but the plain reference (the release's process)
        tuned = n != "reference"

        def run(y, ir, e=engine, tuned=tuned):
            if device.type == "cpu":
                keep_freed_memory(tuned)
            return fuse_padded(e, y, ir)
        runners[n] = run
        described.append(f"{n}: {engine.describe()}" + (" with malloc reusing freed memory" if tuned else ""))
    return runners, f"weights: {weights}\n  engines: {'; '.join(described)}"


def attention_bytes(h: int, w: int, heads: int = 2, pool: int = 4, multiple: int = 16) -> int:
    """Bytes of one explicit attention matrix at the teacher's full-size SPA level (float32, batch 1)."""
    hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    n = (hp // pool) * (wp // pool)
    return heads * n * n * 4


def available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def teacher_runners(names, device, size) -> Tuple[Dict[str, Callable], str, Dict[str, str]]:
    """name -> fn(y, ir) -> fused for the teacher's attention implementations; skipped name -> reason."""
    from models.teacher import Teacher
    w, h = size
    torch.manual_seed(0)
    model = Teacher(mask_channels=4, attn_impl="sdpa").to(device).eval()
    vm, im = segment_images(h, w, seed=1).to(device), segment_images(h, w, seed=2).to(device)
    runners, skipped = {}, {}
    from models.attention import set_attn_impl
    for n in names:
        need = 3 * attention_bytes(h, w)  # scores, softmax, and the next level's overlap
        if n == "explicit" and device.type == "cpu" and need > 0.6 * available_bytes():
            skipped[n] = f"needs ~{need / 2**30:.1f} GiB for attention matrices, {available_bytes() / 2**30:.1f} GiB free"
            continue

        def run(y, ir, impl=n):
            set_attn_impl(model, impl)
            with torch.inference_mode():
                return model(y, ir, vm, im)[0]
        runners[n] = run
    return runners, "random-weight Teacher(mask_channels=4), synthetic segment images", skipped


# ---- measuring -------------------------------------------------------------------------------------
def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def to_bgr8(fused: torch.Tensor, vis: torch.Tensor) -> np.ndarray:
    return fused_to_bgr8(fused[0].float().cpu().clamp(-1, 1), vis[1:])


def time_round_robin(runners: Dict[str, Callable], y, ir, device, warmup: int, repeats: int,
                     log: Callable[[str], None]) -> Tuple[Dict[str, List[float]], Dict[str, torch.Tensor]]:
    outs = {}
    for name, fn in runners.items():
        t0 = time.perf_counter()
        for _ in range(max(1, warmup)):
            outs[name] = fn(y, ir)
        sync(device)
        log(f"  warm-up {name}: {time.perf_counter() - t0:.1f} s")
    times = {n: [] for n in runners}
    for r in range(repeats):
        for name, fn in runners.items():
            sync(device)
            t0 = time.perf_counter()
            fn(y, ir)
            sync(device)
            times[name].append(time.perf_counter() - t0)
        log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{n} {1000 * t[-1]:.0f} ms" for n, t in times.items()))
    return times, outs


def probe_memory(args, engine: str) -> Optional[float]:
    """Peak memory (MiB) of one run of `engine` in a fresh process, or None if the probe failed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--model", args.model, "--engines", engine,
           "--size", args.size or "", "--device", args.device, "--_probe"]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"])
    except (subprocess.SubprocessError, ValueError, IndexError, KeyError, OSError):
        return None


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: the latter survives exec on Linux, so a
    child started from a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def parse_size(text: Optional[str], default: Tuple[int, int]) -> Tuple[int, int]:
    if not text:
        return default
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        assert w > 0 and h > 0
        return w, h
    except (ValueError, AssertionError):
        raise SystemExit(f"error: --size {text}: expected WIDTHxHEIGHT, e.g. 1024x768") from None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("student", "teacher"), default="student")
    p.add_argument("--engines", help=f"comma-separated (student: reference,reference+malloc,fast,compile,onnx; default "
                                     f"{','.join(STUDENT_ENGINES)}; teacher: {','.join(TEACHER_ENGINES)})")
    p.add_argument("--checkpoint", help="student weights (default: checkpoints/checkpoints.pt when present, else the "
                                        "authors' file in the reference data, else random weights, said so)")
    p.add_argument("--size", help="WIDTHxHEIGHT (default 1024x768 for the student, 800x600 for the teacher)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: PyTorch's choice)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per engine (default 1)")
    p.add_argument("--repeats", type=int, help="timed runs per engine (default 5 student, 2 teacher)")
    p.add_argument("--headline", default=None, help="engine of the final `speedup` line (default: fast, the engine of "
                                                      "test.py's default --engine auto, for the student; sdpa for "
                                                      "the teacher)")
    p.add_argument("--no_memory", action="store_true", help="skip the per-engine peak-memory processes")
    p.add_argument("--_probe", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from utils.device import DeviceError, pick_device
    try:
        device = pick_device(args.device)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = args.model == "teacher"
    size = parse_size(args.size, (800, 600) if teacher else (1024, 768))
    names = [n.strip() for n in (args.engines or ",".join(TEACHER_ENGINES if teacher else STUDENT_ENGINES)).split(",") if n.strip()]
    reference = "explicit" if teacher else "reference"
    if teacher:
        headline = args.headline or "sdpa"
    else:
        from models.engines import resolve_engine_name
        headline = args.headline or resolve_engine_name("auto", device)  # test.py's default engine
    log = (lambda s: None) if args._probe else (lambda s: print(s, flush=True))

    vis, ir, src = load_inputs(size)
    y_in, ir_in = vis[None, 0:1].to(device), ir[None].to(device)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if teacher:
                runners, what, skipped = teacher_runners(names, device, size)
            else:
                runners, what = student_runners(names, args.checkpoint, device, Path(tmp))
                skipped = {}
        except Exception as exc:  # engine build errors: one line
            print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            return 2
        if args._probe:  # one run in this fresh process, report its peak memory
            base = peak_rss_mib()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for fn in runners.values():
                fn(y_in, ir_in)
            sync(device)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib()
            print(json.dumps({"peak_mib": peak, "base_mib": base}))
            return 0
        log(f"benchmark: {args.model} at {size[0]}x{size[1]} on {device} ({cpu_name()}, "
            f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads), torch {torch.__version__}")
        log(f"  input: {src}")
        log(f"  {what}")
        repeats = args.repeats or (2 if teacher else 5)
        times, outs = time_round_robin(runners, y_in, ir_in, device, args.warmup, repeats, log)

    ref8 = to_bgr8(outs[reference], vis) if reference in outs else None
    rows = []
    for name in names:
        if name in skipped:
            rows.append((name, None, None, None, None, skipped[name]))
            continue
        med = statistics.median(times[name])
        ratio = statistics.median(times[reference]) / med if reference in times else None
        diff = int(np.abs(to_bgr8(outs[name], vis).astype(int) - ref8.astype(int)).max()) if ref8 is not None else None
        mem = None if args.no_memory else probe_memory(args, name)
        rows.append((name, med, ratio, diff, mem, ""))

    print("\n| engine | median ms/pair | speed-up | max diff (grey levels) | peak memory (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    fmt = lambda v, f: "n/a" if v is None else f.format(v)
    for name, med, ratio, diff, mem, note in rows:
        if med is None:
            print(f"| {name} | skipped: {note} | | | |")
        else:
            print(f"| {name} | {1000 * med:.0f} | {fmt(ratio, '{:.2f}x')} | {fmt(diff, '{}')} | {fmt(mem, '{:.0f}')} |")
    head = next((r for r in rows if r[0] == headline and r[1] is not None), None)
    if head is None or head[2] is None:
        print(f"speedup n/a maxdiff n/a (engine {headline} or reference {reference} not measured)")
        return 1
    print(f"speedup {head[2]:.2f}x maxdiff {head[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
