"""PSDNet: multipatch progressive pansharpening network (Gong et al., TGRS 2023).

Written from the design facts in ``PSDNET.md``; no code of the authors is used.
The building blocks (CAB, SAB, ResBlock, Stem, DBPN projections, OFB, ...) are in
``model/blocks.py``, the split/stitch of overlapping pieces in ``model/stitching.py``;
this module assembles them and holds the padding, cropping and the stage order.

Three stages, each predicting a residual on top of the bicubic ``lms``:

1. Four overlapping MS sub-patches (2 x 2 grid, overlap 8 MS px): stem
   (MS transposed conv + PAN convs -> concat -> conv -> CAB -> SAB) and three
   DBPN sub-blocks (down, up, down, up projections, densely concatenated).
   After sub-block 1 the left/right pieces are stitched, so sub-blocks 2 and 3
   run on the two halves (top/bottom). The HR (PAN-level) and LR (MS-level) maps of the three
   sub-blocks are concatenated and fused by 1x1 convs; the fused HR map feeds
   the stage-1 head, both feed the stage-2 TransBlocks.
2. Two halves: the same stem on (stage-1 half image, PAN half), a three-level
   UNet encoder (w, 2w, 3w channels; PAN, 1/2, 1/4) with TransBlocks injecting
   the stage-1 HR features at PAN level and the LR features at 1/4 level. The
   encoder levels of the two halves are stitched top/bottom and one decoder runs
   on the whole patch (the "2 -> 1" merge; bilinear x2 + 1x1 conv, skips
   through a ResBlock). Decoder output = ``f2``.
3. The whole patch: stem on (stage-2 image, PAN) + TransBlocks of the stage-2
   encoder level 1 and of ``f2``, then three OFBs in series. OFB-chain output =
   ``f3``.

Overlapping pieces (images and feature maps) are merged with half-Hann ramps:
over an overlap of ``N`` rows the first piece has weight
``w(i) = 0.5 + 0.5 cos(pi i / N)`` and the second ``1 - w(i)``; ``N`` = 8 MS px
times the scale of the level (``8 r`` at PAN level, ``4 r`` at UNet level 2,
``2 r`` at level 3, 8 at MS level).

Design decisions not fixed by the paper (documented here, measured elsewhere):

* DBPN kernels follow the ratio: kernel ``r + 4``, stride ``r``, padding 2.
  Then ``conv`` maps ``n * r -> n`` and ``conv_transpose`` maps ``n -> n * r``
  exactly for every ``r`` (r=4 -> k8 s4 p2 as in DBPN; r=2 -> k6 s2 p2;
  r=3 -> k7 s3 p2).
* The UNet 1/4 level equals the MS level only at r = 4; for r = 2 or 3 the
  stage-1 LR features are resized bilinearly to the 1/4-level grid.
* Inputs of any size ``h, w >= 8`` MS px: the tile is reflect-padded at the
  bottom/right to a multiple of 8 MS px (so halves, quarters and all UNet levels
  align on whole pixels for r in {2, 3, 4}), every output is cropped back. The
  stage outputs are ``lms + tanh(residual)`` with ``lms`` computed from the
  *unpadded* MS, so a zero residual gives exactly ``lms``.

Size: 2.716 M parameters at 4 bands / width 28 / ratio 4 (paper: 2.78 M),
2.723 M at 8 bands; 1.92 M at ratio 2 and 2.29 M at ratio 3 (smaller DBPN kernels).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.blocks import OFB, DBPNBlock, Head, ResBlock, Stem, TransBlock, conv1, conv3
from psdnet_qgis.model.stitching import merge_pieces, split_pieces

#: Overlap between neighbouring sub-patches, in MS pixels (PSDNET.md).
OVERLAP_MS = 8
#: Internal padding granularity, in MS pixels.
PAD_MULTIPLE = 8
#: Smallest accepted MS tile side.
MIN_SIDE = 8

#: Stage-1 layouts: the paper's four sub-patches, or the whole patch (ablation only).
STAGE1_MODES = ("multipatch", "whole")


class PSDNetOutput(NamedTuple):
    """Outputs of :class:`PSDNet`, all cropped to the input PAN size ``(H, W)``.

    Attributes:
        out1: stage-1 image ``(B, C, H, W)``.
        out2: stage-2 image ``(B, C, H, W)``.
        out3: stage-3 (final, fused) image ``(B, C, H, W)``.
        f2: stage-2 decoder output features ``(B, width, H, W)``.
        f3: stage-3 OFB-chain output features ``(B, width, H, W)``.
    """

    out1: torch.Tensor
    out2: torch.Tensor
    out3: torch.Tensor
    f2: torch.Tensor
    f3: torch.Tensor


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False); identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PSDNet(nn.Module):
    """PSDNet pansharpening network.

    Args:
        bands: number of MS bands ``C`` (>= 1).
        ratio: PAN/MS resolution ratio ``r`` (2, 3 or 4).
        width: feature channels ``w`` (UNet levels w / 2w / 3w); 28 in the paper.
        teacher: when True, ``forward`` needs ``gt`` and uses its top/bottom
            halves as the stage-2 image input (knowledge-distillation teacher).
        stage1: ``"multipatch"`` (the paper: DBPN on four overlapping sub-patches) or
            ``"whole"`` (ablation: DBPN on the whole patch, then split into the two
            stage-2 halves). Same parameters either way.
    """

    def __init__(self, bands: int, ratio: int, width: int = 28, teacher: bool = False,
                 stage1: str = "multipatch") -> None:
        super().__init__()
        if int(bands) < 1:
            raise PSDNetInputError(f"PSDNet bands: got {bands}, need at least 1 band.")
        if int(ratio) not in (2, 3, 4):
            raise PSDNetInputError(f"PSDNet ratio: got {ratio}, supported ratios are 2, 3 and 4.")
        if int(width) < 4:
            raise PSDNetInputError(f"PSDNet width: got {width}, use at least 4 (28 in the paper).")
        if stage1 not in STAGE1_MODES:
            raise PSDNetInputError(f"PSDNet stage1: got {stage1!r}, use one of {STAGE1_MODES}.")
        self.stage1 = stage1
        self.bands = int(bands)
        self.ratio = int(ratio)
        self.width = int(width)
        self.teacher = bool(teacher)
        c, r, w = self.bands, self.ratio, self.width

        # Stage 1: multipatch DBPN.
        ms_branch = nn.Sequential(
            nn.ConvTranspose2d(c, w, kernel_size=r, stride=r), nn.PReLU(), conv3(w, w), nn.PReLU()
        )
        self.stem1 = Stem(ms_branch, w)
        self.dbpn = nn.ModuleList([DBPNBlock(w, r) for _ in range(3)])
        self.fuse1_hr = nn.Sequential(conv1(3 * w, w), nn.PReLU())
        self.fuse1_lr = nn.Sequential(conv1(3 * w, w), nn.PReLU())
        self.head1 = Head(w, c)

        # Stage 2: UNet on halves, decoder on the whole.
        self.stem2 = Stem(nn.Sequential(conv3(c, w), nn.PReLU()), w)
        self.tb2_hr = TransBlock(w, w)
        self.tb2_lr = TransBlock(w, 3 * w)
        self.enc1 = nn.Sequential(ResBlock(w), ResBlock(w))
        self.down1 = conv1(w, 2 * w)  # after bilinear x0.5
        self.enc2 = nn.Sequential(ResBlock(2 * w), ResBlock(2 * w))
        self.down2 = conv1(2 * w, 3 * w)
        self.enc3 = nn.Sequential(ResBlock(3 * w), ResBlock(3 * w))
        self.up2 = conv1(3 * w, 2 * w)  # after bilinear x2
        self.skip2 = ResBlock(2 * w)
        self.dec2 = nn.Sequential(ResBlock(2 * w), ResBlock(2 * w))
        self.up1 = conv1(2 * w, w)
        self.skip1 = ResBlock(w)
        self.dec1 = nn.Sequential(ResBlock(w), ResBlock(w))
        self.head2 = Head(w, c)

        # Stage 3: OFBs on the whole patch.
        self.stem3 = Stem(nn.Sequential(conv3(c, w), nn.PReLU()), w)
        self.tb3_enc = TransBlock(w, w)
        self.tb3_dec = TransBlock(w, w)
        self.ofbs = nn.Sequential(OFB(w), OFB(w), OFB(w))
        self.head3 = Head(w, c)

    # ------------------------------------------------------------------ #
    def arch_kwargs(self) -> dict:
        """Constructor arguments that define the architecture (stored with weights)."""
        kw: dict[str, int | str] = {"bands": self.bands, "ratio": self.ratio, "width": self.width}
        if self.stage1 != "multipatch":
            kw["stage1"] = self.stage1
        return kw

    @torch.no_grad()
    def zero_residual_(self) -> PSDNet:
        """Zero the last conv of every head so each stage output equals ``lms`` exactly."""
        for head in (self.head1, self.head2, self.head3):
            head.last.weight.zero_()
            if head.last.bias is not None:
                head.last.bias.zero_()
        return self

    # ------------------------------------------------------------------ #
    def _check(self, ms: torch.Tensor, pan: torch.Tensor, gt: torch.Tensor | None) -> None:
        if ms.dim() != 4 or ms.shape[1] != self.bands:
            raise PSDNetInputError(
                f"PSDNet ms: expected shape (B, {self.bands}, h, w), got {tuple(ms.shape)}; "
                f"use a model trained for {ms.shape[1] if ms.dim() == 4 else '?'} bands or select matching bands."
            )
        h, w = ms.shape[-2:]
        if h < MIN_SIDE or w < MIN_SIDE:
            raise PSDNetInputError(
                f"PSDNet ms: tile of {h} x {w} MS px is too small; use at least {MIN_SIDE} x {MIN_SIDE}."
            )
        r = self.ratio
        want_pan = (ms.shape[0], 1, h * r, w * r)
        if tuple(pan.shape) != want_pan:
            raise PSDNetInputError(
                f"PSDNet pan: expected shape {want_pan} for ratio {r}, "
                f"got {tuple(pan.shape)}; crop PAN to exactly ratio x the MS tile."
            )
        if self.teacher:
            if gt is None or tuple(gt.shape) != (ms.shape[0], self.bands, h * r, w * r):
                got = None if gt is None else tuple(gt.shape)
                raise PSDNetInputError(
                    f"PSDNet gt: a teacher model needs gt of shape "
                    f"({ms.shape[0]}, {self.bands}, {h * r}, {w * r}), got {got}."
                )

    def forward(self, ms: torch.Tensor, pan: torch.Tensor, gt: torch.Tensor | None = None) -> PSDNetOutput:
        """Pansharpen a batch of tiles.

        Args:
            ms: normalised MS ``(B, C, h, w)``, ``h, w >= 8``.
            pan: normalised PAN ``(B, 1, h r, w r)``.
            gt: reference ``(B, C, h r, w r)``; required when ``teacher=True``,
                ignored otherwise.

        Returns:
            :class:`PSDNetOutput` cropped to ``(h r, w r)``.
        """
        self._check(ms, pan, gt)
        r = self.ratio
        h, w = ms.shape[-2:]
        H, W = h * r, w * r
        lms = F.interpolate(ms, scale_factor=r, mode="bicubic", align_corners=False)

        ph = (-h) % PAD_MULTIPLE
        pw = (-w) % PAD_MULTIPLE
        if ph or pw:
            # Reflect padding needs pad < size: pad <= 7 < 8 <= h, w.
            ms = F.pad(ms, (0, pw, 0, ph), mode="reflect")
            pan = F.pad(pan, (0, pw * r, 0, ph * r), mode="reflect")
            # Pad lms itself (not bicubic of the padded ms) so the padded and the
            # unpadded grids agree on every original pixel.
            lms_p = F.pad(lms, (0, pw * r, 0, ph * r), mode="reflect")
            if gt is not None and self.teacher:
                gt = F.pad(gt, (0, pw * r, 0, ph * r), mode="reflect")
        else:
            lms_p = lms
        dt = self.head3.last.weight.dtype
        if ms.dtype != dt:
            # Weights converted once (model/fastcpu.py, bf16): the body runs in their dtype,
            # lms and the outputs stay in the input dtype (zero residual -> exactly lms).
            ms, pan, lms_p = ms.to(dt), pan.to(dt), lms_p.to(dt)
            gt = gt.to(dt) if gt is not None else None

        res1, res2, res3, f2, f3 = self._forward_padded(ms, pan, lms_p, gt if self.teacher else None)
        crop = (slice(None), slice(None), slice(0, H), slice(0, W))
        return PSDNetOutput(
            out1=lms + res1[crop],
            out2=lms + res2[crop],
            out3=lms + res3[crop],
            f2=f2[crop],
            f3=f3[crop],
        )

    def _forward_padded(
        self, ms: torch.Tensor, pan: torch.Tensor, lms: torch.Tensor, gt: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """Network body on a padded tile (sides multiples of 8 MS px).

        Returns:
            ``(res1, res2, res3, f2, f3)``: tanh residuals ``(B, C, H, W)`` and
            features ``(B, w, H, W)`` on the padded PAN grid.
        """
        res1, e1, e2, e3 = self._stage2_encoder(ms, pan, lms, gt)
        # ---- Stage 2: decoder on the whole patch.
        d2 = self.dec2(self.up2(_resize(e3, (e2.shape[-2], e2.shape[-1]))) + self.skip2(e2))
        del e2, e3
        f2 = self.dec1(self.up1(_resize(d2, (e1.shape[-2], e1.shape[-1]))) + self.skip1(e1))
        del d2
        res2 = torch.tanh(self.head2(f2))
        out2 = lms + res2

        # ---- Stage 3: OFBs on the whole patch.
        x = self.stem3(out2, pan) + self.tb3_enc(e1) + self.tb3_dec(f2)
        del e1, out2
        f3 = self.ofbs(x)
        del x
        res3 = torch.tanh(self.head3(f3))
        return res1, res2, res3, f2, f3

    def _stage1(self, ms: torch.Tensor, pan: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 1 on a padded tile: DBPN on the sub-patches, fused into the two halves.

        Returns:
            ``(res1, res1_h, feat_hr, feat_lr)``: the stage-1 tanh residual ``(B, C, H, W)``,
            the same on the two halves ``(2B, C, Ph, W)`` and the fused HR / LR features of
            the halves ``(2B, w, Ph, W)`` / ``(2B, w, ph, w)``.
        """
        ov_ms = OVERLAP_MS
        ov_pan = OVERLAP_MS * self.ratio
        # Order of the 4 sub-patches (quarters) on the batch axis (4B, ...):
        # [top-left, bottom-left, top-right, bottom-right] (split rows first, then columns),
        # so merging columns gives [top, bottom].
        if self.stage1 == "multipatch":
            ms_q = split_pieces(split_pieces(ms, 2, ov_ms), 3, ov_ms)
            pan_q = split_pieces(split_pieces(pan, 2, ov_pan), 3, ov_pan)
            x = self.stem1(ms_q, pan_q)
            del ms_q, pan_q
            hr1, lr1 = self.dbpn[0](x)
            del x
            # Sub-block 1 merges left/right: 4 pieces -> 2 halves (top, bottom).
            hr1 = merge_pieces(hr1, 3, ov_pan)
            lr1 = merge_pieces(lr1, 3, ov_ms)
            hr2, lr2 = self.dbpn[1](hr1)
            hr3, lr3 = self.dbpn[2](hr2)
        else:
            # Ablation: the whole patch through DBPN, split into halves afterwards.
            hr1, lr1 = self.dbpn[0](self.stem1(ms, pan))
            hr2, lr2 = self.dbpn[1](hr1)
            hr3, lr3 = self.dbpn[2](hr2)
            hr1, hr2, hr3 = (split_pieces(t, 2, ov_pan) for t in (hr1, hr2, hr3))
            lr1, lr2, lr3 = (split_pieces(t, 2, ov_ms) for t in (lr1, lr2, lr3))
        feat_hr = self.fuse1_hr(torch.cat([hr1, hr2, hr3], dim=1))  # (2B, w, Ph, W)
        feat_lr = self.fuse1_lr(torch.cat([lr1, lr2, lr3], dim=1))  # (2B, w, ph, w)
        # Inference keeps a tile's activations only while they are needed (the engine's peak
        # memory per tile); under autograd the graph keeps them anyway.
        del hr1, hr2, hr3, lr1, lr2, lr3
        res1_h = torch.tanh(self.head1(feat_hr))  # (2B, C, Ph, W)
        return merge_pieces(res1_h, 2, ov_pan), res1_h, feat_hr, feat_lr

    def _stage2_encoder(
        self, ms: torch.Tensor, pan: torch.Tensor, lms: torch.Tensor, gt: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 1, then the stage-2 UNet encoder on the two halves, stitched to the whole patch.

        Stage 1 runs in here so that its features are released as soon as the encoder has
        used them (a caller holding them would keep them through stages 2 and 3).

        Returns:
            ``(res1, e1, e2, e3)``: the stage-1 residual and the encoder levels (PAN, 1/2, 1/4).
        """
        ov_pan = OVERLAP_MS * self.ratio
        res1, res1_h, feat_hr, feat_lr = self._stage1(ms, pan)
        pan_h = split_pieces(pan, 2, ov_pan)
        if gt is not None:
            img_h = split_pieces(gt, 2, ov_pan)
        else:
            img_h = split_pieces(lms, 2, ov_pan) + res1_h
        x = self.stem2(img_h, pan_h) + self.tb2_hr(feat_hr)
        del img_h, pan_h, feat_hr
        e1 = self.enc1(x)
        del x
        size2 = (e1.shape[-2] // 2, e1.shape[-1] // 2)
        e2 = self.enc2(self.down1(_resize(e1, size2)))
        size3 = (size2[0] // 2, size2[1] // 2)
        e3 = self.enc3(self.down2(_resize(e2, size3)) + self.tb2_lr(_resize(feat_lr, size3)))
        del feat_lr
        # Stitch encoder levels top/bottom (overlap 8 MS px at each level's scale).
        e1 = merge_pieces(e1, 2, ov_pan)
        e2 = merge_pieces(e2, 2, ov_pan // 2)
        e3 = merge_pieces(e3, 2, ov_pan // 4)
        return res1, e1, e2, e3


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
