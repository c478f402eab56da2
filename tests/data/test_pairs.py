"""Finding the IR/VIS folders and pairing files by base name."""
from __future__ import annotations

import pytest

from data.pairs import IR_DIR_NAMES, VIS_DIR_NAMES, PairingError, find_subdir, list_images, pair_folders, resolve_dirs


def touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")


@pytest.mark.parametrize("ir_name", ["Ir", "Inf", "ir", "IR"])
@pytest.mark.parametrize("vis_name", ["Vis", "Vi", "vi", "VIS"])
def test_folder_aliases(tmp_path, ir_name, vis_name):
    (tmp_path / ir_name).mkdir()
    (tmp_path / vis_name).mkdir()
    (tmp_path / "Label").mkdir()
    ir, vis = resolve_dirs(str(tmp_path))
    assert (ir, vis) == (tmp_path / ir_name, tmp_path / vis_name)


def test_alias_lists_are_the_documented_ones():
    assert IR_DIR_NAMES == ("Ir", "Inf", "ir", "IR")
    assert VIS_DIR_NAMES == ("Vis", "Vi", "vi", "VIS")


def test_alias_preference_order(tmp_path):
    for n in ("IR", "Inf", "vi", "Vis"):
        (tmp_path / n).mkdir()
    assert resolve_dirs(str(tmp_path)) == (tmp_path / "Inf", tmp_path / "Vis")


def test_missing_folders_are_one_line_errors(tmp_path):
    (tmp_path / "Ir").mkdir()
    with pytest.raises(PairingError, match=r"no visible folder \(looked for Vis, Vi, vi, VIS\)$") as exc:
        resolve_dirs(str(tmp_path))
    assert str(tmp_path) in str(exc.value)
    with pytest.raises(PairingError, match="no such directory"):
        resolve_dirs(str(tmp_path / "absent"))
    with pytest.raises(PairingError, match="no such directory"):
        resolve_dirs(ir_dir=str(tmp_path / "Ir"), vis_dir=str(tmp_path / "nothing"))
    with pytest.raises(PairingError, match="give --img_dir, or both --ir_dir and --vis_dir"):
        resolve_dirs(ir_dir=str(tmp_path / "Ir"))
    with pytest.raises(PairingError, match="no infrared folder"):
        find_subdir(tmp_path / "Ir", IR_DIR_NAMES, "infrared")


def test_explicit_folders_override(tmp_path):
    (tmp_path / "thermal").mkdir()
    (tmp_path / "rgb").mkdir()
    assert resolve_dirs(ir_dir=str(tmp_path / "thermal"), vis_dir=str(tmp_path / "rgb")) == (
        tmp_path / "thermal", tmp_path / "rgb")


def test_pairs_across_extensions_and_orphans(tmp_path):
    touch(tmp_path / "Ir", "a.png", "b.bmp", "c.tif", "d.JPG", "only_ir.png", "notes.txt", ".hidden.png")
    touch(tmp_path / "Vis", "a.jpg", "b.jpeg", "c.tiff", "d.png", "only_vis.bmp", "e.gif")
    (tmp_path / "Ir" / "sub.png").mkdir()  # a folder with an image-like name is not an image
    p = pair_folders(tmp_path / "Ir", tmp_path / "Vis")
    assert [(n, i.name, v.name) for n, i, v in p.pairs] == [
        ("a", "a.png", "a.jpg"), ("b", "b.bmp", "b.jpeg"), ("c", "c.tif", "c.tiff"), ("d", "d.JPG", "d.png")]
    assert [x.name for x in p.ir_only] == ["only_ir.png"]
    assert [x.name for x in p.vis_only] == ["only_vis.bmp"]


def test_pairs_are_sorted_by_name(tmp_path):
    names = ["10", "2", "b", "A", "01"]
    touch(tmp_path / "Ir", *(f"{n}.png" for n in names))
    touch(tmp_path / "Vis", *(f"{n}.png" for n in names))
    assert [n for n, _, _ in pair_folders(tmp_path / "Ir", tmp_path / "Vis").pairs] == sorted(names)


def test_duplicate_base_name_takes_first_sorted(tmp_path):
    touch(tmp_path, "x.png", "x.jpg")
    assert list_images(tmp_path) == {"x": tmp_path / "x.jpg"}


def test_duplicates_are_reported(tmp_path):
    touch(tmp_path / "Ir", "a.png", "a.tif", "b.png")
    touch(tmp_path / "Vis", "a.png", "b.png", "b.JPG", "b.bmp")
    p = pair_folders(tmp_path / "Ir", tmp_path / "Vis")
    assert [(n, i.name, v.name) for n, i, v in p.pairs] == [("a", "a.png", "a.png"), ("b", "b.png", "b.JPG")]
    assert [str(d.relative_to(tmp_path)) for d in p.duplicates] == ["Ir/a.tif", "Vis/b.bmp", "Vis/b.png"]


def test_missing_folder_message_lists_what_was_found_and_the_flags(tmp_path):
    for n in ("thermal", "Vis", "Label"):
        (tmp_path / n).mkdir()
    (tmp_path / "Ir.png").write_bytes(b"x")  # a file, not a folder: not listed
    with pytest.raises(PairingError) as exc:
        resolve_dirs(str(tmp_path))
    assert str(exc.value) == (f"{tmp_path} (folders: Label, Vis, thermal; name the folders with --ir_dir/--vis_dir): "
                              "no infrared folder (looked for Ir, Inf, ir, IR)")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PairingError) as exc:
        resolve_dirs(str(empty))
    assert str(exc.value) == (f"{empty} (no folders in it; name the folders with --ir_dir/--vis_dir): "
                              "no infrared folder (looked for Ir, Inf, ir, IR)")
    with pytest.raises(PairingError) as exc:  # other callers (training data) have no such flags: no hint
        find_subdir(tmp_path, ("Labels", "labels"), "label")
    assert str(exc.value) == (f"{tmp_path} (folders: Label, Vis, empty, thermal): "
                              "no label folder (looked for Labels, labels)")


def test_no_pairs_message_counts_each_side(tmp_path):
    touch(tmp_path / "Ir", "a.png", "a.tif", "b.png")
    touch(tmp_path / "Vis", "c.jpg")
    (tmp_path / "none").mkdir()
    p = pair_folders(tmp_path / "Ir", tmp_path / "Vis")
    assert (p.ir_count, p.vis_count, p.pairs) == (3, 1, [])
    assert p.no_pairs_message(tmp_path / "Ir", tmp_path / "Vis") == (
        f"no IR/VIS pairs with matching names in {tmp_path / 'Ir'} (3 image files, e.g. a.png) and "
        f"{tmp_path / 'Vis'} (1 image file, e.g. c.jpg); a pair is two files with the same base name "
        "(a.png pairs with a.jpg)")
    q = pair_folders(tmp_path / "Ir", tmp_path / "none")
    assert q.no_pairs_message("I", "V") == ("no IR/VIS pairs with matching names in I (3 image files, e.g. a.png) "
                                            "and V (no image files: .png .jpg .jpeg .bmp .tif .tiff)")
