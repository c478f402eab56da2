"""Folder evaluation, report files, the method comparison and the scripts/evaluate.py command line."""
from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metrics import METRIC_NAMES, MetricNameError, compute_metrics, parse_metric_list
from metrics.evaluate import evaluate_folders, final_line, format_summary
from metrics.imread import MetricImageError, read_gray
from metrics.report import best_method, write_report

H, W = 24, 32


def _img(seed: int, h=H, w=W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture()
def dataset(tmp_path):
    """Ir/Vis with pairs a, b, c, d; fused: a (png), b (bmp), c of the wrong size, d missing."""
    for i, name in enumerate("abcd"):
        _save(tmp_path / "data" / "Ir" / f"{name}.png", _img(i))
        _save(tmp_path / "data" / "Vis" / f"{name}.png", _img(10 + i))
    _save(tmp_path / "fused" / "a.png", _img(20))
    _save(tmp_path / "fused" / "b.bmp", _img(21))
    _save(tmp_path / "fused" / "c.png", _img(22, H + 2, W))
    return tmp_path


def test_evaluate_folders_scores_skips_and_lists_missing(dataset):
    logs = []
    rows, summary = evaluate_folders(dataset / "data" / "Ir", dataset / "data" / "Vis", dataset / "fused",
                                     metrics="sd,EN,mi", progress=False, log=logs.append)
    assert summary.metrics == ["EN", "MI", "SD"]  # canonical order
    assert [r["name"] for r in rows] == ["a", "b"] and summary.count == 2
    assert summary.missing == ["d"]
    assert [n for n, _ in summary.skipped] == ["c"] and "sizes differ" in summary.skipped[0][1]
    assert any("d" in line and "no fused image" in line for line in logs)
    expected = compute_metrics(_img(0), _img(10), _img(20), ["EN", "MI", "SD"])
    assert rows[0]["EN"] == pytest.approx(expected["EN"], rel=1e-12)
    sds = [r["SD"] for r in rows]
    assert summary.mean["SD"] == pytest.approx(np.mean(sds)) and summary.std["SD"] == pytest.approx(np.std(sds))
    assert final_line(summary).startswith("Scored 2 images") and "1 without a fused image, 1 skipped" in final_line(summary)


def test_report_files_have_the_toolkit_columns(dataset, tmp_path):
    rows, summary = evaluate_folders(dataset / "data" / "Ir", dataset / "data" / "Vis", dataset / "fused",
                                     progress=False, log=lambda s: None)
    write_report(tmp_path / "report", rows, summary)
    with (tmp_path / "report" / "metrics.csv").open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["name", *METRIC_NAMES] and len(table) == 3
    assert summary.non_finite["MS_SSIM"] == ["a", "b"]  # 24x32 is too small for MS-SSIM: NaN, not a crash
    with (tmp_path / "report" / "summary.csv").open() as fh:
        srows = list(csv.DictReader(fh))
    assert [r["metric"] for r in srows] == METRIC_NAMES
    assert {r["metric"]: r["better"] for r in srows}["Nabf"] == "lower"
    assert float(srows[METRIC_NAMES.index("EN")]["mean"]) == pytest.approx(summary.mean["EN"])
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "| CE | ↓ |" in md and "| SSIM | ↑ |" in md


def test_constant_fused_image_gives_nan_not_a_crash(tmp_path):
    _save(tmp_path / "Ir" / "x.png", _img(1))
    _save(tmp_path / "Vis" / "x.png", _img(2))
    _save(tmp_path / "F" / "x.png", np.full((H, W), 77, np.uint8))
    rows, summary = evaluate_folders(tmp_path / "Ir", tmp_path / "Vis", tmp_path / "F",
                                     progress=False, log=lambda s: None)
    assert summary.count == 1
    for m in ("QNCIE", "Qcb", "CC"):
        assert math.isnan(rows[0][m]) and "x" in summary.non_finite[m]
    assert rows[0]["SD"] == 0.0 and rows[0]["EN"] == pytest.approx(-math.log2(1 + 1e-7))


def test_format_summary_and_metric_names(dataset):
    _, summary = evaluate_folders(dataset / "data" / "Ir", dataset / "data" / "Vis", dataset / "fused",
                                  metrics=["MSE", "EN"], progress=False, log=lambda s: None)
    line = format_summary(summary, "line")
    assert line.startswith("2 images: EN↑ ") and "MSE↓" in line
    assert parse_metric_list("ms-ssim, qabf") == ["Qabf", "MS_SSIM"]
    with pytest.raises(MetricNameError, match="unknown metric 'FOO'"):
        parse_metric_list("EN,FOO")
    assert best_method({"x": 0.2, "y": 0.1}, "MSE") == ["y"] and best_method({"x": 0.2, "y": 0.1}, "EN") == ["x"]


def test_read_gray_uses_pillow_luma(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (200, 100, 50)
    rgb[1, 1] = (90, 90, 90)
    _save(tmp_path / "c.png", rgb)
    g = read_gray(tmp_path / "c.png")
    assert g[0, 0] == (19595 * 200 + 38470 * 100 + 7471 * 50 + 32768) >> 16 and g[1, 1] == 90
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(MetricImageError, match="bad.png"):
        read_gray(tmp_path / "bad.png")


def _cli(repo_root):
    spec = importlib.util.spec_from_file_location("evaluate_cli", repo_root / "scripts" / "evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_single_method(repo_root, dataset, capsys):
    out = dataset / "rep"
    rc = _cli(repo_root).main(["--img_dir", str(dataset / "data"), "--fused_dir", str(dataset / "fused"),
                               "--out", str(out), "--metrics", "EN,SD", "--no_progress", "--device", "cpu"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "| EN | ↑ |" in text and text.strip().splitlines()[-1].startswith("Scored 2 images")
    assert (out / "metrics.csv").read_text().splitlines()[0] == "name,EN,SD"
    assert (out / "summary.csv").exists() and (out / "summary.md").exists()


def test_cli_compares_methods_with_bold_best_and_plots(repo_root, dataset, capsys):
    # Method "vis" returns the visible image; "noise" an unrelated image: vis has the lower MSE.
    for name in "abc":
        _save(dataset / "m_vis" / f"{name}.png", read_gray(dataset / "data" / "Vis" / f"{name}.png"))
        _save(dataset / "m_noise" / f"{name}.png", _img(40 + ord(name)))
    out = dataset / "cmp"
    rc = _cli(repo_root).main(["--img_dir", str(dataset / "data"), "--methods", f"vis={dataset / 'm_vis'}",
                               "--fused_dir", str(dataset / "m_noise"), "--out", str(out),
                               "--metrics", "MSE,EN,SD", "--no_progress", "--device", "cpu"])
    text = capsys.readouterr().out
    assert rc == 0
    md = (out / "comparison.md").read_text()
    assert md.splitlines()[0] == "| metric | better | vis | m_noise |"
    mse_row = next(line for line in md.splitlines() if line.startswith("| MSE |"))
    cells = [c.strip() for c in mse_row.strip("|").split("|")]
    assert cells[2].startswith("**") and not cells[3].startswith("**")
    assert "Images scored per method: vis: 3, m_noise: 3." in md and md.splitlines()[0] in text
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["gradient.png", "information.png", "structure.png"]
    assert (out / "vis" / "metrics.csv").exists() and (out / "m_noise" / "summary.csv").exists()


def test_cli_errors_are_one_line(repo_root, dataset, capsys):
    cli = _cli(repo_root)
    assert cli.main(["--img_dir", str(dataset / "data"), "--fused_dir", str(dataset / "nope")]) == 2
    assert "nope: no such directory" in capsys.readouterr().err
    assert cli.main(["--img_dir", str(dataset / "data"), "--fused_dir", str(dataset / "fused"), "--metrics", "XX"]) == 2
    assert "unknown metric 'XX'" in capsys.readouterr().err


def test_compute_metrics_warns_on_constant_image_and_rejects_size_mismatch():
    a, b = _img(1), _img(2)
    with pytest.warns(RuntimeWarning, match=r"CC \(constant image\)"):
        out = compute_metrics(a, b, np.full((H, W), 5, np.uint8), ["CC", "EN"])
    assert math.isnan(out["CC"]) and list(out) == ["EN", "CC"]
    with pytest.raises(ValueError, match="differ in size"):
        compute_metrics(a, b, _img(3, H, W + 1), ["EN"])
