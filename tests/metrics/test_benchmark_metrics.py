"""scripts/benchmark_metrics.py: the per-metric table and the speed-up against IVIF_ZOO's time."""
from __future__ import annotations

import importlib.util
import re


def _script(repo_root):
    spec = importlib.util.spec_from_file_location("benchmark_metrics", repo_root / "scripts" / "benchmark_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_speedup_text(repo_root):
    bm = _script(repo_root)
    assert bm.speedup(0.5, 18.6) == "37.2x faster than IVIF_ZOO (18.6 s)"
    assert bm.speedup(0.5, 0) == ""
    assert bm.IVIF_ZOO_SECONDS == 18.6  # the known side-by-side timing (docs/metrics.md, "Speed")


def test_prints_per_metric_table_and_ratio(repo_root, capsys):
    bm = _script(repo_root)
    rc = bm.main(["--synthetic", "640x480", "--pairs", "1", "--repeats", "1", "--metrics", "EN,SD",
                  "--ivif-zoo-seconds", "20"])
    text = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"^\| EN \| [\d.]+ \| [\d.]+ \| \d+ % \|$", text, re.M)
    assert re.search(r"^\| SD \| ", text, re.M)
    assert re.search(r"^all 2 metrics: [\d.]+ s per triple wall \(min [\d.]+, max [\d.]+\), [\d.]+ s CPU$", text, re.M)
    assert re.search(r"^speed-up: [\d.]+x faster than IVIF_ZOO \(20 s\) by wall clock, [\d.]+x by CPU time", text, re.M)
    assert "not comparable" in text  # 2 of the 21 metrics: IVIF_ZOO's time is for all of them


def test_ratio_hidden_with_zero_and_bad_size_is_one_line(repo_root, capsys):
    bm = _script(repo_root)
    assert bm.main(["--synthetic", "64x48", "--pairs", "1", "--repeats", "1", "--metrics", "SD",
                    "--no_per_metric", "--ivif-zoo-seconds", "0"]) == 0
    assert "speed-up" not in capsys.readouterr().out
    assert bm.main(["--synthetic", "64by48"]) == 2
    assert capsys.readouterr().err.strip() == "error: --synthetic 64by48: expected WxH, e.g. 640x480"
