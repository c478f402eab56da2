"""Convert the authors' X-Decoder checkpoint into the file the semantic judge reads (docs/xdecoder.md).

    python scripts/convert_xdecoder.py --checkpoint xdecoder_focall_last.pt --out checkpoints/xdecoder_focall.safetensors

Loads the checkpoint strictly (every key used or deliberately unused; any missing or unexpected key, or a
shape of another variant, stops with one line naming the file), drops what semantic segmentation never
runs (text encoder, retrieval and captioning weights, training criterion) and caches the class text
embeddings: the release's 15 prompts and the label classes (--classes; default FMB's 15 in label order).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="the authors' xdecoder_focall_last.pt")
    ap.add_argument("--out", required=True, help="converted .safetensors file to write (never overwritten)")
    ap.add_argument("--classes", nargs="+", default=None,
                    help="label classes in label order: names, or one YAML file (default: FMB's 15 classes)")
    ap.add_argument("--config", default=None,
                    help="JSON with XDecoderConfig fields or a reference fixture's config.json (default: Focal-L)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return ap.parse_args(argv)


def load_config(path):
    from xdecoder.config import XDecoderConfig, XDecoderConfigError

    if path is None:
        return XDecoderConfig()
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise XDecoderConfigError(f"{path}: not a readable JSON config ({exc})") from None
    if "hyperparameters" in data:
        return XDecoderConfig.from_fixture_config(data)
    return XDecoderConfig(**data)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from semantic.classes import SemanticConfigError, load_class_names
    from xdecoder.checkpoint import CheckpointError
    from xdecoder.config import XDecoderConfigError
    from xdecoder.converted import convert, load_authors_checkpoint
    from xdecoder.prompts import RELEASE_CLASS_NAMES

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"error: {out}: exists; choose another --out or pass --overwrite", file=sys.stderr)
        return 2
    try:
        classes = args.classes
        names = load_class_names(classes[0] if classes and len(classes) == 1 and classes[0].endswith(
            (".yaml", ".yml")) else classes)
        cfg = load_config(args.config)
        model = load_authors_checkpoint(args.checkpoint, cfg)
        with torch.inference_mode():
            convert(model, {"release": RELEASE_CLASS_NAMES, "labels": names}, out, source=args.checkpoint)
    except (CheckpointError, XDecoderConfigError, SemanticConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.checkpoint}: {n:,} parameters loaded strictly; wrote {out} (image path + text embeddings for "
          f"the release's {len(RELEASE_CLASS_NAMES)} prompts and {len(names)} label classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
