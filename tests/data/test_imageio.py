"""Reading IR/VIS files like the release (SPEC-SAGE.md section 1), other bit depths, bad files, atomic writes."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.imageio import ImageReadError, image_size, read_ir, read_raw, read_vis, write_image_atomic

RNG = np.random.default_rng(0)


def write(path, img):
    assert cv2.imwrite(str(path), img)
    return path


def release_vis(path):
    """What the release computes: cv2.imread (BGR) -> COLOR_BGR2YCrCb -> /255, as (3, H, W)."""
    return (cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2YCrCb) / 255.0).astype(np.float32).transpose(2, 0, 1)


def release_ir(path):
    return (cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY) / 255.0).astype(np.float32)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_8bit_matches_the_release_exactly(tmp_path, ext):
    vis = write(tmp_path / f"vis{ext}", RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    ir_colour = write(tmp_path / f"irc{ext}", RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    ir_gray = write(tmp_path / f"irg{ext}", RNG.integers(0, 256, (9, 11), dtype=np.uint8))
    ycrcb, colour = read_vis(vis)
    assert colour and ycrcb.dtype == np.float32 and ycrcb.shape == (3, 9, 11)
    np.testing.assert_array_equal(ycrcb, release_vis(vis))
    for p in (ir_colour, ir_gray):
        ir = read_ir(p)
        assert ir.dtype == np.float32 and ir.shape == (9, 11)
        np.testing.assert_array_equal(ir, release_ir(p))


def test_jpeg_reads_like_the_release(tmp_path):
    p = write(tmp_path / "v.jpg", RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    np.testing.assert_array_equal(read_vis(p)[0], release_vis(p))


def test_grayscale_vis_has_neutral_chroma(tmp_path):
    img = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    ycrcb, colour = read_vis(write(tmp_path / "g.png", img))
    assert not colour
    np.testing.assert_array_equal(ycrcb[0], img / np.float32(255))
    assert (ycrcb[1:] == 0.5).all()


def test_16bit_is_scaled_by_65535(tmp_path):
    gray8 = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    bgr8 = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    ir = read_ir(write(tmp_path / "ir16.png", gray8.astype(np.uint16) * 257))
    np.testing.assert_allclose(ir, gray8 / 255.0, atol=1e-6)
    fine = np.array([[0, 1000, 65535]], np.uint16)  # 16-bit precision is kept, not cut to 8 bits
    np.testing.assert_allclose(read_ir(write(tmp_path / "fine.png", fine)), fine / 65535.0, atol=1e-7)
    ycrcb16, colour = read_vis(write(tmp_path / "vis16.tif", bgr8.astype(np.uint16) * 257))
    ycrcb8, _ = read_vis(write(tmp_path / "vis8.png", bgr8))
    assert colour
    np.testing.assert_allclose(ycrcb16[0], ycrcb8[0], atol=0.5 / 255 + 1e-6)  # the 8-bit path rounds Y
    # OpenCV's 8-bit chroma is centred on 128/255, its float chroma on 0.5 (and the 8-bit path rounds)
    np.testing.assert_allclose(ycrcb16[1:], ycrcb8[1:], atol=1.5 / 255)
    grey16, _ = read_vis(write(tmp_path / "grey16.png", np.full((2, 2, 3), 30000, np.uint16)))
    np.testing.assert_allclose(grey16, [[[30000 / 65535] * 2] * 2, [[0.5] * 2] * 2, [[0.5] * 2] * 2], atol=1e-6)
    y = (0.299 * bgr8[..., 2] + 0.587 * bgr8[..., 1] + 0.114 * bgr8[..., 0]) / 255.0
    np.testing.assert_allclose(ycrcb16[0], y, atol=1e-4)
    irc = read_ir(write(tmp_path / "irc16.png", bgr8.astype(np.uint16) * 257))
    np.testing.assert_allclose(irc, y, atol=1e-4)


def test_alpha_and_single_channel_layouts(tmp_path):
    bgra = RNG.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    p = write(tmp_path / "a.png", bgra)
    np.testing.assert_array_equal(read_raw(p), bgra[:, :, :3])
    np.testing.assert_array_equal(read_vis(p)[0], release_vis(write(tmp_path / "b.png", bgra[:, :, :3])))
    assert image_size(p) == (4, 5)


def test_exif_orientation_is_applied_like_the_release(tmp_path):
    from PIL import Image
    img = np.zeros((20, 40, 3), np.uint8)
    img[:5, :10] = 255
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    pil.save(path, exif=exif.tobytes(), quality=95)
    ycrcb, _ = read_vis(path)
    assert ycrcb.shape == (3, 40, 20)
    np.testing.assert_array_equal(ycrcb, release_vis(path))
    np.testing.assert_array_equal(read_ir(path), release_ir(path))
    assert image_size(path) == (40, 20)


def test_bad_files_are_one_line_errors(tmp_path):
    cases = {
        "missing.png": None,
        "empty.png": b"",
        "garbage.png": b"\x89PNG\r\n\x1a\n" + bytes(range(200)),
        "text.jpg": b"hello, this is not an image\n",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    float_tif = tmp_path / "float.tiff"
    write(float_tif, np.zeros((4, 4), np.float32))
    expect = {"missing.png": "cannot read file", "empty.png": "empty file",
              "garbage.png": "not a readable image (corrupt or unsupported format)",
              "text.jpg": "not a readable image (corrupt or unsupported format)",
              "float.tiff": "unsupported pixel type float32 (expected 8- or 16-bit)"}
    for name, reason in expect.items():
        for reader in (read_ir, read_vis):
            with pytest.raises(ImageReadError) as exc:
                reader(tmp_path / name)
            msg = str(exc.value)
            assert "\n" not in msg and msg.startswith(f"{tmp_path / name}: ") and reason in msg, msg


def test_truncated_png_is_an_error(tmp_path):
    ok, enc = cv2.imencode(".png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    p = tmp_path / "cut.png"
    p.write_bytes(enc.tobytes()[: len(enc) // 2])
    with pytest.raises(ImageReadError, match="not a readable image"):
        read_vis(p)


def test_write_image_atomic_round_trip(tmp_path):
    img = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = tmp_path / "deep" / "dir" / "x.png"
    write_image_atomic(out, img)
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), img)
    gray = img[:, :, 0].copy()
    write_image_atomic(out, gray)  # replaces an existing file
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), gray)
    assert sorted(os.listdir(out.parent)) == ["x.png"]


def test_write_image_atomic_never_leaves_a_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "y.png"
    old = RNG.integers(0, 256, (5, 5), dtype=np.uint8)
    write_image_atomic(out, old)
    seen = {}
    real_write_bytes = Path.write_bytes

    def failing_write_bytes(self, data):
        real_write_bytes(self, data[: len(data) // 2])  # half the bytes land in the temp file, then the disk "fills"
        seen["tmp"] = sorted(os.listdir(tmp_path))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", failing_write_bytes)
    with pytest.raises(OSError, match="No space left"):
        write_image_atomic(out, RNG.integers(0, 256, (5, 5), dtype=np.uint8))
    assert len(seen["tmp"]) == 2 and any(n.startswith(".y.png.") and n.endswith(".tmp") for n in seen["tmp"])
    assert sorted(os.listdir(tmp_path)) == ["y.png"]  # temp file removed
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), old)  # old output intact


def test_written_files_get_the_usual_permissions(tmp_path):
    """Temporary files are created 0600; the final output gets what open() would give (0666 minus umask)."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "p.png"
        write_image_atomic(out, RNG.integers(0, 256, (4, 4), dtype=np.uint8))
        assert out.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
