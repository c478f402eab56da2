"""Offline CLIP BPE tokenizer giving X-Decoder's token ids.

The vocabulary is the OpenAI CLIP BPE that ships inside open_clip (`bpe_simple_vocab_16e6.txt.gz`), so
nothing is downloaded. The layout copies the release's call (a CLIP tokenizer with max-length padding):
start token, BPE tokens, end token, then padding with the END token id (49407), truncated to the context
length with the end token kept. The attention mask marks start..end; X-Decoder's text encoder never reads
it (its causal mask makes padding irrelevant). See docs/xdecoder.md.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List, Sequence, Tuple

import torch

BOS_ID = 49406  # <|startoftext|>
EOS_ID = 49407  # <|endoftext|>, also the padding id


@lru_cache(maxsize=1)
def _bpe():
    """open_clip's SimpleTokenizer. Its module is loaded on its own when possible: importing the open_clip
    package pulls in every model definition (seconds), and the tokenizer needs none of them."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("X-Decoder's tokenizer needs the open_clip_torch package (its bundled CLIP BPE vocabulary)")
    folder = Path(spec.submodule_search_locations[0])
    try:
        mod_spec = importlib.util.spec_from_file_location("xdecoder._open_clip_tokenizer", folder / "tokenizer.py")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        return module.SimpleTokenizer(bpe_path=str(folder / "bpe_simple_vocab_16e6.txt.gz"))
    except Exception:  # a layout this shortcut does not know: import the package normally
        from open_clip.tokenizer import SimpleTokenizer

        return SimpleTokenizer()


def tokenize(texts: Sequence[str], context_length: int = 77) -> Tuple[torch.Tensor, torch.Tensor]:
    """texts -> (ids (N, context_length) int64, attention_mask (N, context_length) int64)."""
    bpe = _bpe()
    if bpe.encoder.get("<start_of_text>", BOS_ID) != BOS_ID:
        raise RuntimeError("open_clip's bundled BPE vocabulary does not have CLIP's token ids")
    ids = torch.full((len(texts), context_length), EOS_ID, dtype=torch.int64)
    mask = torch.zeros((len(texts), context_length), dtype=torch.int64)
    for i, text in enumerate(texts):
        row: List[int] = [BOS_ID] + bpe.encode(text)[:context_length - 2] + [EOS_ID]
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


def tokenize_prompts(prompts: Sequence[Sequence[str]], context_length: int = 77) -> Tuple[torch.Tensor, torch.Tensor]:
    """C x K prompt strings -> (ids (C, K, T), attention_mask (C, K, T))."""
    c, k = len(prompts), len(prompts[0]) if prompts else 0
    if any(len(p) != k for p in prompts):
        raise ValueError("every class needs the same number of prompts")
    ids, mask = tokenize([s for p in prompts for s in p], context_length)
    return ids.reshape(c, k, context_length), mask.reshape(c, k, context_length)
