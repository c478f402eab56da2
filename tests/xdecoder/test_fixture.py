"""The native X-Decoder equals X-Decoder's own code on the reference fixture (through check_fixture.py)."""
from conformance import detect_kind
from conformance.xdecoder_tiny import check
from scripts.check_fixture import main as check_fixture


def test_xdecoder_tiny_fixture_passes(shared_dir, single_thread, capsys):
    folder = shared_dir / "fixtures" / "xdecoder_tiny"
    assert detect_kind(folder) == "xdecoder_tiny"
    rc = check_fixture([str(folder)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, "\n".join(line for line in lines if line.startswith("FAIL"))
    assert lines[-1].startswith("fixture xdecoder_tiny:") and lines[-1].endswith("PASS")
    names = {line.split()[1] for line in lines[:-1]}
    assert {"token_ids", "text_embeddings", "sem_seg", "loss", "grad_image", "extra.sem_seg"} <= names
    assert len(lines) >= 36


def test_checker_notices_a_wrong_weight(shared_dir, tmp_path, single_thread):
    import shutil

    import torch

    src = shared_dir / "fixtures" / "xdecoder_tiny"
    for name in ("config.json", "io.pt"):
        shutil.copy(src / name, tmp_path / name)
    blob = torch.load(src / "model.pt", weights_only=True)
    key = "sem_seg_head.pixel_decoder.layer_4.norm.weight"
    blob["state_dict"][key] = blob["state_dict"][key] * 1.05
    torch.save(blob, tmp_path / "model.pt")
    results = {r.name: r for r in check(tmp_path)}
    assert results["backbone.res5"].passed and results["text_embeddings"].passed
    assert not results["multi_scale_features[0]"].passed and not results["sem_seg"].passed
