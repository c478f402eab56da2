"""Reference values and constants parsed out of the shared METRICS.md at test time (never copied into the repo),
and the reference triples with our metric values, computed once per session."""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

import numpy as np
import pytest


def appendix_c(text: str) -> Dict[str, Dict[str, float]]:
    """{'LLVIP/1.jpg': {'CE': ..., ...}} from the two tables of Appendix C."""
    section = text[text.index("## Appendix C"):text.index("## Appendix D")]
    out: Dict[str, Dict[str, float]] = {}
    for table in re.findall(r"(\| triplet \|.*?)\n\n", section + "\n\n", re.S):
        lines = table.strip().split("\n")
        header = [h.strip() for h in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            out.setdefault(cells[0], {}).update({h: float(v) for h, v in zip(header[1:], cells[1:])})
    return out


def vif_kernels(text: str) -> List[np.ndarray]:
    """The four float32 VIF kernels (N = 17, 9, 5, 3) of Appendix A.4."""
    section = text[text.index("### A.4"):text.index("## Appendix B")]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    return [np.array([int(h, 16) for h in b.split()], dtype=np.uint32).view(np.float32) for b in blocks]


def hex_column(text: str, start: str, end: str) -> List[int]:
    """The 'hex bits' column of an Appendix A table, in row order."""
    section = text[text.index(start):text.index(end)]
    return [int(h, 16) for h in re.findall(r"^\| \d+ \| [^|]+\| (0x[0-9a-f]+) \|", section, re.M)]


@pytest.fixture(scope="session")
def spec_text(reference_file) -> str:
    """The text of METRICS.md in the reference folder (a skip naming it when it is missing)."""
    return reference_file("METRICS.md").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def reference_values(spec_text) -> Dict[str, Dict[str, float]]:
    """Appendix C: {'LLVIP/1.jpg': {'CE': ..., ...}} for the 20 triples."""
    return appendix_c(spec_text)


@pytest.fixture(scope="session")
def spec_vif_kernels(spec_text) -> List[np.ndarray]:
    return vif_kernels(spec_text)


@pytest.fixture(scope="session")
def spec_hex_column(spec_text):
    return lambda start, end: hex_column(spec_text, start, end)


# Triples scored with all 21 metrics: two per dataset, chosen where the metrics are hardest (the worst
# cases of a float64 VIF and SSIM, of Qcb, the AVX2 VIF case of issue 13, CE near 0).
FULL_TRIPLES = ("LLVIP/1.jpg", "LLVIP/5.jpg", "M3FD/00025.png", "M3FD/00349.png", "MSRS/00746N.png",
                "MSRS/00762N.png", "RoadScene/FLIR_04688.jpg", "RoadScene/FLIR_04701.jpg")
# The other 12 triples are scored with the metrics that cost ~5 ms each (all but these seven).
COSTLY_METRICS = ("VIF", "Qy", "Qcb", "SSIM", "MS_SSIM", "Qabf", "Nabf")


@pytest.fixture(scope="session")
def reference_triples(reference_file, reference_values) -> Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{'LLVIP/1.jpg': (IR, VIS, fused)} uint8 grey images of the 20 reference triples, read once."""
    from metrics.imread import read_gray

    samples = reference_file("ivif_samples")
    out = {}
    for triple in reference_values:
        dataset, name = triple.split("/")
        root = samples / dataset
        out[triple] = tuple(read_gray(root / sub / name) for sub in ("Inf", "Vis", "Ours"))
    return out


@pytest.fixture(scope="session")
def computed_values(reference_triples) -> Dict[str, Dict[str, float]]:
    """Our values on the reference triples: all 21 metrics on FULL_TRIPLES, the cheap 14 on the rest."""
    from metrics import METRIC_NAMES, compute_metrics

    cheap = [m for m in METRIC_NAMES if m not in COSTLY_METRICS]
    return {t: compute_metrics(*images, None if t in FULL_TRIPLES else cheap)
            for t, images in reference_triples.items()}
