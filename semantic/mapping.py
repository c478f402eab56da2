"""Mapping a judge's classes (e.g. the 19 Cityscapes classes) onto the training labels' classes (e.g. FMB's 15).

Each target class t owns a group S_t of source classes. Its logit is logsumexp over S_t of the source
logits, so that softmax over the targets equals, for every target, the SUM of the source probabilities
of its group, renormalised over the mapped source classes. Summing probabilities is the natural
choice: a pixel the judge splits between "person" and "rider" is confidently a FMB "Person". Source
classes that map to nothing (Cityscapes wall, fence, terrain, train) simply drop out. Target classes
with no source (FMB background) get a constant very low logit and their pixels are ignored in the loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch

from .classes import SemanticConfigError, read_yaml

# A finite stand-in for -inf: exp() underflows to 0 in float32/16 without producing NaN in softmax.
UNMAPPED_LOGIT = -1.0e4


def _key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").split())


def _is_generic(names: Sequence[str]) -> bool:
    """transformers' placeholder labels (LABEL_0, ...): a config saved without real class names."""
    return all(_key(n) == f"label {i}" for i, n in enumerate(names))


@dataclass
class ClassMapping:
    """groups[t] = indices of the source classes whose logits make target class t (empty: unmapped)."""

    source_names: List[str]
    target_names: List[str]
    groups: List[List[int]]

    @property
    def num_source(self) -> int:
        return len(self.source_names)

    @property
    def num_target(self) -> int:
        return len(self.target_names)

    @property
    def unmapped_targets(self) -> List[int]:
        return [t for t, g in enumerate(self.groups) if not g]

    def is_identity(self) -> bool:
        return self.num_source == self.num_target and all(g == [t] for t, g in enumerate(self.groups))

    def describe(self) -> str:
        """One line per target class: 'Person <- person + rider'."""
        lines = []
        for t, g in enumerate(self.groups):
            src = " + ".join(self.source_names[s] for s in g) if g else "(none: ignored)"
            lines.append(f"{self.target_names[t]} <- {src}")
        return "\n".join(lines)


def map_logits(logits: torch.Tensor, groups: Sequence[Sequence[int]], fill: float = UNMAPPED_LOGIT) -> torch.Tensor:
    """(B, S, ...) source logits -> (B, T, ...) target logits; target t = logsumexp of logits[:, groups[t]].

    Targets with an empty group get the constant `fill`. Differentiable.
    """
    outs = []
    for g in groups:
        if g:
            outs.append(torch.logsumexp(logits[:, list(g)], dim=1))
        else:
            outs.append(torch.full_like(logits[:, 0], fill))
    return torch.stack(outs, dim=1)


def identity_mapping(names: Sequence[str]) -> ClassMapping:
    return ClassMapping(list(names), list(names), [[t] for t in range(len(names))])


def build_mapping(spec: Optional[Any], source_names: Sequence[str], target_names: Sequence[str],
                  where: str = "semantic.mapping") -> ClassMapping:
    """The mapping from the judge's classes to the label classes.

    Args:
        spec: None (the judge's classes must be the label classes, in order), a YAML path, or a dict
            holding `mapping: {target: [sources]}` (optionally `source_classes`, `target_classes` to check)
            or the {target: [sources]} dict itself. Names match case-insensitively; a target not listed
            has no source.
        source_names: the judge's class names in output order (generic LABEL_k names accept any
            `source_classes` list of the same length).
        target_names: the label classes in label order.
    """
    source_names, target_names = list(source_names), list(target_names)
    if spec is None:
        if [_key(n) for n in source_names] == [_key(n) for n in target_names] or (
                _is_generic(source_names) and len(source_names) == len(target_names)):
            return identity_mapping(target_names)
        raise SemanticConfigError(
            f"{where}: the judge's {len(source_names)} classes ({', '.join(source_names[:4])}, ...) are not the "
            f"{len(target_names)} label classes ({', '.join(target_names[:4])}, ...); set {where} to a mapping "
            f"file such as configs/semantic/cityscapes_to_fmb.yaml")
    origin = where
    if isinstance(spec, str):
        origin = spec
        spec = read_yaml(spec, "class mapping")
    if not isinstance(spec, dict):
        raise SemanticConfigError(f"{origin}: expected a mapping {{target class: [source classes]}}")
    meta = ("source_classes", "target_classes", "source", "target", "description")
    table = spec["mapping"] if "mapping" in spec else {k: v for k, v in spec.items() if k not in meta}
    file_sources = spec.get("source_classes")
    file_targets = spec.get("target_classes")
    if not isinstance(table, dict):
        raise SemanticConfigError(f"{origin}: `mapping` must be a dict {{target class: [source classes]}}")

    if file_sources is not None:
        file_sources = [str(s) for s in file_sources]
        if _is_generic(source_names):
            if len(file_sources) != len(source_names):
                raise SemanticConfigError(f"{origin}: lists {len(file_sources)} source classes but the judge outputs "
                                          f"{len(source_names)}; use a mapping written for this model")
            source_names = file_sources
        elif [_key(s) for s in file_sources] != [_key(s) for s in source_names]:
            raise SemanticConfigError(f"{origin}: source_classes ({', '.join(file_sources[:4])}, ...) differ from the "
                                      f"judge's classes ({', '.join(source_names[:4])}, ...); use a mapping written "
                                      f"for this model")
    elif _is_generic(source_names):
        raise SemanticConfigError(f"{origin}: the judge has no class names (LABEL_0, ...); list them under "
                                  f"`source_classes:` in the mapping file")
    if file_targets is not None and [_key(s) for s in file_targets] != [_key(s) for s in target_names]:
        raise SemanticConfigError(f"{origin}: target_classes ({', '.join(map(str, file_targets[:4]))}, ...) differ from "
                                  f"semantic.class_names ({', '.join(target_names[:4])}, ...); make them agree")

    src_index = {_key(s): i for i, s in enumerate(source_names)}
    tgt_index = {_key(t): i for i, t in enumerate(target_names)}
    groups: List[List[int]] = [[] for _ in target_names]
    used: Dict[int, str] = {}
    for tgt, sources in table.items():
        if _key(tgt) not in tgt_index:
            raise SemanticConfigError(f"{origin}: target class '{tgt}' is not in the label classes {target_names}")
        if sources is None:
            continue
        if isinstance(sources, str):
            sources = [sources]
        t = tgt_index[_key(tgt)]
        for s in sources:
            if _key(s) not in src_index:
                raise SemanticConfigError(f"{origin}: source class '{s}' (for '{tgt}') is not one of the judge's "
                                          f"classes {source_names}")
            i = src_index[_key(s)]
            if i in used:
                raise SemanticConfigError(f"{origin}: source class '{s}' is mapped twice ('{used[i]}' and '{tgt}')")
            used[i] = str(tgt)
            groups[t].append(i)
    if not any(groups):
        raise SemanticConfigError(f"{origin}: maps no class at all")
    return ClassMapping(list(source_names), target_names, [sorted(g) for g in groups])
