"""Checker for the `sgafusion_release` fixture: the SGAFusion release's numbers recomputed here.

The fixture folder holds net.pt (release-variant weights, inputs, outputs, intermediates),
classifier.pt (cue head), loss.pt (loss terms) and schedule.json (per-epoch learning rates).
Tolerances (docs/sgafusion.md, "Fixture"): atol = rtol = 1e-4 for network tensors, rtol = 1e-6 for
losses, the classifier and schedules; the 8-bit output may differ by 1 level on at most 0.1% of values.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator

import torch

from losses import sgafusion as L
from models.checkpoint import load_weights, read_state_dict
from models.sgafusion.build import load_cue_state
from models.sgafusion.classifier import CueHead
from models.sgafusion.inference import to_uint8_release
from models.sgafusion.network import SGAFusionNet
from training.sgafusion_schedule import lr_schedule

from .fixture_io import fixture_json, load_tensors
from .report import Comparison, compare

FILES = ("net.pt", "classifier.pt", "loss.pt", "schedule.json")
NET_TOL = dict(atol=1e-4, rtol=1e-4)
LOSS_TOL = dict(atol=0.0, rtol=1e-6)
UINT8_MAX_FRACTION = 1e-3  # at most 0.1% of 8-bit values may be off, by at most 1 level


def recognise(folder: Path) -> bool:
    meta = fixture_json(folder, FILES, "schedule.json")
    if not isinstance(meta, dict):
        return False
    return "SGAFusion" in str(meta.get("provenance", {}).get("repo", "")) and "stages" in meta


def _load(path: Path) -> dict:
    return load_tensors(path, "sgafusion_release")


def _maps(prefix: str, ref, ours: Dict[str, torch.Tensor], key: str, rows, cols) -> Iterator[Comparison]:
    """A fixture 'map' (crop, mean, absmean) or a full tensor against our traced tensor."""
    t = ours.get(key)
    if t is None:
        yield Comparison(prefix, float("inf"), float("inf"), NET_TOL["atol"], NET_TOL["rtol"],
                         note=f"not produced by our network (trace key {key})")
        return
    if isinstance(ref, dict) and "crop" in ref:
        yield compare(prefix + ".crop", t[..., rows[0]:rows[1], cols[0]:cols[1]], ref["crop"], **NET_TOL)
        yield compare(prefix + ".mean", t.mean(dim=(-2, -1)), ref["mean"], **NET_TOL)
        yield compare(prefix + ".absmean", t.abs().mean(dim=(-2, -1)), ref["absmean"], **NET_TOL)
    else:
        yield compare(prefix, t, ref, **NET_TOL)


def _check_net(folder: Path, fx: dict) -> Iterator[Comparison]:
    sd = fx["state_dict"]
    net = SGAFusionNet("release", num_classes=int(sd["seg_head.weight"].shape[0]),
                       cue_dim=int(sd["cross.fc2.weight"].shape[1]))
    load_weights(net, read_state_dict(folder / "net.pt"), folder / "net.pt", what="SGAFusion release network")
    net.eval()
    yield compare("param_count", sum(p.numel() for p in net.parameters()), fx["param_count"])
    inp = fx["inputs"]
    # Pre-processing: ToTensor of the 8-bit pictures, IR repeated to 3 channels.
    yield compare("inputs.vi = vi_uint8 / 255", inp["vi_uint8"].permute(2, 0, 1)[None].float() / 255, inp["vi"])
    yield compare("inputs.ir = ir_uint8 / 255", inp["ir_uint8"][None, None].float() / 255, inp["ir"])
    yield compare("inputs.ir3 = ir repeated", inp["ir"].expand(-1, 3, -1, -1), inp["ir3"])

    trace: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        seg, fused = net(inp["vi"], inp["ir3"], inp["feature"], trace=trace)
    out = fx["outputs"]
    yield compare("outputs.seg", seg, out["seg"], **NET_TOL)
    yield compare("outputs.fused", fused, out["fused"], **NET_TOL)
    yield compare("outputs.fused_clamped", fused.clamp(1e-5, 1.0), out["fused_clamped"], **NET_TOL)
    ours8 = to_uint8_release(fused)[0].permute(1, 2, 0)
    diff = (ours8.int() - out["fused_uint8"].int()).abs()
    yield compare("outputs.fused_uint8 (levels)", diff.max(), 0, atol=1.0)
    yield compare("outputs.fused_uint8 (fraction of values off)", (diff > 0).float().mean(), 0.0,
                  atol=UINT8_MAX_FRACTION)

    if "train_mode" in fx:
        net.train()
        with torch.no_grad():
            seg_t, fused_t = net(inp["vi"], inp["ir3"], inp["feature"])
        net.eval()
        yield compare("train_mode.seg = eval", seg_t, seg, atol=fx["train_mode"].get("max_abs_diff_seg", 0.0))
        yield compare("train_mode.fused = eval", fused_t, fused, atol=fx["train_mode"].get("max_abs_diff_fused", 0.0))

    win = fx.get("crop_window", {"rows": [0, 16], "cols": [0, 24]})
    rows, cols = win["rows"], win["cols"]
    im = fx["intermediates"]
    for stream, maps in im["streams"].items():
        for name, ref in maps.items():
            yield from _maps(f"streams.{stream}.{name}", ref, trace, f"streams.{stream}.{name}", rows, cols)
    for stream, gates in im["gates"].items():
        if isinstance(gates, dict):
            for name, ref in gates.items():
                yield from _maps(f"gates.{stream}.{name}", ref, trace, f"gates.{stream}.{name}", rows, cols)
        else:
            yield from _maps(f"gates.{stream}", gates, trace, f"gates.{stream}", rows, cols)
    moe1 = im["moe1"]
    for name in ("transmission", "A", "r", "dehaze_expert", "lowlight_expert", "conv1x1_expert"):
        if name in moe1:
            yield from _maps(f"moe1.{name}", moe1[name], trace, f"moe1.{name}", rows, cols)
    if "transmission_below_t0_fraction" in moe1:
        frac = (trace["moe1.transmission"] < 0.1).float().mean()
        yield compare("moe1.transmission_below_t0_fraction", frac, moe1["transmission_below_t0_fraction"], atol=1e-9)
    cross = im["cross"]
    for name in ("x_sum", "query_fc1", "out"):
        yield from _maps(f"cross.{name}", cross[name], trace, f"cross.{name}", rows, cols)
    yield compare("cross.key_value_fc2", trace["cross.key_value_fc2"], cross["key_value_fc2"], **NET_TOL)
    attn = trace["cross.attn"]  # (B, C, H, W)
    yield compare("cross.attn_vector", attn[:, :, 0, 0], cross["attn_vector"], **NET_TOL)
    dev = (attn - attn[:, :, :1, :1]).abs().max()
    yield compare("cross.attn_spatial_max_abs_dev", dev, cross["attn_spatial_max_abs_dev"], **NET_TOL)
    w = trace["cross.attn_weights"]
    yield compare("cross.attn_weights_shape", list(w.shape), cross["attn_weights_shape"])
    yield compare("cross.attn_weights_min", w.min(), cross["attn_weights_min"], **NET_TOL)
    yield compare("cross.attn_weights_max", w.max(), cross["attn_weights_max"], **NET_TOL)
    for name, ref in im["decoder"].items():
        yield from _maps(f"decoder.{name}", ref, trace, f"decoder.{name}", rows, cols)
    return seg, fused


def _check_classifier(folder: Path, fx: dict, net_fx: dict) -> Iterator[Comparison]:
    sd = fx["state_dict"]
    head = CueHead(int(sd["fc1.weight"].shape[1]), int(sd["fc1.weight"].shape[0]), int(sd["fc2.weight"].shape[0]))

    class _Holder(torch.nn.Module):  # load through the cue loader's key handling (bare fc1/fc2 -> head.*)
        def __init__(self):
            super().__init__()
            self.head = head

    holder = _Holder()
    load_cue_state(holder, sd, folder / "classifier.pt")
    with torch.no_grad():
        feature, logits = head(fx["inputs"]["image_embedding"])
    yield compare("classifier.feature", feature, fx["outputs"]["feature"], **LOSS_TOL)
    yield compare("classifier.logits", logits, fx["outputs"]["logits"], **LOSS_TOL)
    yield compare("classifier.num_classes", logits.shape[-1], fx["num_classes"])
    n = net_fx["inputs"]["feature"].shape[0]
    yield compare("net.inputs.feature = classifier feature", feature[:n], net_fx["inputs"]["feature"], **LOSS_TOL)


def _check_losses(fx: dict, net_fx: dict, seg: torch.Tensor, fused: torch.Tensor) -> Iterator[Comparison]:
    v, i, f = fx["inputs"]["vis_gt"], fx["inputs"]["ir"], fx["inputs"]["fused"]
    terms = {"L_max": L.max_loss(v, i, f), "L_color": L.color_loss(v, f), "L_grad": L.gradient_loss(v, i, f),
             "L_ssim_vis": L.ssim_loss(v, f), "L_ssim_ir": L.ssim_loss(L.gray(i), L.gray(f)),
             "L_consist": L.consistency_loss(v, i, f)}
    for name, ref in fx["terms"].items():
        yield compare(f"loss.terms.{name}", terms[name], ref, **LOSS_TOL)
    rw = fx["weights"]
    weights = L.FusionLossWeights(max=rw["max"], color=rw["color"], grad=rw["grad"])
    total, _ = L.fusion_loss(v, i, f, weights)
    yield compare("loss.total", total, fx["total"], **LOSS_TOL)
    total3, _ = L.fusion_loss(v, i.expand(-1, 3, -1, -1), f, weights)
    yield compare("loss.total_with_ir_as_3_channels", total3, fx["total_with_ir_as_3_channels"], **LOSS_TOL)
    weighted = {"max": rw["max"] * terms["L_max"], "color": rw["color"] * terms["L_color"],
                "grad": rw["grad"] * terms["L_grad"],
                "ssim_not_added": rw["ssim"] * terms["L_ssim_vis"] + rw["ssim_ir"] * terms["L_ssim_ir"],
                "consist_not_added": rw["consist"] * terms["L_consist"]}
    for name, ref in fx.get("weighted", {}).items():
        yield compare(f"loss.weighted.{name}", weighted[name], ref, **LOSS_TOL)
    dbg = fx.get("debug", {})
    mask, target = L.max_target(v, i)
    ours = {"max_mask": mask, "max_target": target, "gray_vis": L.gray(v), "gray_fused": L.gray(f)}
    for name, ref in dbg.items():
        yield compare(f"loss.debug.{name}", ours[name], ref, **LOSS_TOL)
    ce = fx["seg_ce"]
    yield compare("loss.seg_ce", L.segmentation_loss(ce["logits"], ce["labels"]), ce["loss"], **LOSS_TOL)
    yield compare("loss.seg_ce_with_ignore",
                  L.segmentation_loss(ce["logits"], ce["labels_with_ignore"], ce.get("ignore_index", -100)),
                  ce["loss_with_ignore"], **LOSS_TOL)
    # On the network's outputs (recomputed by us), so the network tolerance applies.
    on = fx["on_net_outputs"]
    fl, _ = L.fusion_loss(net_fx["inputs"]["vi"], net_fx["inputs"]["ir"], fused, weights)
    cl = L.segmentation_loss(seg, ce["labels"])
    yield compare("loss.on_net_outputs.fusion_loss", fl, on["fusion_loss"], **NET_TOL)
    yield compare("loss.on_net_outputs.ce_loss", cl, on["ce_loss"], **NET_TOL)
    yield compare("loss.on_net_outputs.stage2_total", cl + fl, on["stage2_total"], **NET_TOL)


def _check_schedule(meta: dict) -> Iterator[Comparison]:
    for name, stage in meta["stages"].items():
        ours = lr_schedule(int(stage["epochs"]), float(stage["base_lr"]), bool(stage["compounding"]))
        yield compare(f"schedule.{name}.lr_per_epoch", ours, stage["lr_per_epoch"], rtol=1e-9)
        if "lr_per_epoch_if_not_compounding" in stage:
            plain = lr_schedule(int(stage["epochs"]), float(stage["base_lr"]), False)
            yield compare(f"schedule.{name}.lr_per_epoch_if_not_compounding", plain,
                          stage["lr_per_epoch_if_not_compounding"], rtol=1e-9)


def check(folder: Path) -> Iterator[Comparison]:
    folder = Path(folder)
    net_fx = _load(folder / "net.pt")
    gen = _check_net(folder, net_fx)
    while True:  # pass the recomputed outputs on to the loss checks
        try:
            yield next(gen)
        except StopIteration as stop:
            seg, fused = stop.value
            break
    yield from _check_classifier(folder, _load(folder / "classifier.pt"), net_fx)
    yield from _check_losses(_load(folder / "loss.pt"), net_fx, seg, fused)
    yield from _check_schedule(json.loads((folder / "schedule.json").read_text()))
