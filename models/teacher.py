"""The SAGE teacher: an image U-net guided by SAM segment images through SPA steps, as the release has it.

Only used in training; the student is distilled from its output F and from five 32-channel taps on
its SPA outputs. Every submodule carries the release's attribute name, so the release's state_dict
(and any teacher its train.py saved) loads strictly; teacher files written by this project before it
used those names are converted by `convert_legacy_teacher_state` (docs/release_differences.md).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import SpatialTransformer
from .padding import pad_to_multiple

SLOPE = 0.01  # every LeakyReLU of the teacher

# Parameter count of the release's teacher with K = 4, as built on a CPU: it includes an unused
# Conv(256->64) `compress_and_upsample` (147,520) and its gradient loss's two 3x3 Sobel kernels held as
# frozen nn.Parameters (`grad.weightx`, `grad.weighty`, 18). Built on a GPU, the release wraps the
# kernels in `nn.Parameter(...).cuda()`, which yields plain tensors, so it registers 2,787,025 and its
# saved files lack the two `grad.*` entries. This module keeps both inert members, so it counts the
# CPU number; 2,639,505 parameters are used by forward and trained.
RELEASE_PARAMETER_COUNT = 2_787_043
RELEASE_GPU_PARAMETER_COUNT = 2_787_025
RELEASE_UNUSED_PARAMETERS = (256 * 9 + 1) * 64 + 2 * 9

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


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


class ReleaseSobel(nn.Module):
    """The release's gradient-loss Sobel kernels, held by its teacher as frozen parameters (inert here).

    Only present so that the release's state_dict (`grad.weightx`, `grad.weighty`, each (1, 1, 3, 3))
    loads strictly and the parameter count is the release's; the losses use losses/gradient.py.
    """

    def __init__(self):
        super().__init__()
        self.weightx = nn.Parameter(torch.tensor(SOBEL_X).view(1, 1, 3, 3), requires_grad=False)
        self.weighty = nn.Parameter(torch.tensor(SOBEL_Y).view(1, 1, 3, 3), requires_grad=False)


class Teacher(nn.Module):
    """SAGE teacher network with the release's module names.

    Args:
        mask_channels: K, the number of segment images per modality (4).
        attn_impl: "sdpa" (memory-efficient kernels; default) or "explicit" (the release's
            softmax(QK^T)V); switch later with models.attention.set_attn_impl.
        vi_mask_activation: False (official) leaves encoder_mask2_vi without its LeakyReLU, as the
            release does; True adds it (no parameters, so the count is unchanged).

    forward(y, ir, vm, im) with y, ir (B, 1, H, W) and vm, im (B, K, H, W) segment images returns
    (fused (B, 1, H, W) from a LeakyReLU, [t1, t2, t3, t4, t5]) with 32-channel taps of the
    student's sizes: t1, t5 (H, W); t2, t4 (H//2, W//2); t3 (H//4, W//4).
    The release runs at any H, W divisible by 4 and so does forward_release; other sizes are padded at
    the bottom/right to the next multiple of 4 (reflect, or replicate for tiny images), then F is cropped
    to (H, W) and every tap to the top-left corner of its student size. At multiples of 4 nothing is
    padded or cropped: the output is the release's.
    """

    multiple = 4  # two x2 poolings; the SPA's 4x pooling floors, as the release's does

    def __init__(self, mask_channels: int = 4, attn_impl: str = "sdpa", vi_mask_activation: bool = False):
        super().__init__()
        k, c = mask_channels, 64
        # Registration order is the release's, so state_dict keys come in the release's order too.
        self.grad = ReleaseSobel()  # inert, see ReleaseSobel
        self.encoder_img1 = conv_lrelu(2, 16, 32)
        self.encoder_img2 = conv_lrelu(32, 64)
        self.encoder_mask1_ir = conv_lrelu(k, 16, 32)
        self.encoder_mask2_ir = conv_lrelu(32, 64)
        self.encoder_mask1_vi = conv_lrelu(k, 16, 32)
        # Quirk of the release (teacher.vi_mask_activation): no activation after encoder_mask2_vi.
        self.encoder_mask2_vi = conv_lrelu(32, 64) if vi_mask_activation else nn.Sequential(conv(32, 64))
        # The SPA step's modules: one set of weights shared by all five levels (see spa()).
        self.mask_transformer1_ir = SpatialTransformer(c, attn_impl=attn_impl)
        self.mask_transformer1_vi = SpatialTransformer(c, attn_impl=attn_impl)
        self.img_transformer1 = SpatialTransformer(c, attn_impl=attn_impl)
        self.middle_img = conv_lrelu(2 * c, c)
        self.middle_mask_ir = conv_lrelu(2 * c, c)
        self.middle_mask_vi = conv_lrelu(2 * c, c)
        self.middle_mask = conv_lrelu(2 * c, c)
        self.mask_transformer2 = SpatialTransformer(c, attn_impl=attn_impl)
        self.img_transformer2 = SpatialTransformer(c, attn_impl=attn_impl)
        self.img_decoder1 = conv_lrelu(320, 256, 128, 64)
        self.img_decoder2 = conv_lrelu(96, 64, 32, 16, 1)
        # Levels 1 and 2: Conv(256->64), MaxPool(2), LeakyReLU; levels 3 and 4: Conv(256->64), LeakyReLU.
        self.compress_and_downsample_img1 = nn.Sequential(conv(256, 64), nn.MaxPool2d(2), nn.LeakyReLU(SLOPE))
        self.compress_and_downsample_img2 = nn.Sequential(conv(256, 64), nn.MaxPool2d(2), nn.LeakyReLU(SLOPE))
        self.compress_and_downsample_img3 = conv_lrelu(256, 64)
        self.compress_and_downsample_img4 = conv_lrelu(256, 64)
        # Declared by the release, never called by its forward (147,520 parameters): kept inert and frozen.
        self.compress_and_upsample = nn.Sequential(conv(256, 64), nn.LeakyReLU(SLOPE))
        self.compress_and_upsample.requires_grad_(False)
        for i in range(1, 6):  # distillation taps on out1..out5
            setattr(self, f"compress_to_32_{i}", nn.Conv2d(256, 32, 1))
        self.pool4 = nn.MaxPool2d(4)
        self.pool2 = nn.MaxPool2d(2)

    def taps(self) -> List[nn.Conv2d]:
        """The five Conv1x1(256->32) distillation taps, level 1 to 5."""
        return [getattr(self, f"compress_to_32_{i}") for i in range(1, 6)]

    def spa(self, img: torch.Tensor, vm: torch.Tensor, im: torch.Tensor
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Semantic Persistent Attention step P(img, vm, im) of the release.

        img, vm, im (B, 64, H, W) -> (out (B, 256, H, W), vm' (B, 64, H, W), im' (B, 64, H, W)). The
        inputs are max-pooled by 4 (floor) and the results resized back to (H, W) bilinearly
        (align_corners=False).
        """
        size = img.shape[-2:]
        # The release pools the inputs and their copies img1, vm1, im1 alike: one pooled tensor each.
        img1, vm1, im1 = self.pool4(img), self.pool4(vm), self.pool4(im)
        img_t, ctx = self.img_transformer1(img1)
        vm_t, _ = self.mask_transformer1_vi(vm1, ctx)
        im_t, _ = self.mask_transformer1_ir(im1, ctx)
        im_m = self.middle_mask_ir(torch.cat([im_t, im1], 1)) + im_t
        vm_m = self.middle_mask_vi(torch.cat([vm_t, vm1], 1)) + vm_t
        mask = self.middle_mask(torch.cat([im_m, vm_m], 1)) + im_m + vm_m + vm_t + im_t
        img_m = self.middle_img(torch.cat([img_t, img1], 1)) + img_t
        mask2, ctx2 = self.mask_transformer2(mask, ctx)
        img2, _ = self.img_transformer2(img_m, ctx2)
        out = torch.cat([img2, img1, img_m, mask2], 1)

        def back(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        return back(out), back(vm_m), back(im_m)

    def forward(self, y: torch.Tensor, ir: torch.Tensor, vm: torch.Tensor, im: torch.Tensor
                ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        b, _, h, w = y.shape
        for name, t in (("ir", ir), ("vm", vm), ("im", im)):
            assert t.shape[0] == b and t.shape[-2:] == (h, w), (name, tuple(t.shape), tuple(y.shape))
        y, ir, vm, im = (pad_to_multiple(t, self.multiple)[0] for t in (y, ir, vm, im))
        fused, taps = self.forward_release(y, ir, vm, im)
        sizes = [(h, w), (h // 2, w // 2), (h // 4, w // 4), (h // 2, w // 2), (h, w)]
        taps = [t[..., :th, :tw] for t, (th, tw) in zip(taps, sizes)]
        return fused[..., :h, :w], taps

    def forward_release(self, y: torch.Tensor, ir: torch.Tensor, vm: torch.Tensor, im: torch.Tensor
                        ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The release's forward; H, W must be divisible by 4. Taps at full, 1/2, 1/4, 1/2, full size."""
        h, w = y.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"Teacher.forward_release: H, W must be multiples of {self.multiple}, got {h}x{w} "
                             "(forward pads other sizes)")
        img0 = self.encoder_img1(torch.cat([y, ir], 1))  # (B, 32, H, W)
        img = skip0 = self.encoder_img2(img0)  # (B, 64, H, W)
        vm = self.encoder_mask2_vi(self.encoder_mask1_vi(vm))
        im = self.encoder_mask2_ir(self.encoder_mask1_ir(im))

        out1, vm, im = self.spa(img, vm, im)  # (B, 256, H, W)
        img, vm, im = self.compress_and_downsample_img1(out1), self.pool2(vm), self.pool2(im)
        out2, vm, im = self.spa(img, vm, im)  # 1/2
        img, vm, im = self.compress_and_downsample_img2(out2), self.pool2(vm), self.pool2(im)
        out3, vm, im = self.spa(img, vm, im)  # 1/4
        img = F.interpolate(out3, size=out2.shape[-2:], mode="bilinear", align_corners=True) + out2
        img, vm, im = self.compress_and_downsample_img3(img), up2(vm), up2(im)
        out4, vm, im = self.spa(img, vm, im)  # 1/2
        img, vm, im = self.compress_and_downsample_img4(up2(out4) + out1), up2(vm), up2(im)
        out5, _, _ = self.spa(img, vm, im)  # full size

        x = self.img_decoder1(torch.cat([out5, skip0], 1))  # (B, 64, H, W)
        fused = self.img_decoder2(torch.cat([x, img0], 1))  # (B, 1, H, W)
        taps = [tap(o) for tap, o in zip(self.taps(), (out1, out2, out3, out4, out5))]
        return fused, taps


# ----------------------------------------------------------------------------- older files

# This project's own teacher names before it adopted the release's (prefix -> release prefix).
_LEGACY_PREFIXES = (
    ("spa.T_img1.", "img_transformer1."), ("spa.T_vi1.", "mask_transformer1_vi."),
    ("spa.T_ir1.", "mask_transformer1_ir."), ("spa.T_mask2.", "mask_transformer2."),
    ("spa.T_img2.", "img_transformer2."), ("spa.mid_ir.", "middle_mask_ir."),
    ("spa.mid_vi.", "middle_mask_vi."), ("spa.mid_mask.", "middle_mask."), ("spa.mid_img.", "middle_img."),
    ("down1.", "compress_and_downsample_img1."), ("down2.", "compress_and_downsample_img2."),
    ("merge3.", "compress_and_downsample_img3."), ("merge4.", "compress_and_downsample_img4."),
    ("decoder1.", "img_decoder1."), ("decoder2.", "img_decoder2."),
)
_LEGACY_INNER = ((".block.", ".transformer_blocks.0."), (".to_out.weight", ".to_out.0.weight"),
                 (".to_out.bias", ".to_out.0.bias"), (".ff.net.1.", ".ff.net.2."))
_LEGACY_MARKERS = ("spa.", "down1.", "merge3.", "decoder1.", "taps.", "sobel")


def legacy_teacher_key(key: str) -> str:
    """The release name of one key of this project's earlier teacher state_dict (others unchanged)."""
    for old, new in _LEGACY_PREFIXES:
        if key.startswith(old):
            key = new + key[len(old):]
            for a, b in _LEGACY_INNER:
                key = key.replace(a, b)
            return key
    m = re.match(r"taps\.(\d)\.(.*)", key)
    if m:
        return f"compress_to_32_{int(m.group(1)) + 1}.{m.group(2)}"
    if key.startswith("compress_and_upsample.") and not key.startswith("compress_and_upsample.0."):
        return "compress_and_upsample.0." + key[len("compress_and_upsample."):]  # a bare conv before
    return key


def is_legacy_teacher_state(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a state_dict written by this project's teacher before it used the release's names."""
    return any(k.startswith(_LEGACY_MARKERS) for k in state)


def convert_legacy_teacher_state(state: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], bool]:
    """A teacher state_dict under the release's names, and whether it was converted from older names.

    - This project's earlier names (spa.T_img1, down1, merge3, decoder1, taps.0, sobel, ...; both the
      versions with and without the inert compress_and_upsample/sobel members) are renamed; the inert
      members it lacked are filled (the Sobel constants, zeros for the unused conv). converted = True:
      the caller logs a one-line notice.
    - A release file saved on a GPU lacks `grad.weightx` / `grad.weighty` (see RELEASE_GPU_PARAMETER_COUNT):
      the two Sobel constants are added. Not a conversion (converted = False).
    - Anything else is returned unchanged, for strict loading to judge.
    """
    state = OrderedDict(state)
    converted = is_legacy_teacher_state(state)
    if converted:
        out: Dict[str, torch.Tensor] = OrderedDict()
        for key, value in state.items():
            if key == "sobel":  # (2, 3, 3): x then y kernel
                out["grad.weightx"] = value[0].reshape(1, 1, 3, 3).clone()
                out["grad.weighty"] = value[1].reshape(1, 1, 3, 3).clone()
            else:
                out[legacy_teacher_key(key)] = value
        if "compress_and_upsample.0.weight" not in out:
            ref = out.get("compress_and_downsample_img1.0.weight")
            dtype = ref.dtype if ref is not None else torch.float32
            out["compress_and_upsample.0.weight"] = torch.zeros(64, 256, 3, 3, dtype=dtype)
            out["compress_and_upsample.0.bias"] = torch.zeros(64, dtype=dtype)
        state = out
    if "grad.weightx" not in state and "grad.weighty" not in state and "encoder_img1.0.weight" in state:
        dtype = state["encoder_img1.0.weight"].dtype
        state["grad.weightx"] = torch.tensor(SOBEL_X, dtype=dtype).view(1, 1, 3, 3)
        state["grad.weighty"] = torch.tensor(SOBEL_Y, dtype=dtype).view(1, 1, 3, 3)
        state.move_to_end("grad.weighty", last=False)
        state.move_to_end("grad.weightx", last=False)
    return state, converted


def convert_legacy_teacher_optimizer_state(opt_state: Mapping, old_keys: List[str], model: Teacher) -> Dict:
    """Adam (or any torch optimizer) state saved for an earlier-named teacher, re-indexed for `model`.

    Args:
        opt_state: optimizer.state_dict() saved with the earlier teacher (one param group over
            teacher.parameters(), as train.py builds it).
        old_keys: the earlier teacher's parameter names in their order (list(old_state_dict)): the
            teacher has no buffers, so these are the optimizer's parameter indices.
        model: the current Teacher the optimizer is built for.
    Returns:
        an optimizer state_dict whose indices follow model.named_parameters(); the inert members that
        the earlier teacher lacked or held differently (sobel) have no state (they never had a gradient).
    """
    new_index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    remap = {}
    for i, key in enumerate(old_keys):
        if key == "sobel":
            continue
        new = legacy_teacher_key(key)
        if new not in new_index:
            raise KeyError(f"teacher optimizer state: no parameter {new!r} (from {key!r}) in the current teacher")
        remap[i] = new_index[new]
    groups = [dict(g) for g in opt_state["param_groups"]]
    if len(groups) != 1:
        raise ValueError(f"teacher optimizer state: expected one parameter group, found {len(groups)}")
    groups[0]["params"] = list(range(len(new_index)))
    state = {remap[int(i)]: s for i, s in opt_state["state"].items() if int(i) in remap}
    return {"state": state, "param_groups": groups}
