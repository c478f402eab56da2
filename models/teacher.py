"""The SAGE teacher: an image U-net guided by SAM segment images through SPA modules (SPEC-SAGE.md section 3).

2,787,043 parameters with 4 mask channels. Only used in training; the student is distilled from
its output F and from five 32-channel taps on its SPA outputs.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import SpatialTransformer
from .inference import pad_to_multiple

SLOPE = 0.01  # every LeakyReLU of the teacher

# The release reports 2,787,043 parameters for K = 4. Its network also holds an unused
# Conv(256->64) (`compress_and_upsample`, 147,520) and its gradient loss's two 3x3 Sobel kernels
# as nn.Parameters (18); this module leaves both out, so it counts 2,639,505.
RELEASE_PARAMETER_COUNT = 2_787_043
RELEASE_UNUSED_PARAMETERS = (256 * 9 + 1) * 64 + 2 * 9


def conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    """Conv3x3, padding 1, with bias."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=True)


def conv_lrelu(*widths: int) -> nn.Sequential:
    """Conv3x3 -> LeakyReLU for each consecutive pair of widths, e.g. (2, 16, 32) gives two of them."""
    layers: List[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [conv(a, b), nn.LeakyReLU(SLOPE)]
    return nn.Sequential(*layers)


def up2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling with align_corners=True, as the release does between SPA levels."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class SPA(nn.Module):
    """Semantic Persistent Attention step P(img, vm, im) of SPEC-SAGE.md section 3.

    Args:
        channels: width of the image and mask streams (64).
        pool: max-pool factor before the transformers (4).
        attn_impl: "sdpa" or "explicit" (models/attention.py).

    forward(img, vm, im), each (B, 64, H, W) with H, W divisible by `pool`, returns
    (out (B, 256, H, W), vm' (B, 64, H, W), im' (B, 64, H, W)).
    """

    def __init__(self, channels: int = 64, pool: int = 4, attn_impl: str = "sdpa"):
        super().__init__()
        c = channels
        self.pool = nn.MaxPool2d(pool)
        self.T_img1 = SpatialTransformer(c, attn_impl=attn_impl)
        self.T_vi1 = SpatialTransformer(c, attn_impl=attn_impl)
        self.T_ir1 = SpatialTransformer(c, attn_impl=attn_impl)
        self.T_mask2 = SpatialTransformer(c, attn_impl=attn_impl)
        self.T_img2 = SpatialTransformer(c, attn_impl=attn_impl)
        self.mid_ir = conv_lrelu(2 * c, c)
        self.mid_vi = conv_lrelu(2 * c, c)
        self.mid_mask = conv_lrelu(2 * c, c)
        self.mid_img = conv_lrelu(2 * c, c)

    def forward(self, img: torch.Tensor, vm: torch.Tensor, im: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = img.shape[-2:]
        # The release pools the inputs and their copies img1, vm1, im1 alike: one pooled tensor each.
        img1, vm1, im1 = self.pool(img), self.pool(vm), self.pool(im)
        img_t, ctx = self.T_img1(img1)
        vm_t, _ = self.T_vi1(vm1, ctx)
        im_t, _ = self.T_ir1(im1, ctx)
        im_m = self.mid_ir(torch.cat([im_t, im1], 1)) + im_t
        vm_m = self.mid_vi(torch.cat([vm_t, vm1], 1)) + vm_t
        mask = self.mid_mask(torch.cat([im_m, vm_m], 1)) + im_m + vm_m + vm_t + im_t
        img_m = self.mid_img(torch.cat([img_t, img1], 1)) + img_t
        mask2, ctx2 = self.T_mask2(mask, ctx)
        img2, _ = self.T_img2(img_m, ctx2)
        out = torch.cat([img2, img1, img_m, mask2], 1)

        def back(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        return back(out), back(vm_m), back(im_m)


class Teacher(nn.Module):
    """SAGE teacher network.

    Args:
        mask_channels: K, the number of segment images per modality (4).
        attn_impl: "sdpa" (memory-efficient kernels; default) or "explicit" (the release's
            softmax(QK^T)V); switch later with models.attention.set_attn_impl.
        vi_mask_activation: False (official) leaves encoder_mask2_vi without its LeakyReLU, as the
            release does; True adds it (no parameters, so the count is unchanged).

    forward(y, ir, vm, im) with y, ir (B, 1, H, W) and vm, im (B, K, H, W) segment images returns
    (fused (B, 1, H, W) from a LeakyReLU, [t1, t2, t3, t4, t5]) with 32-channel taps of the
    student's sizes: t1, t5 (H, W); t2, t4 (H//2, W//2); t3 (H//4, W//4).
    Any H, W works: inputs are padded at the bottom/right to a multiple of 16 (reflect, or replicate
    for tiny images), then F is cropped to (H, W) and every tap to the top-left corner of its
    student size. For H, W divisible by 16 nothing is padded or cropped (the release's computation).
    """

    multiple = 16  # two x2 poolings, then SPA pools the 1/4 level by 4 more

    def __init__(self, mask_channels: int = 4, attn_impl: str = "sdpa", vi_mask_activation: bool = False):
        super().__init__()
        k = mask_channels
        self.encoder_img1 = conv_lrelu(2, 16, 32)
        self.encoder_img2 = conv_lrelu(32, 64)
        self.encoder_mask1_vi = conv_lrelu(k, 16, 32)
        self.encoder_mask1_ir = conv_lrelu(k, 16, 32)
        self.encoder_mask2_ir = conv_lrelu(32, 64)
        # Quirk of the release (teacher.vi_mask_activation): no activation after encoder_mask2_vi.
        self.encoder_mask2_vi = conv_lrelu(32, 64) if vi_mask_activation else nn.Sequential(conv(32, 64))
        self.spa = SPA(64, attn_impl=attn_impl)  # one set of weights for all five levels
        self.down1 = nn.Sequential(conv(256, 64), nn.MaxPool2d(2), nn.LeakyReLU(SLOPE))
        self.down2 = nn.Sequential(conv(256, 64), nn.MaxPool2d(2), nn.LeakyReLU(SLOPE))
        self.pool = nn.MaxPool2d(2)
        self.merge3 = conv_lrelu(256, 64)
        self.merge4 = conv_lrelu(256, 64)
        self.decoder1 = conv_lrelu(320, 256, 128, 64)
        self.decoder2 = conv_lrelu(96, 64, 32, 16, 1)
        self.taps = nn.ModuleList(nn.Conv2d(256, 32, 1) for _ in range(5))
        # Inert members kept so the parameter count is the release's 2,787,043 (SPEC-SAGE.md): the release
        # declares a Conv(256->64) `compress_and_upsample` that forward never calls (147,520 parameters) and
        # holds its gradient loss's two 3x3 Sobel kernels (18) as frozen parameters. Neither affects the output.
        self.compress_and_upsample = conv(256, 64)
        self.compress_and_upsample.requires_grad_(False)
        self.sobel = nn.Parameter(torch.tensor([[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                                                [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]]),
                                  requires_grad=False)

    def forward(self, y: torch.Tensor, ir: torch.Tensor, vm: torch.Tensor, im: torch.Tensor
                ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        b, _, h, w = y.shape
        for name, t in (("ir", ir), ("vm", vm), ("im", im)):
            assert t.shape[0] == b and t.shape[-2:] == (h, w), (name, tuple(t.shape), tuple(y.shape))
        y, ir, vm, im = (pad_to_multiple(t, self.multiple)[0] for t in (y, ir, vm, im))
        fused, taps = self.forward_padded(y, ir, vm, im)
        sizes = [(h, w), (h // 2, w // 2), (h // 4, w // 4), (h // 2, w // 2), (h, w)]
        taps = [t[..., :th, :tw] for t, (th, tw) in zip(taps, sizes)]
        return fused[..., :h, :w], taps

    def forward_padded(self, y: torch.Tensor, ir: torch.Tensor, vm: torch.Tensor, im: torch.Tensor
                       ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The release's forward; H, W must be divisible by 16. Taps at full, 1/2, 1/4, 1/2, full size."""
        img0 = self.encoder_img1(torch.cat([y, ir], 1))  # (B, 32, H, W)
        img = skip0 = self.encoder_img2(img0)  # (B, 64, H, W)
        vm = self.encoder_mask2_vi(self.encoder_mask1_vi(vm))
        im = self.encoder_mask2_ir(self.encoder_mask1_ir(im))

        out1, vm, im = self.spa(img, vm, im)  # (B, 256, H, W)
        img, vm, im = self.down1(out1), self.pool(vm), self.pool(im)
        out2, vm, im = self.spa(img, vm, im)  # 1/2
        img, vm, im = self.down2(out2), self.pool(vm), self.pool(im)
        out3, vm, im = self.spa(img, vm, im)  # 1/4
        img = F.interpolate(out3, size=out2.shape[-2:], mode="bilinear", align_corners=True) + out2
        img, vm, im = self.merge3(img), up2(vm), up2(im)
        out4, vm, im = self.spa(img, vm, im)  # 1/2
        img, vm, im = self.merge4(up2(out4) + out1), up2(vm), up2(im)
        out5, _, _ = self.spa(img, vm, im)  # full size

        x = self.decoder1(torch.cat([out5, skip0], 1))  # (B, 64, H, W)
        fused = self.decoder2(torch.cat([x, img0], 1))  # (B, 1, H, W)
        taps = [tap(o) for tap, o in zip(self.taps, (out1, out2, out3, out4, out5))]
        return fused, taps
