"""Tiled inference: the tiles cover the image exactly, and tiled output equals untiled output."""
from __future__ import annotations

import pytest
import torch

from models.engines import build_engine
from models.inference import DEFAULT_OVERLAP, fuse_image, fuse_padded, fuse_tiled, tile_spans

from tests.models.test_engines import grey_diff, random_student


@pytest.mark.parametrize("size,tile,overlap", [(403, 160, 64), (1000, 256, 64), (161, 160, 64), (100, 160, 64),
                                               (517, 128, 32), (4096, 1024, 64), (9, 8, 0)])
def test_tile_spans_partition_the_axis(size, tile, overlap):
    spans = tile_spans(size, tile, overlap)
    assert spans[0][0] == 0 and spans[0][2] == 0 and spans[-1][1] == size and spans[-1][3] == size
    for (r0, r1, k0, k1), nxt in zip(spans, spans[1:] + [None]):
        assert r0 % 4 == 0 and r1 - r0 <= tile  # on the pooling grid, bounded size
        assert r0 <= k0 < k1 <= r1  # the kept part lies inside what was read
        if nxt is not None:
            assert nxt[2] == k1  # kept parts are contiguous
            assert r1 - nxt[0] >= overlap - 4  # neighbours really overlap
            assert k1 - nxt[0] >= (overlap - 4) // 2 and r1 - k1 >= (overlap - 4) // 2  # context both sides


def test_tile_spans_reject_impossible_settings():
    with pytest.raises(ValueError, match="overlap"):
        tile_spans(1000, 64, 64)
    with pytest.raises(ValueError, match="at least"):
        tile_spans(1000, 4, 0)


@pytest.mark.parametrize("engine_name", ["fast", "onnx"])
def test_tiled_equals_untiled(engine_name):
    model = random_student(1)
    engine = build_engine(engine_name, model)
    g = torch.Generator().manual_seed(4)
    # smooth-ish content plus noise, an odd size, and a batch of two
    low = torch.rand(2, 2, 12, 14, generator=g)
    x = torch.nn.functional.interpolate(low, size=(173, 219), mode="bilinear") + 0.1 * torch.rand(2, 2, 173, 219, generator=g)
    y, ir = x[:, :1].clamp(0, 1), x[:, 1:].clamp(0, 1)
    full = fuse_padded(engine, y, ir)
    tiled = fuse_tiled(engine, y, ir, tile=128, overlap=DEFAULT_OVERLAP)
    assert tiled.shape == full.shape == (2, 1, 173, 219)
    assert (tiled - full).abs().max() * 255 < 0.01  # far below one grey level: no seams
    # too little overlap does show: the test can fail
    assert (fuse_tiled(engine, y, ir, tile=64, overlap=0) - full).abs().max() * 255 > 1


def test_tiled_equals_untiled_on_a_real_crop(shared_dir):

    from data.imageio import read_ir, read_vis
    from models.checkpoint import load_student
    d = shared_dir / "sage_reference" / "data" / "test"
    vis, _ = read_vis(d / "Vis" / "00003.png")
    ir = read_ir(d / "Ir" / "00003.png")
    y = torch.from_numpy(vis[None, 0:1, :203, :317].copy())
    irt = torch.from_numpy(ir[None, None, :203, :317].copy())
    engine = build_engine("fast", load_student(shared_dir / "sage_reference" / "checkpoints" / "checkpoints.pt"))
    full, tiled = fuse_padded(engine, y, irt), fuse_tiled(engine, y, irt, tile=160, overlap=64)
    assert grey_diff(full, tiled, torch.from_numpy(vis[1:, :203, :317].copy())) <= 1
    assert (full - tiled).abs().max() < 1e-4


def test_fuse_image_tiles_only_when_asked_or_large():
    calls = []

    def fake(y, ir):
        calls.append(tuple(y.shape[-2:]))
        return y * 0 + 0.5

    y = torch.zeros(1, 1, 300, 200)
    assert fuse_image(fake, y, y).shape == (1, 1, 300, 200) and calls == [(300, 200)]
    calls.clear()
    fuse_image(fake, y, y, tile=128, overlap=64)
    assert len(calls) > 1 and max(max(c) for c in calls) <= 128
    calls.clear()
    fuse_image(fake, y, y, tile_above=100 * 100, auto_tile=160)
    assert len(calls) > 1 and max(max(c) for c in calls) <= 160
