"""Every folder under the reference data's fixtures/ is a kind scripts/check_fixture.py supports, and every
folder of a kind passes (the canonical folders are also checked in detail by each kind's own tests)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance import KINDS, FixtureError, detect_kind
from scripts.check_fixture import main as check_fixture

CANONICAL = {"sage_release", "xdecoder_tiny", "sgafusion_release"}  # checked by their own, more detailed tests


def fixture_folders(shared: Path):
    return sorted(p for p in (shared / "fixtures").iterdir() if p.is_dir())


def test_every_fixture_folder_is_a_supported_kind(shared_dir):
    folders = fixture_folders(shared_dir)
    kinds = {f.name: detect_kind(f) for f in folders}
    assert set(kinds.values()) <= set(KINDS)
    assert {"sage_release", "xdecoder_tiny", "sgafusion_release"} <= set(kinds.values())


def test_other_folders_of_a_kind_pass(shared_dir, capsys, single_thread):
    for folder in fixture_folders(shared_dir):
        if folder.name in CANONICAL:
            continue
        assert check_fixture([str(folder)]) == 0, capsys.readouterr().out[-3000:]
        assert capsys.readouterr().out.strip().splitlines()[-1].endswith("PASS")


def test_an_unknown_folder_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(FixtureError):
        detect_kind(tmp_path)
    assert check_fixture([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a fixture of a supported kind" in err[0]
