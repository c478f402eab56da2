"""What a training run shows and keeps: the log file, TensorBoard scalars and images, the loss history
(losses.csv and loss_curves.png)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from data.colour import colourise
from utils.plots import plot_loss_curves

log = logging.getLogger("sage.train")


def setup_logging(run_dir: Path, is_main: bool) -> None:
    """Console (stderr) on every rank, warnings only off rank 0; rank 0 also writes run_dir/train.log."""
    log.handlers.clear()
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    log.addHandler(console)
    if is_main:
        fh = logging.FileHandler(run_dir / "train.log")
        fh.setFormatter(fmt)
        log.addHandler(fh)


class TrainLog:
    """TensorBoard (rank 0 only) and the per-update history; `record` is called once per optimiser update."""

    def __init__(self, run_dir: Path, history: List[Dict[str, Any]], report_every: int, is_main: bool,
                 purge_step: Optional[int]):
        self.run_dir, self.history, self.report_every = run_dir, history, max(1, report_every)
        self.writer = None
        if is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)

    def record(self, step: int, epoch: int, kind: str, terms: Dict[str, float], lr: float,
               batch: Dict[str, torch.Tensor], images: Dict[str, Optional[torch.Tensor]]) -> None:
        self.history.append({"step": step, "epoch": epoch, "kind": kind, **terms})
        if self.writer is None:
            return
        for name, val in terms.items():
            self.writer.add_scalar(f"{kind}/{name}", val, step)
        self.writer.add_scalar(f"lr/{kind}", lr, step)
        if step % self.report_every == 0:
            log_images(self.writer, batch, images, step)
            log.info("epoch %d update %d %s %s", epoch, step, kind, " ".join(f"{n}={v:.4g}" for n, v in terms.items()))

    def close(self, title: str) -> None:
        if self.writer is not None:
            self.writer.close()
            write_history(self.history, self.run_dir, title)


def log_images(writer, b: Dict[str, torch.Tensor], outs: Dict[str, Optional[torch.Tensor]], step: int) -> None:
    """IR, VIS, the networks' outputs (colourised with the batch's chroma) and segment images, first sample."""
    from torchvision.utils import make_grid
    crcb = b["crcb"][:1] if "crcb" in b else None
    writer.add_image("input/ir", b["ir"][0], step)
    if "y" in b:
        writer.add_image("input/vis", colourise(b["y"][:1], crcb)[0], step)
    for name, out in outs.items():
        if out is not None:
            out = out[:1].detach().float()
            writer.add_image(f"output/{name}", (colourise(out, crcb) if out.shape[1] == 1 else out.clamp(0, 1))[0], step)
    for key in ("vm", "im"):
        if key in b:
            writer.add_image(f"segments/{key}", make_grid(b[key][0][:, None], nrow=b[key].shape[1], padding=2), step)


def write_history(history: List[Dict[str, Any]], run_dir: Path, title: str) -> None:
    """losses.csv (one row per update) and loss_curves.png."""
    if not history:
        return
    keys = sorted({k for rec in history for k in rec} - {"step", "epoch", "kind"})
    lines = [",".join(["step", "epoch", "kind"] + keys)]
    for rec in history:
        lines.append(",".join([str(rec["step"]), str(rec["epoch"]), rec["kind"]] +
                              [f"{rec[k]:.6g}" if k in rec else "" for k in keys]))
    (run_dir / "losses.csv").write_text("\n".join(lines) + "\n")
    plot_loss_curves(history, run_dir / "loss_curves.png", title=title)
