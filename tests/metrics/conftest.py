"""Reference values and constants parsed out of ../shared/METRICS.md at test time (never copied into the repo)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest


def metrics_md(shared_dir: Path) -> str:
    return (shared_dir / "METRICS.md").read_text(encoding="utf-8")


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
def spec_text(shared_dir) -> str:
    """The text of ../shared/METRICS.md."""
    return metrics_md(shared_dir)


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
