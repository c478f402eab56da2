"""The X-Decoder judge: frozen, differentiable to the fused image, release-quirk and default modes."""
import pytest
import torch
import torch.nn.functional as F

from data.colour import ycrcb_to_rgb
from semantic.build import build_semantic_loss
from semantic.classes import SemanticConfigError
from xdecoder.judge import XDecoderJudge
from xdecoder.prompts import RELEASE_CLASS_NAMES

LABEL_CLASSES = ["background", "Road", "Car", "Person"]


def inputs(b=2, h=40, w=56, classes=14, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(b, 1, h, w, generator=g).requires_grad_(True)
    crcb = 0.4 + 0.2 * torch.rand(b, 2, h, w, generator=g)
    label = torch.randint(0, classes, (b, 24, 30), generator=g)
    return y, crcb, label


def judge_for(model, names, release, **kw):
    emb = torch.nn.functional.normalize(torch.randn(len(names), model.cfg.dim_proj,
                                                    generator=torch.Generator().manual_seed(3)), dim=-1)
    return XDecoderJudge(model, emb, names, release_quirks=release, input_size=(64, 64), **kw)


def test_release_mode_is_the_releases_computation(make_xdecoder):
    model = make_xdecoder()
    judge = judge_for(model, RELEASE_CLASS_NAMES, True)
    y, crcb, label = inputs()
    loss = judge(y, crcb, label)
    # by hand: colourise, clamp, bicubic to 64x64, x255, sem_seg (14 score maps), bilinear, plain CE
    rgb = ycrcb_to_rgb(y, crcb[:, 0:1], crcb[:, 1:2]).clamp(0, 1)
    x = F.interpolate(rgb, size=(64, 64), mode="bicubic", align_corners=False) * 255
    sem = model.sem_seg(x, text_embeddings=judge.text_embeddings)
    assert sem.shape == (2, 14, 64, 64)
    assert float(sem.detach().min()) >= 0 and float(sem.detach().max()) <= model.cfg.num_queries  # scores
    ref = F.cross_entropy(F.interpolate(sem, size=(24, 30), mode="bilinear", align_corners=False), label)
    assert torch.allclose(loss, ref, atol=1e-6)
    # one image per call (the release's pattern) gives the same loss as the batch
    per_image = torch.stack([judge(y[i:i + 1], crcb[i:i + 1], label[i:i + 1]) for i in range(2)]).mean()
    assert torch.allclose(loss, per_image, atol=1e-5)


def test_frozen_with_gradient_reaching_the_input(make_xdecoder):
    model = make_xdecoder()
    judge = judge_for(model, RELEASE_CLASS_NAMES, True)
    assert list(judge.parameters()) == [] and judge.state_dict() == {}
    assert not any(p.requires_grad for p in model.parameters())
    judge.train()
    assert not model.training
    y, crcb, label = inputs()
    judge(y, crcb, label).backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())


def test_checkpointing_gives_the_same_loss_and_gradient(make_xdecoder):
    model = make_xdecoder()
    grads, losses = [], []
    for ckpt in (False, True):
        judge = judge_for(model, RELEASE_CLASS_NAMES, True, checkpointing=ckpt)
        y, crcb, label = inputs(b=1)
        loss = judge(y, crcb, label)
        loss.backward()
        losses.append(loss.detach())
        grads.append(y.grad)
    assert model.backbone.grad_checkpointing
    assert torch.equal(losses[0], losses[1])
    assert torch.allclose(grads[0], grads[1], rtol=0, atol=1e-7 * float(grads[0].abs().max()))


def test_default_mode_uses_log_probabilities_over_all_label_classes(make_xdecoder):
    model = make_xdecoder()
    judge = judge_for(model, LABEL_CLASSES, False, ignore_classes=[0])
    y, crcb, label = inputs(classes=4)
    rgb = ycrcb_to_rgb(y, crcb[:, 0:1], crcb[:, 1:2]).clamp(0, 1)
    logits = judge.logits(rgb)
    assert logits.shape == (2, 4, 64, 64)  # background kept: the labels define it as class 0
    assert torch.allclose(logits.exp().sum(1), torch.ones(2, 64, 64), atol=1e-5)
    x = F.interpolate(rgb, size=(64, 64), mode="bicubic", align_corners=False) * 255
    sem = model.sem_seg(x, keep_last=True, text_embeddings=judge.text_embeddings)
    assert torch.allclose(logits, (sem / sem.sum(1, keepdim=True)).log(), atol=1e-5)
    loss = judge(y, crcb, label)
    up = F.interpolate(logits, size=(24, 30), mode="bilinear", align_corners=False)
    ref = F.cross_entropy(up, label.masked_fill(label == 0, 255), ignore_index=255)
    assert torch.allclose(loss, ref, atol=1e-5)
    with pytest.raises(ValueError, match="outside the class list"):
        judge(y, crcb, label + 10)


def test_release_and_default_differ_and_release_ignores_labels_outside_its_14_maps(make_xdecoder):
    model = make_xdecoder()
    release = judge_for(model, RELEASE_CLASS_NAMES, True)
    y, crcb, label = inputs()
    with_pole = label.clone()
    with_pole[:, :4] = 14  # FMB's last class has no map in the release's output
    loss = release(y, crcb, with_pole)
    rgb = ycrcb_to_rgb(y, crcb[:, 0:1], crcb[:, 1:2]).clamp(0, 1)
    up = F.interpolate(release.logits(rgb), size=(24, 30), mode="bilinear", align_corners=False)
    assert torch.allclose(loss, F.cross_entropy(up, with_pole.masked_fill(with_pole == 14, 255), ignore_index=255),
                          atol=1e-6)
    default = judge_for(model, RELEASE_CLASS_NAMES, False)
    assert default.num_classes == 15 and release.num_classes == 14
    assert not torch.allclose(default(y, crcb, label), release(y, crcb, label))
    # judges sharing one model keep their own classes
    other = judge_for(model, LABEL_CLASSES, False)
    assert other.logits(rgb).shape[1] == 4 and release.logits(rgb).shape[1] == 14


def test_semantic_build_returns_the_xdecoder_judge(tiny_checkpoint, tmp_path):
    from scripts.convert_xdecoder import main as convert_main

    ckpt, cfg_json, _ = tiny_checkpoint
    out = tmp_path / "tiny.safetensors"
    assert convert_main(["--checkpoint", str(ckpt), "--out", str(out), "--config", str(cfg_json),
                         "--classes", *LABEL_CLASSES]) == 0
    cfg = {"backend": "xdecoder", "model": str(out), "input_size": [64, 64], "class_names": LABEL_CLASSES,
           "num_classes": 4}
    loss = build_semantic_loss({**cfg, "release_quirks": True}, "cpu")
    assert isinstance(loss, XDecoderJudge) and loss.num_classes == 14 and loss.class_names == RELEASE_CLASS_NAMES
    default = build_semantic_loss(cfg, "cpu")
    assert default.class_names == LABEL_CLASSES and default.ignored == [0]  # background ignorable by default
    y, crcb, label = inputs(classes=4)
    assert torch.isfinite(default(y, crcb, label))
    with pytest.raises(SemanticConfigError, match="no cached text embeddings for the classes sky"):
        build_semantic_loss({**cfg, "class_names": ["sky", "road"], "num_classes": 2}, "cpu")
