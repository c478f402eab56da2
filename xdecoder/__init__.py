"""X-Decoder (Focal-L), the release's semantic judge: its semantic-segmentation inference path, native.

Build: `XDecoder(XDecoderConfig())`; the authors' checkpoint: scripts/convert_xdecoder.py; the teacher's
semantic term: `XDecoderJudge` (semantic.backend: xdecoder). See docs/xdecoder.md.
"""
from .config import XDecoderConfig
from .model import XDecoder

__all__ = ["XDecoder", "XDecoderConfig"]
