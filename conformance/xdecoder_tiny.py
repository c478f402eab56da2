"""Checker for X-Decoder reference fixtures (the `xdecoder_tiny` format): config.json + model.pt + io.pt.

The fixture's weights load strictly into xdecoder.XDecoder built from its config.json; tokens, text
embeddings, every intermediate tensor it holds, sem_seg, the release's loss and its input gradient are
recomputed and compared. Sizes and settings come from the fixture itself. Tolerances: docs/xdecoder.md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List

import torch
import torch.nn.functional as F

from .fixture_io import fixture_json, load_tensors
from .report import Comparison, compare

# max-abs tolerances for float32 (the fixture README's suggestions, about 10x the observed noise)
ATOL = dict(emb=2e-6, feat=1e-4, logits=2e-4, masks=2e-4, sem=3e-5, loss=2e-6)
RTOL_GRAD = 1e-4  # relative to max |grad| (5e-9 absolute on the tiny fixture)


def recognise(folder: Path) -> bool:
    data = fixture_json(folder, ("config.json", "model.pt", "io.pt"), "config.json")
    return isinstance(data, dict) and "hyperparameters" in data and "tiny_overrides" in data


def _exact(name: str, ours, ref) -> Comparison:
    if ours == ref:
        return Comparison(name, 0.0, 0.0, 0.0, 0.0)
    return Comparison(name, float("inf"), float("inf"), 0.0, 0.0, note=f"{ours} != fixture {ref}")


def build(folder: Path):
    """(model with the fixture's weights loaded strictly, io dict)."""
    from xdecoder.checkpoint import load_state_dict_strict
    from xdecoder.config import XDecoderConfig
    from xdecoder.model import XDecoder

    folder = Path(folder)
    cfg = XDecoderConfig.from_fixture_config(json.loads((folder / "config.json").read_text()))
    model = XDecoder(cfg).eval()
    blob = load_tensors(folder / "model.pt", "xdecoder_tiny")
    load_state_dict_strict(model, blob["state_dict"], str(folder / "model.pt"))
    model.requires_grad_(False)
    io = load_tensors(folder / "io.pt", "xdecoder_tiny")
    return model, io


def check(folder: Path) -> Iterable[Comparison]:
    from xdecoder.tokenizer import tokenize_prompts
    from xdecoder.prompts import prompts_for

    model, io = build(folder)
    out: List[Comparison] = []
    ctx = model.cfg.context_length
    out.append(_exact("prompts", prompts_for(io["class_names"], io["prompt_templates"]), io["prompts"]))
    ids, mask = tokenize_prompts(io["prompts"], ctx)
    out.append(compare("token_ids", ids, io["token_ids"]))
    out.append(compare("attention_mask", mask, io["attention_mask"]))
    out.append(compare("eos_index", ids.argmax(-1), io["eos_index"]))
    prompt_emb, text_emb = model.language.class_embeddings(ids)
    out.append(compare("prompt_embeddings", prompt_emb, io["prompt_embeddings"], atol=ATOL["emb"]))
    out.append(compare("text_embeddings", text_emb, io["text_embeddings"], atol=ATOL["emb"]))
    model.set_text_embeddings(text_emb)
    keep = io["num_classes_out"] == len(io["class_names"])

    image = io["image"].clone().requires_grad_(True)
    taps: dict = {}
    sem = model.sem_seg(image, (io["height"], io["width"]), keep_last=keep, taps=taps)
    out.append(compare("normalized_padded_image", taps["normalized_padded_image"], io["normalized_padded_image"],
                       atol=1e-5))
    for k in sorted(io["backbone"]):
        out.append(compare(f"backbone.{k}", taps["backbone"][k], io["backbone"][k], atol=ATOL["feat"]))
    out.append(compare("transformer_encoder_features", taps["transformer_encoder_features"],
                       io["transformer_encoder_features"], atol=ATOL["feat"]))
    for i, ref in enumerate(io["multi_scale_features"]):
        out.append(compare(f"multi_scale_features[{i}]", taps["multi_scale_features"][i], ref, atol=ATOL["feat"]))
    out.append(compare("mask_features", taps["mask_features"], io["mask_features"], atol=ATOL["feat"]))
    for i, ref in enumerate(io["pred_logits"]):
        out.append(compare(f"pred_logits[{i}]", taps["pred_logits"][i], ref, atol=ATOL["logits"]))
    for i, ref in enumerate(io["pred_masks"]):
        out.append(compare(f"pred_masks[{i}]", taps["pred_masks"][i], ref, atol=ATOL["masks"]))
    for i, ref in enumerate(io["attn_masks"]):
        out.append(compare(f"attn_masks[{i}]", taps["attn_masks"][i][0].float(), ref.float()))
    out.append(_exact("attn_mask_reset_rows", [r[0] for r in taps["attn_mask_reset_rows"]],
                      [list(r) for r in io["attn_mask_reset_rows"]]))
    for i, ref in enumerate(io["query_states"]):
        out.append(compare(f"query_states[{i}]", taps["query_states"][i], ref, atol=ATOL["feat"]))
    out.append(compare("mask_pred_upsampled", taps["mask_pred_upsampled"], io["mask_pred_upsampled"],
                       atol=ATOL["masks"]))
    out.append(compare("sem_seg", sem[0], io["sem_seg"], atol=ATOL["sem"]))
    label = io["label"]
    loss = F.cross_entropy(F.interpolate(sem, size=label.shape[-2:], mode="bilinear", align_corners=False),
                           label[None])
    out.append(compare("loss", loss, io["loss"], atol=ATOL["loss"]))
    loss.backward()
    out.append(compare("grad_image", image.grad, io["grad_image"], rtol=RTOL_GRAD))

    extra = io.get("extra_case")
    if extra:
        taps = {}
        with torch.no_grad():
            sem = model.sem_seg(extra["image"], (extra["height"], extra["width"]), keep_last=keep, taps=taps)
        out.append(compare("extra.normalized_padded_image", taps["normalized_padded_image"],
                           extra["normalized_padded_image"], atol=1e-5))
        out.append(compare("extra.pred_logits", taps["pred_logits"][-1], extra["pred_logits"], atol=ATOL["logits"]))
        out.append(compare("extra.pred_masks", taps["pred_masks"][-1], extra["pred_masks"], atol=ATOL["masks"]))
        out.append(_exact("extra.attn_mask_reset_rows", [r[0] for r in taps["attn_mask_reset_rows"]],
                          [list(r) for r in extra["attn_mask_reset_rows"]]))
        out.append(compare("extra.sem_seg", sem[0], extra["sem_seg"], atol=ATOL["sem"]))
    return out
