"""Export the SAGE student to ONNX (dynamic batch, height and width) and check it in ONNX Runtime.

    python scripts/export_onnx.py --checkpoint checkpoints/checkpoints.pt --out student.onnx
    python test.py --engine onnx --onnx student.onnx ...

The graph holds the student with BatchNorm folded into its convolutions: inputs `y` and `ir`
(B, 1, H, W) in [0, 1] with H, W multiples of 4 (test.py pads), output `fused` (B, 1, H, W) in
(-1, 1) before colour restoration. After writing, the model is run in ONNX Runtime on a random
pair of another size and compared with PyTorch; the script fails if they differ by a grey level.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from models.checkpoint import CheckpointError, load_student  # noqa: E402
from models.engines import EngineError, OnnxEngine, export_student_onnx  # noqa: E402
from models.engines.onnx_engine import DEFAULT_OPSET  # noqa: E402



def check(model, path: Path, hw=(100, 132)) -> float:
    """Largest |ONNX Runtime - PyTorch| on a random (2, 1, H, W) pair, in grey levels of the 8-bit output."""
    g = torch.Generator().manual_seed(0)
    y, ir = torch.rand(2, 1, *hw, generator=g), torch.rand(2, 1, *hw, generator=g)
    with torch.inference_mode():
        ref = model(y, ir)[0]
    out = OnnxEngine(path)(y, ir)
    return float((out - ref).abs().max()) * 255


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="student weights (.pt)")
    p.add_argument("--out", default="student.onnx", help="ONNX file to write (default student.onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    args = p.parse_args(argv)
    try:
        model = load_student(args.checkpoint, "cpu")
        path = export_student_onnx(model, args.out, opset=args.opset)
        diff = check(model, path)
    except (CheckpointError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.out}: cannot write ({exc})", file=sys.stderr)
        return 2
    ok = diff <= 1.0
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, opset {args.opset}, dynamic batch/height/width) | "
          f"ONNX Runtime vs PyTorch on a 100x132 pair: max diff {diff:.2e} grey levels ({'ok' if ok else 'TOO LARGE'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
