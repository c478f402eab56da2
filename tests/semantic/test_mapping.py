"""The judge-class -> label-class mapping (Cityscapes 19 -> FMB 15) on hand-made logits."""
from __future__ import annotations

import math

import pytest
import torch

from semantic.classes import CITYSCAPES_CLASSES, FMB_CLASSES, SemanticConfigError, load_class_names
from semantic.mapping import UNMAPPED_LOGIT, build_mapping, map_logits

MAPPING_FILE = "configs/semantic/cityscapes_to_fmb.yaml"


def cs(name: str) -> int:
    return CITYSCAPES_CLASSES.index(name)


def fmb(name: str) -> int:
    return FMB_CLASSES.index(name)


def test_shipped_mapping_groups():
    m = build_mapping(MAPPING_FILE, CITYSCAPES_CLASSES, FMB_CLASSES)
    assert m.num_source == 19 and m.num_target == 15
    assert m.unmapped_targets == [0]  # background has no Cityscapes counterpart
    assert m.groups[fmb("Person")] == [cs("person"), cs("rider")]
    assert m.groups[fmb("Lamp")] == [cs("traffic light")]
    assert m.groups[fmb("Pole")] == [cs("pole")]
    mapped = {s for g in m.groups for s in g}
    assert {CITYSCAPES_CLASSES[s] for s in set(range(19)) - mapped} == {"wall", "fence", "terrain", "train"}


def test_map_logits_hand_made():
    m = build_mapping(MAPPING_FILE, CITYSCAPES_CLASSES, FMB_CLASSES)
    logits = torch.full((1, 19, 1, 2), -5.0)
    logits[0, cs("person"), 0, 0] = 2.0
    logits[0, cs("rider"), 0, 0] = 2.0
    logits[0, cs("car"), 0, 1] = 3.0
    logits[0, cs("wall"), 0, 1] = 7.0  # unmapped: must not leak into any FMB class
    out = map_logits(logits, m.groups)
    assert out.shape == (1, 15, 1, 2)
    assert out[0, fmb("Person"), 0, 0].item() == pytest.approx(2.0 + math.log(2.0), abs=1e-6)
    assert out[0, fmb("Car"), 0, 1].item() == pytest.approx(3.0, abs=1e-6)
    assert out[0, fmb("Road"), 0, 1].item() == pytest.approx(-5.0, abs=1e-6)
    assert out[0, 0].eq(UNMAPPED_LOGIT).all()
    assert out[0, :, 0, 0].argmax().item() == fmb("Person")
    assert out[0, :, 0, 1].argmax().item() == fmb("Car")


def test_mapped_softmax_sums_source_probabilities():
    m = build_mapping(MAPPING_FILE, CITYSCAPES_CLASSES, FMB_CLASSES)
    torch.manual_seed(0)
    logits = torch.randn(2, 19, 3, 3)
    p_tgt = map_logits(logits, m.groups).softmax(dim=1)
    mapped = sorted(s for g in m.groups for s in g)
    p_src = logits[:, mapped].softmax(dim=1)  # renormalised over the mapped sources
    idx = {s: i for i, s in enumerate(mapped)}
    person = p_src[:, idx[cs("person")]] + p_src[:, idx[cs("rider")]]
    assert torch.allclose(p_tgt[:, fmb("Person")], person, atol=1e-6)
    assert torch.allclose(p_tgt[:, fmb("Bus")], p_src[:, idx[cs("bus")]], atol=1e-6)
    assert p_tgt[:, 0].max().item() < 1e-30


def test_map_logits_gradient_flows():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    map_logits(logits, [[0, 1], [], [2]]).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_identity_and_class_mismatch():
    m = build_mapping(None, FMB_CLASSES, [n.lower() for n in FMB_CLASSES])
    assert m.is_identity()
    with pytest.raises(SemanticConfigError, match="not the 15 label classes"):
        build_mapping(None, CITYSCAPES_CLASSES, FMB_CLASSES)


def test_generic_label_names_take_the_files_source_list():
    generic = [f"LABEL_{i}" for i in range(19)]
    m = build_mapping(MAPPING_FILE, generic, FMB_CLASSES)
    assert m.groups[fmb("Person")] == [cs("person"), cs("rider")]
    with pytest.raises(SemanticConfigError, match="lists 19 source classes but the judge outputs 18"):
        build_mapping(MAPPING_FILE, generic[:18], FMB_CLASSES)


@pytest.mark.parametrize("spec, message", [
    ({"mapping": {"Road": ["highway"]}}, "source class 'highway'"),
    ({"mapping": {"Street": ["road"]}}, "target class 'Street'"),
    ({"mapping": {"Road": ["road"], "Sidewalk": ["road"]}}, "mapped twice"),
    ({"mapping": {"Road": []}}, "maps no class"),
    ({"target_classes": ["a", "b"], "mapping": {"Road": ["road"]}}, "differ from semantic.class_names"),
])
def test_bad_mappings_fail_clearly(spec, message):
    with pytest.raises(SemanticConfigError, match=message):
        build_mapping(spec, CITYSCAPES_CLASSES, FMB_CLASSES)


def test_mapping_file_for_another_model_is_refused():
    other = list(CITYSCAPES_CLASSES)
    other[3] = "bridge"
    with pytest.raises(SemanticConfigError, match="differ from the judge's classes"):
        build_mapping(MAPPING_FILE, other, FMB_CLASSES)


def test_class_list_file_and_missing_file():
    assert load_class_names("configs/semantic/fmb_classes.yaml") == FMB_CLASSES
    with pytest.raises(SemanticConfigError, match="no such class list file"):
        load_class_names("configs/semantic/nope.yaml")
