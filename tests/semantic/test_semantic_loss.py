"""The teacher's semantic term with a tiny random SegFormer loaded as the `segformer` backend from a local folder."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import pytest

from data.colour import ycrcb_to_rgb
from semantic import FMB_CLASSES, SemanticConfigError, SemanticLoss, build_semantic_loss
from semantic.build import build_judge
from semantic.mapping import map_logits


def cfg_for(model_dir, **over):
    cfg = {"backend": "segformer", "model": str(model_dir), "mapping": "configs/semantic/cityscapes_to_fmb.yaml",
           "num_classes": 15, "ignore_index": 255, "input_size": [64, 64], "weight": 0.3}
    cfg.update(over)
    return cfg


def batch(seed=0, b=2, h=24, w=32):
    g = torch.Generator().manual_seed(seed)
    fused = torch.rand(b, 1, h, w, generator=g)
    crcb = 0.5 + 0.1 * (torch.rand(b, 2, h, w, generator=g) - 0.5)
    label = torch.randint(0, 15, (b, h, w), generator=g)
    return fused, crcb, label


def test_none_backend_is_off():
    assert build_semantic_loss({"backend": "none"}, "cpu") is None
    assert build_semantic_loss({}, "cpu") is None


def test_loss_matches_the_spec_path(cityscapes_dir):
    loss_fn = build_semantic_loss(cfg_for(cityscapes_dir), "cpu")
    assert isinstance(loss_fn, SemanticLoss)
    fused, crcb, label = batch()
    loss = loss_fn(fused, crcb, label)
    assert loss.dim() == 0 and torch.isfinite(loss)
    # reference: colourise, clamp, bicubic to 64x64, ImageNet normalisation, map, bilinear back, CE w/o background
    judge = loss_fn.judge
    rgb = ycrcb_to_rgb(fused, crcb[:, :1], crcb[:, 1:]).clamp(0, 1)
    x = F.interpolate(rgb, size=(64, 64), mode="bicubic", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        src = judge.model(pixel_values=(x - mean) / std).logits
    logits = F.interpolate(map_logits(src, judge.mapping.groups), size=label.shape[-2:], mode="bilinear",
                           align_corners=False)
    ref = F.cross_entropy(logits, label.masked_fill(label == 0, 255), ignore_index=255)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_gradients_reach_fused_and_judge_never_changes(cityscapes_dir):
    loss_fn = build_semantic_loss(cfg_for(cityscapes_dir), "cpu")
    assert list(loss_fn.parameters()) == [] and len(loss_fn.state_dict()) == 0
    judge = loss_fn.judge.model
    assert all(not p.requires_grad for p in judge.parameters())
    before = {k: v.clone() for k, v in judge.state_dict().items()}

    fused, crcb, label = batch(1)
    upstream = torch.nn.Conv2d(1, 1, 3, padding=1)  # stands in for the teacher
    fused_img = fused.clone().requires_grad_(True)
    opt = torch.optim.Adam(list(upstream.parameters()) + [fused_img], lr=1e-1)
    loss_fn.train()  # train.py may call .train(); the judge must stay in eval mode
    assert loss_fn.training and not judge.training
    losses = []
    for _ in range(3):
        opt.zero_grad()
        out = torch.sigmoid(upstream(fused_img))
        loss = loss_fn(out, crcb, label)
        loss.backward()
        assert fused_img.grad is not None and fused_img.grad.abs().sum() > 0
        assert upstream.weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in judge.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # the upstream image moves towards the labels under the frozen judge
    for k, v in judge.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm statistics unchanged


def test_ignored_pixels_and_all_ignored_batch(cityscapes_dir):
    loss_fn = build_semantic_loss(cfg_for(cityscapes_dir), "cpu")
    fused, crcb, label = batch(2)
    fused.requires_grad_(True)
    none = loss_fn(fused, crcb, torch.full_like(label, 255))
    assert none.item() == 0.0
    background = loss_fn(fused, crcb, torch.zeros_like(label))  # FMB background is ignored by default
    assert background.item() == 0.0
    half = label.clone()
    half[:, :, :16] = 255
    assert loss_fn(fused, crcb, half).item() != pytest.approx(loss_fn(fused, crcb, label).item())
    (none + background).backward()  # keeps a graph, no NaN
    assert torch.isfinite(fused.grad).all()


def test_label_values_outside_the_class_list_fail(cityscapes_dir):
    loss_fn = build_semantic_loss(cfg_for(cityscapes_dir), "cpu")
    fused, crcb, label = batch()
    label[0, 0, 0] = 20
    with pytest.raises(ValueError, match=r"label values \[20\] are outside the class list 0..14"):
        loss_fn(fused, crcb, label)


def test_judge_resolution_options(cityscapes_dir):
    assert build_judge(cfg_for(cityscapes_dir, input_size=None), "cpu").input_size == (384, 384)
    assert build_judge(cfg_for(cityscapes_dir, input_size="auto"), "cpu").input_size == (64, 96)
    assert build_judge(cfg_for(cityscapes_dir, input_size="native"), "cpu").input_size is None


def test_config_errors(cityscapes_dir, tmp_path):
    with pytest.raises(SemanticConfigError, match="no such model folder"):
        build_semantic_loss(cfg_for(tmp_path / "missing"), "cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemanticConfigError, match="no config.json"):
        build_semantic_loss(cfg_for(tmp_path / "empty"), "cpu")
    with pytest.raises(SemanticConfigError, match="num_classes=14 but the class list has 15"):
        build_semantic_loss(cfg_for(cityscapes_dir, num_classes=14), "cpu")
    with pytest.raises(SemanticConfigError, match="not the 15 label classes"):
        build_semantic_loss(cfg_for(cityscapes_dir, mapping=None), "cpu")
    with pytest.raises(SemanticConfigError, match="unknown"):
        build_semantic_loss(cfg_for(cityscapes_dir, backend="maskformer"), "cpu")
    with pytest.raises(ValueError, match="is a directory, not a converted X-Decoder file"):
        build_semantic_loss(cfg_for(cityscapes_dir, backend="xdecoder"), "cpu")
    with pytest.raises(SemanticConfigError, match="ignore_index 0 is a class index"):
        build_semantic_loss(cfg_for(cityscapes_dir, ignore_index=0), "cpu")
    with pytest.raises(SemanticConfigError, match="not a checkpoint of scripts/train_segmenter.py"):
        build_semantic_loss(cfg_for(cityscapes_dir, backend="trained"), "cpu")


def test_trained_backend_class_mismatch(tmp_path, make_segformer):
    d = tmp_path / "seg"
    make_segformer(FMB_CLASSES[:14]).save_pretrained(str(d))
    (d / "segmenter.json").write_text('{"class_names": []}')
    with pytest.raises(SemanticConfigError, match="trained on 14 classes .* has 15"):
        build_semantic_loss({"backend": "trained", "model": str(d)}, "cpu")


def test_hub_ids_only_when_named(monkeypatch, tmp_path):
    from transformers import SegformerForSemanticSegmentation

    from semantic.segformer import looks_like_hub_id

    assert looks_like_hub_id("nvidia/segformer-b3-finetuned-cityscapes-1024-1024")
    assert not looks_like_hub_id("configs/segformer")      # 'configs' is a local folder: a mistyped path
    assert not looks_like_hub_id("./owner/name") and not looks_like_hub_id("a/b/c")
    calls = []

    def offline(ref, *a, **k):
        calls.append(ref)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nmore detail")

    monkeypatch.setattr(SegformerForSemanticSegmentation, "from_pretrained", offline)
    with pytest.raises(SemanticConfigError, match=r"fetching it from the Hugging Face hub failed \(We couldn't "
                                                  r"connect .*\); download it"):
        build_semantic_loss(cfg_for("owner/segformer-x"), "cpu")
    assert calls == ["owner/segformer-x"]
    with pytest.raises(SemanticConfigError, match="no such model folder"):  # trained: never the hub
        build_semantic_loss(cfg_for("owner/segformer-x", backend="trained"), "cpu")
    assert calls == ["owner/segformer-x"]
