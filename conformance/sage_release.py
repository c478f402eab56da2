"""Fixture kind `sage_release`: SAGE training numbers computed by the release's own code.

The folder holds teacher.pt, student.pt and schedule.json (format "sage-release-fixtures/1"). The
fixture's weights are loaded strictly into this project's Teacher, Student and SAM feature extractor;
their outputs (train and eval), every loss term, one Adam step of each network and the schedule are
recomputed with this project's code and compared. Shapes, K, learning rates and Adam settings are read
from the fixture, so other seeds and sizes work alike.

Tolerances (the fixture's README, docs/release_differences.md "How training is checked"):
outputs 1e-5 and losses 1e-6 relative to the largest reference value; gradients 1e-2 of each tensor's
max |g|; after one Adam step every value within 2 lr + 1e-6 (Adam's first step is +-lr, so rounding
that flips a gradient's sign moves a weight by up to 2 lr) and all but 0.1 % within 1e-6. The student's
conv biases that feed a train-mode BatchNorm have a true gradient of zero (only rounding noise): their
gradients are compared with an absolute 1e-4 and their post-step values are skipped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, List, Mapping, Sequence

import torch
import torch.nn as nn

from .fixture_io import fixture_json, load_tensors
from .report import Comparison, compare

FILES = ("teacher.pt", "student.pt", "schedule.json")
FORMAT_PREFIX = "sage-release-fixtures/"

OUTPUT_RTOL = 1e-5
LOSS_RTOL = 1e-6
GRAD_RTOL = 1e-2
NOISE_GRAD_ATOL = 1e-4
STEP_ATOL = 1e-6
STEP_OUTLIER_FRACTION = 1e-3
SCHEDULE_RTOL = 1e-12


def recognise(folder: Path) -> bool:
    """True when `folder` holds the three files and schedule.json declares the sage-release format."""
    meta = fixture_json(folder, FILES, "schedule.json")
    fmt = meta.get("format", "") if isinstance(meta, dict) else ""
    return isinstance(fmt, str) and fmt.startswith(FORMAT_PREFIX)


def load(folder: Path, name: str) -> dict:
    return load_tensors(Path(folder) / name, "sage_release")


def check(folder: Path) -> Iterable[Comparison]:
    """Every comparison of the fixture: teacher, student (and SAM features), schedule."""
    folder = Path(folder)
    teacher = load(folder, "teacher.pt")
    student = load(folder, "student.pt")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield from check_teacher(teacher)
        yield from check_student(student, teacher)
    yield from check_schedule(json.loads((folder / "schedule.json").read_text()))


# ----------------------------------------------------------------------------- helpers

def _float(x) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def loss_line(name: str, ours, ref) -> Comparison:
    return compare(name, _float(ours), _float(ref), atol=0.0, rtol=LOSS_RTOL)


# (our term, the fixture's name) of the loss terms a network learns from the other network
DISTILL_TERMS = (("fuse", "fuse"), ("grad", "grad"), ("cr_vis", "DH[0]"), ("cr_ir", "DH[1]"),
                 ("contrast", "contrast"), ("cal", "cal_total"), ("cos", "cosine"))


def distill_lines(prefix: str, terms: Mapping[str, torch.Tensor], ref: Mapping) -> Iterator[Comparison]:
    """fuse, grad, DH[0], DH[1], contrast, cal_total and cosine of one loss (`terms` keyed as DISTILL_TERMS)."""
    for ours_key, ref_key in DISTILL_TERMS:
        theirs = ref["DH"][int(ref_key[3])] if ref_key.startswith("DH[") else ref[ref_key]
        yield loss_line(f"{prefix}.{ref_key}", terms[ours_key], theirs)


def output_lines(prefix: str, fused: torch.Tensor, taps: Sequence[torch.Tensor], ref: Mapping) -> Iterator[Comparison]:
    yield compare(f"{prefix}.fused", fused, ref["fused"], rtol=OUTPUT_RTOL)
    for i, (ours, theirs) in enumerate(zip(taps, ref["taps"]), start=1):
        yield compare(f"{prefix}.taps[{i}]", ours, theirs, rtol=OUTPUT_RTOL)
    if len(taps) != len(ref["taps"]):
        yield Comparison(f"{prefix}.taps", float("inf"), float("inf"), 0.0, 0.0,
                         note=f"{len(taps)} taps, fixture has {len(ref['taps'])}")


def load_line(name: str, module: nn.Module, state: Mapping[str, torch.Tensor]) -> Comparison:
    """Strict load of the fixture's state_dict; the line fails naming the keys when the names differ."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        return Comparison(name, float("inf"), float("inf"), 0.0, 0.0,
                          note="strict load failed: " + " ".join(first[1:3])[:160])
    ours = module.state_dict()
    diff = max(((ours[k].double() - state[k].double()).abs().max().item() for k in state), default=0.0)
    return Comparison(name, diff, diff, 0.0, 0.0, 1.0)


def adam(params, step: Mapping) -> torch.optim.Adam:
    """Adam with the fixture's settings."""
    return torch.optim.Adam(params, lr=float(step["lr"]), betas=tuple(step["betas"]), eps=float(step["eps"]),
                            weight_decay=float(step["weight_decay"]), amsgrad=bool(step["amsgrad"]))


def post_step_lines(prefix: str, ours: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor], lr: float,
                    skip: Sequence[str] = ()) -> Iterator[Comparison]:
    """Post-step state: every value within 2 lr + 1e-6, all but 0.1 % within 1e-6; keys in `skip` left out."""
    keys = [k for k in ref if k not in skip]
    missing = [k for k in keys if k not in ours]
    if missing:
        yield Comparison(f"{prefix}.state_dict", float("inf"), float("inf"), 0.0, 0.0,
                         note=f"missing {', '.join(missing[:3])}")
        return
    diffs = torch.cat([(ours[k].double() - ref[k].double()).abs().flatten() for k in keys])
    scale = max(ref[k].double().abs().max().item() for k in keys)
    worst = diffs.max().item()
    yield Comparison(f"{prefix}.state_dict ({len(keys)} tensors, all)", worst, worst / scale,
                     atol=2 * lr + STEP_ATOL, rtol=0.0, scale=scale)
    allowed = int(STEP_OUTLIER_FRACTION * diffs.numel())
    quantile = torch.topk(diffs, allowed + 1).values[-1].item() if diffs.numel() > allowed else 0.0
    yield Comparison(f"{prefix}.state_dict (all but 0.1 %)", quantile, quantile / scale,
                     atol=STEP_ATOL, rtol=0.0, scale=scale)


def bn_fed_conv_biases(model: nn.Module) -> List[str]:
    """Names of conv biases whose output goes straight into a BatchNorm (their true gradient is 0 in train())."""
    names = []
    for seq_name, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            layers = list(seq.named_children())
            for (name, layer), (_, after) in zip(layers, layers[1:]):
                if isinstance(layer, nn.Conv2d) and layer.bias is not None and isinstance(after, nn.BatchNorm2d):
                    names.append(f"{seq_name}.{name}.bias" if seq_name else f"{name}.bias")
    return names


# ----------------------------------------------------------------------------- teacher

def check_teacher(fx: Mapping) -> Iterator[Comparison]:
    from losses.fusion import teacher_base_loss
    from losses.weights import LossWeights
    from models.attention import set_attn_impl
    from models.teacher import Teacher

    state = fx["state_dict"]
    k = int(state["encoder_mask1_vi.0.weight"].shape[1])
    teacher = Teacher(mask_channels=k)
    yield load_line("teacher.state_dict (release names, strict)", teacher, state)
    yield compare("teacher.param_count", sum(p.numel() for p in teacher.parameters()), fx["param_count"])
    x = fx["inputs"]
    args = [x[n] for n in fx["forward_argument_order"]]  # y, ir, vis_segments, ir_segments

    teacher.eval()
    with torch.no_grad():
        fused, taps = teacher(*args)  # SDPA attention, the default for training
    yield from output_lines("teacher.outputs.eval", fused, taps, fx["outputs"]["eval"])
    # train() equals eval() in the release (no BatchNorm, dropout 0); the train forward drives the step.
    # It uses the release's explicit softmax(QK^T)V: SDPA rounds differently, and after Adam's first
    # step (+-lr per weight) those roundings flip the sign of ~0.2 % of the tiny gradient elements,
    # more than the fixture's 0.1 % allowance (all still within 2 lr).
    set_attn_impl(teacher, "explicit")
    teacher.train()
    fused, taps = teacher(*args)
    yield from output_lines("teacher.outputs.train", fused.detach(), [t.detach() for t in taps],
                            fx["outputs"]["eval"])

    w = LossWeights()
    total, terms = teacher_base_loss(fused, x["y"], x["ir"], w)
    ref = fx["loss"]
    yield loss_line("teacher.loss.mse_y", terms["mse_y"], ref["mse_y"])
    yield loss_line("teacher.loss.mse_ir", terms["mse_ir"], ref["mse_ir"])
    yield loss_line("teacher.loss.grad_unweighted", terms["g_src"], ref["grad_unweighted"])
    yield loss_line("teacher.loss.fuse", w.teacher_y * terms["mse_y"] + w.teacher_ir * terms["mse_ir"], ref["fuse"])
    yield loss_line("teacher.loss.grad", w.teacher_grad * terms["g_src"], ref["grad"])
    yield loss_line("teacher.loss.total", total, ref["total"])

    step = fx["step"]
    opt = adam(teacher.parameters(), step)
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    after = {n: v.detach().clone() for n, v in teacher.state_dict().items()}
    changed = {n for n in after if not torch.equal(after[n], state[n].to(after[n].dtype))}
    yield compare("teacher.step.changed_keys (mismatches)", len(changed ^ set(step["changed_keys"])), 0)
    yield from post_step_lines("teacher.step", after, step["state_dict"], float(step["lr"]))

    m16 = fx.get("m16")
    if m16:
        teacher.load_state_dict(state, strict=True)
        teacher.eval()
        margs = [m16["inputs"][n] for n in fx["forward_argument_order"]]
        with torch.no_grad():
            fused, taps = teacher(*margs)
            total, terms = teacher_base_loss(fused, m16["inputs"]["y"], m16["inputs"]["ir"], w)
        yield from output_lines("teacher.m16.outputs.eval", fused, taps, m16["outputs"]["eval"])
        yield loss_line("teacher.m16.loss.fuse", w.teacher_y * terms["mse_y"] + w.teacher_ir * terms["mse_ir"],
                        m16["loss"]["fuse"])
        yield loss_line("teacher.m16.loss.grad", w.teacher_grad * terms["g_src"], m16["loss"]["grad"])
        yield loss_line("teacher.m16.loss.total", total, m16["loss"]["total"])


# ----------------------------------------------------------------------------- student and SAM

def check_student(fx: Mapping, teacher_fx: Mapping) -> Iterator[Comparison]:
    from losses.contrast import nonempty_channels
    from losses.totals import SegmentPrior, student_loss, teacher_loss
    from losses.weights import LossWeights
    from models.student import Student
    from SAM.features import SAMFeatureExtractor

    extractor = SAMFeatureExtractor(resize="release")
    yield load_line("sam.state_dict (strict)", extractor, fx["sam_extractor_state_dict"])
    with torch.no_grad():
        feats = extractor(fx["sam_input"])
        pre = extractor.preprocess(fx["sam_portrait_input"])
        portrait = extractor(fx["sam_portrait_input"])
    for i, (ours, ref) in enumerate(zip(feats, fx["sam_features"])):
        yield compare(f"sam.features[{i}]", ours, ref, rtol=OUTPUT_RTOL)
    yield compare("sam.portrait_preprocessed", pre, fx["sam_portrait_preprocessed"], rtol=OUTPUT_RTOL)
    for i, (ours, ref) in enumerate(zip(portrait, fx["sam_portrait_features"])):
        yield compare(f"sam.portrait_features[{i}]", ours, ref, rtol=OUTPUT_RTOL)

    state = fx["state_dict"]
    x = fx["inputs"]
    y, ir, vm, im = x["y"], x["ir"], x["vis_segments"], x["ir_segments"]
    ref_t = teacher_fx["outputs"]["eval"]  # the reference: the release teacher's outputs (fixture README)
    ref, taps_t = ref_t["fused"], list(ref_t["taps"])

    student = Student()
    yield load_line("student.state_dict (strict)", student, state)
    student.eval()
    with torch.no_grad():
        fused, taps = student(y, ir)
    yield from output_lines("student.outputs.eval", fused, taps, fx["outputs"]["eval"])
    student.load_state_dict(state, strict=True)  # fresh running statistics for the train forward
    student.train()
    fused, taps = student(y, ir)
    yield from output_lines("student.outputs.train", fused.detach(), [t.detach() for t in taps],
                            fx["outputs"]["train"])

    w = LossWeights()
    total, terms = student_loss(fused, taps, y, ir, ref, taps_t, SegmentPrior(vm, im, extractor, "image"), w)
    lref = fx["loss"]
    parts = {"mse_y": "mse_y", "mse_ir": "mse_ir", "mse_ref": "mse_ref", "g_src": "grad_y_ir", "g_ref": "grad_ref"}
    for ours_key, ref_key in parts.items():
        yield loss_line(f"student.loss.parts.{ref_key}", terms[ours_key], lref["parts"][ref_key])
    yield from distill_lines("student.loss", terms, lref)
    yield loss_line("student.loss.middle", w.w_cos * terms["cos"], lref["middle"])
    yield loss_line("student.loss.total", total, lref["total"])
    skipped = [f"{k} vi_mask is zero" for k in range(vm.shape[1]) if k not in nonempty_channels(vm)]
    skipped += [f"{k} ir_mask is zero" for k in range(im.shape[1]) if k not in nonempty_channels(im)]
    yield compare("student.loss.skipped_segments (mismatches)",
                  len(set(skipped) ^ set(lref.get("skipped_segments", []))), 0)

    step = fx["step"]
    opt = adam(student.parameters(), step)
    opt.zero_grad(set_to_none=True)
    total.backward()
    noise = set(bn_fed_conv_biases(student))
    grad_scale = max(g.abs().max().item() for g in step["grads"].values())
    noise_diff = 0.0
    for name, p in student.named_parameters():
        g_ref = step["grads"][name]
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        if name in noise:
            noise_diff = max(noise_diff, (g.double() - g_ref.double()).abs().max().item())
        else:
            yield compare(f"student.step.grads.{name}", g, g_ref, rtol=GRAD_RTOL)
    # Conv biases feeding a train-mode BatchNorm: true gradient 0, both sides hold rounding noise only.
    yield Comparison(f"student.step.grads (BN-fed conv biases, {len(noise)})", noise_diff, noise_diff / grad_scale,
                     atol=NOISE_GRAD_ATOL, rtol=0.0, scale=grad_scale)
    opt.step()
    after = {n: v.detach().clone() for n, v in student.state_dict().items()}
    yield from post_step_lines("student.step", after, step["state_dict"], float(step["lr"]), skip=sorted(noise))

    # The teacher's mutual term from student_epoch on: fixture teacher outputs, the student's train outputs.
    mref = fx["teacher_mutual_loss"]
    s_train = fx["outputs"]["train"]
    t_total, t_terms = teacher_loss(ref, taps_t, y, ir, ref_s=s_train["fused"], taps_s=list(s_train["taps"]),
                                    prior=SegmentPrior(vm, im, extractor, "image"), mutual=True, weights=w)
    yield from distill_lines("teacher_mutual", {k[len("mutual_"):]: v for k, v in t_terms.items()
                                                if k.startswith("mutual_")}, mref)
    yield loss_line("teacher_mutual.student_term", w.mutual * t_terms["mutual_cal"] + w.mutual_cos * t_terms["mutual_cos"],
                    mref["student_term"])
    yield loss_line("teacher_mutual.teacher_total_without_semantic", t_total, mref["teacher_total_without_semantic"])


# ----------------------------------------------------------------------------- schedule

def check_schedule(fx: Mapping) -> Iterator[Comparison]:
    from training.schedule import epoch_plan, lr_trace, scheduler_period, update_counts

    for n_text, record in sorted(fx["sequences"].items(), key=lambda kv: int(kv[0])):
        n = int(n_text)
        mismatches = 0
        # recorded with student_epoch = 2: epoch 1 lies before it, epoch 2 from it on
        for epoch, key in ((1, "epoch_lt_student_epoch"), (2, "epoch_ge_student_epoch")):
            plan = epoch_plan(n, epoch, student_epoch=2)
            ours = [[s.kind[0], s.batch_index] for s in plan]
            theirs = [list(s) for s in record[key]["steps"]]
            mismatches += sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
            counts = update_counts(plan)
            mismatches += sum(counts[k] != v for k, v in record[key]["scheduler_steps"].items())
        yield compare(f"schedule.sequence[{n} batches] (mismatched steps)", mismatches, 0)

    for run, rec in fx["lr_runs"].items():
        epochs, n, student_epoch = int(rec["epochs"]), int(rec["batches_per_epoch"]), int(rec["student_epoch"])
        yield compare(f"schedule.{run}.T_max", scheduler_period(epochs, n), rec["T_max"])
        for kind in ("teacher", "student"):
            ref = rec[kind]
            ours = lr_trace(kind, float(ref["base_lr"]), float(rec["eta_min"]), epochs, n, student_epoch)
            if [(r["epoch"], r["batch"]) for r in ours] != [(r["epoch"], r["batch"]) for r in ref["steps"]]:
                yield Comparison(f"schedule.{run}.{kind}.steps", float("inf"), float("inf"), 0.0, 0.0,
                                 note=f"{len(ours)} updates at other (epoch, batch) than the fixture's {len(ref['steps'])}")
                continue
            for field in ("lr_used", "lr_after"):
                yield compare(f"schedule.{run}.{kind}.{field}", [r[field] for r in ours],
                              [r[field] for r in ref["steps"]], rtol=SCHEDULE_RTOL)


__all__ = ["recognise", "check", "check_teacher", "check_student", "check_schedule"]

