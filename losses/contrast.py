"""CR, the SAM-feature triplet (contrastive ratio) loss of SAGE (docs/sage.md#triplet-loss).

For every segment channel m of the VIS segments (negative = Y) and of the IR segments
(negative = IR): ratio = D(out*m, ref*m) / (D(out*m, neg*m) + 1e-7), summed over channels.
Anchor = the network being trained, positive = the other network's output (a constant here),
negative = the source image.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

CONTRAST_MASK_MODES = ("image", "binary")

# extractor(x) with x (N, 1, H, W) -> sequence of feature maps (N, C_l, h_l, w_l); for SAGE the
# outputs of the first two SAM ViT-B blocks, (N, 768, H/16, W/16) each.
FeatureExtractor = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """InstanceNorm2d without affine parameters or running statistics (PyTorch's defaults).

    Equal to nn.InstanceNorm2d(768) of the release, for any channel count. (N, C, h, w) -> same.
    """
    return F.instance_norm(x, eps=eps)


def feature_distance(fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor]) -> torch.Tensor:
    """D = sum over levels of ||IN(fa_l) - IN(fb_l)||_2, the Frobenius norm over the whole tensor.

    Args:
        fa, fb: sequences of feature maps (N, C_l, h_l, w_l), pairwise of equal shape.
    Returns:
        scalar tensor (one norm over the whole batch, not a per-sample mean).
    """
    assert len(fa) == len(fb), (len(fa), len(fb))
    total = fa[0].new_zeros(())
    for x, y in zip(fa, fb):
        assert x.shape == y.shape, (x.shape, y.shape)
        total = total + torch.linalg.vector_norm(instance_norm(x) - instance_norm(y))
    return total


def _segment_weights(
    segments: torch.Tensor, masks: Optional[torch.Tensor], mode: str, name: str
) -> torch.Tensor:
    """The per-channel weights m that multiply the images: segment images or binary masks."""
    if mode == "image":
        return segments
    if masks is None:
        raise ValueError(f"losses/contrast.py: contrast_mask='binary' needs the binary masks '{name}_masks' (B, K, H, W)")
    if masks.shape != segments.shape:
        raise ValueError(f"losses/contrast.py: {name}_masks has shape {tuple(masks.shape)}, expected {tuple(segments.shape)}")
    return masks.to(segments.dtype)


def nonempty_channels(weights: torch.Tensor) -> List[int]:
    """Indices k of the channels of (B, K, H, W) `weights` that are not all zero over the whole batch;
    the triplet loss skips the others (the release prints "k vi_mask is zero" for each)."""
    return [k for k in range(weights.shape[1]) if bool(weights[:, k].any())]


def contrast_parts(
    out: torch.Tensor,
    y: torch.Tensor,
    ir: torch.Tensor,
    ref: torch.Tensor,
    vm: torch.Tensor,
    im: torch.Tensor,
    extractor: FeatureExtractor,
    contrast_mask: str = "image",
    vm_masks: Optional[torch.Tensor] = None,
    im_masks: Optional[torch.Tensor] = None,
    eps: float = 1e-7,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """CR(out, Y, IR, ref, VM, IM) in its two parts: the sums of the triplet ratios over the non-empty VIS
    channels and over the non-empty IR channels (the release's DH3 and DH4; CR = DH3 + DH4).

    Args:
        out: (B, 1, H, W) anchor, the output being trained (gradients flow to it).
        y, ir: (B, 1, H, W) sources, the negatives for the VIS and IR channels respectively.
        ref: (B, 1, H, W) positive, the other network's output; detached here (a constant).
        vm, im: (B, K, H, W) VIS / IR segment images (source intensity inside the segment, 0 outside).
        extractor: frozen feature extractor, see FeatureExtractor. It must treat the samples of a
            batch independently (no batch statistics; true of the SAM encoder), because anchors of
            all channels go through it in one call and positives/negatives in another.
        contrast_mask: "image" (official release): m is the segment IMAGE, so out*m also weights the
            output by the source intensity; "binary" (the paper's intent): m is the binary mask.
        vm_masks, im_masks: (B, K, H, W) binary masks, required when contrast_mask == "binary".
        eps: added to the negative distance.
    Returns:
        (vis, ir) scalar tensors; a part is 0 when all its channels are empty.

    A channel is skipped when its weight slice m = (B, 1, H, W) is all zero over the whole batch
    (as in the release). A sample whose segment is empty while others in the batch are not is not
    skipped, but it adds nothing to either distance: its anchor, positive and negative are all the
    zero image, so their features are equal.
    """
    if contrast_mask not in CONTRAST_MASK_MODES:
        raise ValueError(f"losses/contrast.py: contrast_mask must be one of {CONTRAST_MASK_MODES}, got {contrast_mask!r}")
    for name, t in (("y", y), ("ir", ir), ("ref", ref)):
        assert t.shape == out.shape, (name, t.shape, out.shape)
    for name, t in (("vm", vm), ("im", im)):
        assert t.dim() == 4 and t.shape[0] == out.shape[0] and t.shape[-2:] == out.shape[-2:], (name, t.shape)
    ref = ref.detach()
    w_vis = _segment_weights(vm, vm_masks, contrast_mask, "vm")
    w_ir = _segment_weights(im, im_masks, contrast_mask, "im")

    # (m, negative) for every non-empty channel, VIS first then IR.
    slots: List[Tuple[torch.Tensor, torch.Tensor]] = []
    for weights, negative in ((w_vis, y), (w_ir, ir)):
        slots += [(weights[:, k : k + 1], negative) for k in nonempty_channels(weights)]
    n_vis = len(nonempty_channels(w_vis))
    parts = [out.new_zeros(()), out.new_zeros(())]
    if not slots:
        return parts[0], parts[1]

    n, b = len(slots), out.shape[0]
    anchors = extractor(torch.cat([out * m for m, _ in slots]))
    with torch.no_grad():  # positives and negatives are constants; saves the extractor's graph
        consts = extractor(
            torch.cat([ref * m for m, _ in slots] + [neg.detach() * m for m, neg in slots])
        )
    for i in range(n):
        a_i = [f[i * b : (i + 1) * b] for f in anchors]
        p_i = [f[i * b : (i + 1) * b] for f in consts]
        n_i = [f[(n + i) * b : (n + i + 1) * b] for f in consts]
        part = 0 if i < n_vis else 1
        parts[part] = parts[part] + feature_distance(a_i, p_i) / (feature_distance(a_i, n_i) + eps)
    return parts[0], parts[1]


def contrast_loss(*args, **kwargs) -> torch.Tensor:
    """CR = DH3 + DH4, the sum of the triplet ratios over all non-empty segment channels (scalar tensor);
    the arguments are contrast_parts'."""
    vis, ir_part = contrast_parts(*args, **kwargs)
    return vis + ir_part
