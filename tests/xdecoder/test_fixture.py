"""The native X-Decoder equals X-Decoder's own code on the reference fixture (through conformance)."""
from conformance import detect_kind
from conformance.xdecoder_tiny import check


def test_xdecoder_tiny_fixture_passes(shared_dir, single_thread):
    folder = shared_dir / "fixtures" / "xdecoder_tiny"
    assert detect_kind(folder) == "xdecoder_tiny"
    results = list(check(folder))
    failed = [r.line() for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    names = {r.name for r in results}
    assert {"token_ids", "text_embeddings", "sem_seg", "loss", "grad_image", "extra.sem_seg"} <= names
    assert len(results) >= 35
