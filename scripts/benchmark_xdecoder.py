"""Benchmark the X-Decoder judge: forward + backward of 384x384 images through Focal-L (docs/xdecoder.md).

    python scripts/benchmark_xdecoder.py                    # batch 1 and 4, on CUDA when present, else CPU
    python scripts/benchmark_xdecoder.py --batches 1 --repeats 1 --device cpu

Random weights (no checkpoint is needed; the cost does not depend on the values), the release's mode (15
prompts, 14 score maps), frozen parameters, gradient to the fused image. Each batch size runs in a fresh
process so that its peak memory is its own: peak RSS on CPU (weights included; the line also gives the
RSS after building), peak allocated memory on CUDA. Prints one line per batch size.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def random_judge(device, tiny: bool, checkpointing: bool):
    """The release-mode judge around an inference-only X-Decoder with random weights, built without a slow init."""
    import torch

    from xdecoder.config import XDecoderConfig
    from xdecoder.converted import build_on_meta
    from xdecoder.decoder import self_attn_mask_pattern
    from xdecoder.judge import XDecoderJudge
    from xdecoder.prompts import RELEASE_CLASS_NAMES

    cfg = XDecoderConfig(embed_dim=16, depths=(1, 1, 2, 1), convs_dim=64, mask_dim=64, hidden_dim=64,
                         num_queries=6, nheads=4, dim_feedforward=128, dec_layers=4, dim_proj=24) if tiny \
        else XDecoderConfig()
    model = build_on_meta(cfg, inference_only=True).to_empty(device=device)
    g = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma_1", "gamma_2", "ls1.gamma", "ls2.gamma")):
                p.fill_(0.1)
            elif p.dim() == 1 and name.endswith("weight"):
                p.fill_(1.0)
            elif p.dim() <= 1:
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    pred = model.sem_seg_head.predictor
    pred.self_attn_mask = self_attn_mask_pattern(cfg.num_queries, cfg.context_length).to(device)
    model.reset_constant_buffers(torch.device(device))
    emb = torch.nn.functional.normalize(torch.randn(len(RELEASE_CLASS_NAMES), cfg.dim_proj, generator=g), dim=-1)
    n = sum(p.numel() for p in model.parameters())
    judge = XDecoderJudge(model, emb.to(device), RELEASE_CLASS_NAMES, release_quirks=True,
                          checkpointing=checkpointing)
    return judge.to(device), n


def run_one(batch: int, repeats: int, device: str, tiny: bool, checkpointing: bool) -> dict:
    import torch

    build_t = time.perf_counter()
    judge, nparams = random_judge(device, tiny, checkpointing)
    build_s = time.perf_counter() - build_t
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    cuda = device.startswith("cuda")
    g = torch.Generator().manual_seed(1)
    fwd, bwd = [], []
    for _ in range(repeats + (1 if cuda else 0)):  # CUDA: one untimed warm-up
        y = torch.rand(batch, 1, 384, 384, generator=g).to(device).requires_grad_(True)
        crcb = (0.4 + 0.2 * torch.rand(batch, 2, 384, 384, generator=g)).to(device)
        label = torch.randint(0, 14, (batch, 384, 384), generator=g).to(device)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        loss = judge(y, crcb, label)
        if cuda:
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        loss.backward()
        if cuda:
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        assert y.grad is not None and torch.isfinite(y.grad).all()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    if cuda:
        fwd, bwd = fwd[1:], bwd[1:]
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"batch": batch, "device": device, "threads": torch.get_num_threads(), "params": nparams,
            "build_s": build_s, "forward_s": min(fwd), "backward_s": min(bwd), "peak_gib": peak,
            "rss_after_build_gib": rss_built}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per batch size (the fastest is reported)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model instead of Focal-L (to check the script)")
    ap.add_argument("--no-checkpointing", action="store_true",
                    help="store the backbone's activations instead of recomputing them (semantic.checkpointing false)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.child is not None:
        print(json.dumps(run_one(args.child, args.repeats, device, args.tiny, not args.no_checkpointing)))
        return 0
    for b in args.batches:
        cmd = [sys.executable, __file__, "--child", str(b), "--repeats", str(args.repeats), "--device", device]
        if args.tiny:
            cmd.append("--tiny")
        if args.no_checkpointing:
            cmd.append("--no-checkpointing")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"batch {b}: failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
            return 1
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        mem = "peak allocated" if device.startswith("cuda") else "peak RSS"
        extra = "" if device.startswith("cuda") else f" (after build {r['rss_after_build_gib']:.2f} GiB)"
        ckpt = "without" if args.no_checkpointing else "with"
        print(f"X-Decoder {'tiny' if args.tiny else 'Focal-L'} judge ({ckpt} checkpointing), 384x384, batch {b}, "
              f"{r['device']} "
              f"({r['threads']} threads), {r['params']:,} params: forward {r['forward_s']:.2f} s, backward "
              f"{r['backward_s']:.2f} s, {mem} {r['peak_gib']:.2f} GiB{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
