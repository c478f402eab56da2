"""The fixture checker reads every size from the fixture: a fixture of the same format with other sizes
(here written by this implementation itself, other widths, queries, layers and image sizes) passes."""
import json

import torch
import torch.nn.functional as F

from conformance.xdecoder_tiny import check, recognise
from xdecoder.config import _FIXTURE_KEYS
from xdecoder.prompts import TEMPLATES, prompts_for
from xdecoder.tokenizer import tokenize_prompts


def write_fixture(folder, model, class_names, keep_last):
    cfg = model.cfg.to_dict()
    rows = [{"key": k, "tiny": cfg[f], "focall": None, "meaning": ""} for k, f in _FIXTURE_KEYS.items()]
    (folder / "config.json").write_text(json.dumps({"tiny_overrides": {}, "hyperparameters": rows}))
    torch.save({"format": "test", "state_dict": model.state_dict()}, folder / "model.pt")
    templates = TEMPLATES[:5]
    prompts = prompts_for(class_names, templates)
    ids, mask = tokenize_prompts(prompts)
    prompt_emb, text_emb = model.language.class_embeddings(ids)
    model.set_text_embeddings(text_emb)
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 72, 40, generator=g) * 255
    image.requires_grad_(True)
    taps = {}
    sem = model.sem_seg(image, keep_last=keep_last, taps=taps)
    label = torch.randint(0, sem.shape[1], (30, 20), generator=g)
    loss = F.cross_entropy(F.interpolate(sem, size=label.shape, mode="bilinear", align_corners=False), label[None])
    loss.backward()
    d = lambda t: t.detach().clone()  # noqa: E731
    extra_image = torch.rand(1, 3, 50, 30, generator=g) * 255
    extra_taps = {}
    with torch.no_grad():
        extra_sem = model.sem_seg(extra_image, (44, 36), keep_last=keep_last, taps=extra_taps)
    io = {
        "format": "test", "class_names": class_names, "num_classes_out": sem.shape[1], "prompt_templates": templates,
        "prompts": prompts, "token_ids": ids, "attention_mask": mask, "eos_index": ids.argmax(-1),
        "prompt_embeddings": prompt_emb, "text_embeddings": text_emb, "image": d(image), "height": 72, "width": 40,
        "normalized_padded_image": d(taps["normalized_padded_image"]),
        "backbone": {k: d(v) for k, v in taps["backbone"].items()},
        "transformer_encoder_features": d(taps["transformer_encoder_features"]),
        "multi_scale_features": [d(t) for t in taps["multi_scale_features"]], "mask_features": d(taps["mask_features"]),
        "pred_logits": [d(t) for t in taps["pred_logits"]], "pred_masks": [d(t) for t in taps["pred_masks"]],
        "attn_masks": [t[0].clone() for t in taps["attn_masks"]],
        "attn_mask_reset_rows": [r[0] for r in taps["attn_mask_reset_rows"]],
        "query_states": [d(t) for t in taps["query_states"]], "mask_pred_upsampled": d(taps["mask_pred_upsampled"]),
        "sem_seg": d(sem[0]), "label": label, "loss": d(loss), "grad_image": d(image.grad),
        "extra_case": {"image": extra_image, "height": 44, "width": 36,
                       "normalized_padded_image": d(extra_taps["normalized_padded_image"]),
                       "pred_logits": d(extra_taps["pred_logits"][-1]), "pred_masks": d(extra_taps["pred_masks"][-1]),
                       "attn_mask_reset_rows": [r[0] for r in extra_taps["attn_mask_reset_rows"]],
                       "sem_seg": d(extra_sem[0])},
    }
    torch.save(io, folder / "io.pt")


def test_a_fixture_with_other_sizes_passes(make_xdecoder, tmp_path, single_thread):
    model = make_xdecoder(seed=4, num_queries=5, dec_layers=5, hidden_dim=64, convs_dim=64, mask_dim=64, nheads=4)
    write_fixture(tmp_path, model, ["road", "car", "sky", "background"], keep_last=False)
    assert recognise(tmp_path)
    results = list(check(tmp_path))
    failed = [r.line() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert sum(r.name.startswith("pred_logits[") for r in results) == 5  # 4 layers + the learnable queries
