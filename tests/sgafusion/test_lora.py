"""LoRA on the CLIP tower: starts equal to the base, every adapter trains, no base weight moves."""
from __future__ import annotations

import pytest
import torch

from models.sgafusion.cue import tiny_clip_visual
from models.sgafusion.lora import LoRAError, add_lora, base_parameters, lora_delta_norm, lora_parameters

from .tiny import TINY_CLIP, tiny_cue


def _pixels(b=2, seed=0):
    return torch.rand(b, 3, TINY_CLIP["image_size"], TINY_CLIP["image_size"], generator=torch.Generator().manual_seed(seed))


def test_output_at_init_equals_base(single_thread):
    base = tiny_cue(lora=False).eval()
    adapted = tiny_cue(lora=True).eval()
    adapted.head.load_state_dict(base.head.state_dict())
    x = _pixels()
    with torch.no_grad():
        a, b = base(x), adapted(x)
    assert torch.equal(a.embedding, b.embedding)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logits, b.logits)
    assert lora_delta_norm(adapted) == 0.0


def test_every_lora_tensor_trains_and_no_base_weight_moves(single_thread):
    cue = tiny_cue(lora=True).train()
    lora = dict(lora_parameters(cue.visual))
    # 2 layers x (attn in-proj, attn out_proj, mlp.c_fc, mlp.c_proj) x (A, B)
    assert len(lora) == 2 * 4 * 2
    assert all(p.requires_grad for p in lora.values())
    frozen = {n: p.detach().clone() for n, p in base_parameters(cue.visual)}
    assert frozen and not any(p.requires_grad for _, p in base_parameters(cue.visual))
    start = {n: p.detach().clone() for n, p in lora.items()}
    opt = torch.optim.Adam([p for p in cue.parameters() if p.requires_grad], lr=1e-2)
    labels = torch.tensor([1, 4])
    got_grad = set()
    for step in range(2):
        opt.zero_grad()
        out = cue(_pixels(seed=step))
        loss = torch.nn.functional.cross_entropy(out.logits, labels) + out.tokens.square().mean()
        loss.backward()
        got_grad |= {n for n, p in lora.items() if p.grad is not None and p.grad.abs().sum() > 0}
        opt.step()
        if step == 0:
            # B starts at zero, so A's first gradient is exactly zero; every B moves in the first step
            changed = {n for n, p in lora.items() if not torch.equal(p, start[n])}
            assert {n for n in lora if ".lora_B." in n} <= changed
    assert got_grad == set(lora), sorted(set(lora) - got_grad)
    assert all(not torch.equal(p, start[n]) for n, p in lora.items())
    for n, p in base_parameters(cue.visual):
        assert torch.equal(p, frozen[n]), n
    assert lora_delta_norm(cue) > 0


def test_out_proj_target_is_refused():
    with pytest.raises(LoRAError, match="out_proj"):
        add_lora(tiny_clip_visual(**{k: v for k, v in TINY_CLIP.items()}), targets=("attn.out_proj",))


def test_no_matching_target_is_an_error():
    with pytest.raises(LoRAError, match="no CLIP module"):
        add_lora(tiny_clip_visual(**TINY_CLIP), targets=("mlp.nonexistent",))
