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

Memory at inference (``torch.no_grad`` / ``torch.inference_mode``, eager): the same network
runs with fewer maps alive at once. Stage 1 and the stage-2 encoder run one sub-patch, then
one half at a time (nothing mixes the pieces before they are stitched, so the numbers are
those of the stacked pieces); the blocks work in the buffers they have made
(``model/blocks.py``); :meth:`PSDNet.infer` (the predictor's path) keeps only what ``out3``
needs. On the engine's 576 px tile at width 28 that halves the largest set of live
activations (about 310 -> 160 MB). Outputs differ from the autograd path by float rounding
only (split concatenations, 1x1 convolutions before the decoder's upsampling, one sum
reordered in ``infer``: max 5e-7 on a bundled model's ``out3``). Training (autograd) runs the
plain ops, as written.

Size: 2.716 M parameters at 4 bands / width 28 / ratio 4 (paper: 2.78 M),
2.723 M at 8 bands; 1.92 M at ratio 2 and 2.29 M at ratio 3 (smaller DBPN kernels).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from psdnet_qgis.errors import PSDNetInputError
from psdnet_qgis.model.blocks import (
    OFB,
    DBPNBlock,
    Head,
    PReLU,
    ResBlock,
    Stem,
    TransBlock,
    add_into,
    conv1,
    conv3,
    conv_of_cat,
    eager_inference,
)
from psdnet_qgis.model.stitching import merge_pieces, split_pieces, stitch

#: Overlap between neighbouring sub-patches, in MS pixels (PSDNET.md).
OVERLAP_MS = 8
#: Internal padding granularity, in MS pixels.
PAD_MULTIPLE = 8
#: Smallest accepted MS tile side.
MIN_SIDE = 8

#: Stage-1 layouts: the paper's four sub-patches, or the whole patch (ablation only).
STAGE1_MODES = ("multipatch", "whole")
#: What the stems see: the images (the paper) or their detail (beyond the paper; see
#: :func:`detail`): the PAN and MS less a 5 x 5 box mean, and the previous stage's residual
#: instead of its image, so that no stem sees a band's level or a sensor's radiometry.
INPUT_MODES = ("image", "detail")
#: What the stage outputs are residuals on: the bicubic ``lms`` (the paper), or a classical
#: fusion of the same inputs given to ``forward`` / ``infer`` as ``base`` (beyond the paper:
#: a zero residual then gives the classical method, which the network corrects).
BASE_MODES = ("bicubic", "mtf_glp_fs", "mtf_glp_hpm")
#: Side of the box mean taken off in ``inputs="detail"``.
DETAIL_BOX = 5


def detail(x: torch.Tensor) -> torch.Tensor:
    """``x`` less its 5 x 5 box mean (reflect-padded): the high-pass the stems see in
    ``inputs="detail"``, as PanNet (Yang et al., ICCV 2017) gives its network, so that what the
    network learns does not depend on each sensor's band levels and spectral responses."""
    k = DETAIL_BOX // 2
    return x - F.avg_pool2d(F.pad(x, (k, k, k, k), mode="reflect"), DETAIL_BOX, stride=1)


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


def _chain(seq: nn.Module, box: list[torch.Tensor]) -> torch.Tensor:
    """``seq(x)`` for ``box = [x]`` (emptied).

    Outside autograd module by module, so that each intermediate is released as soon as the
    next module has made its output: a module call holds its input until it returns, so
    ``seq(x)`` keeps ``x`` through the whole chain, and a caller's variable would too.
    """
    x = box.pop()
    if not eager_inference() or not isinstance(seq, nn.Sequential):
        return seq(x)
    for m in seq:
        x = m(x)
    return x


def _conv_up(conv: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``conv(_resize(x, size))`` for the decoder's 1x1 convolutions.

    Outside autograd (``blocks.eager_inference``) as ``_resize(conv(x), size)``: the same map
    (a 1x1 convolution acts on channels, the bilinear resize on pixels, and its weights sum to
    one, so the bias passes through), computed on the coarser grid and resized with fewer
    channels: float rounding only, and no map of the wider input channels at the finer level.
    """
    if (eager_inference() and type(conv) is nn.Conv2d and conv.kernel_size == (1, 1)
            and conv.stride == (1, 1) and conv.padding == (0, 0) and conv.groups == 1
            and conv.out_channels <= conv.in_channels):
        return _resize(conv(x), size)
    return conv(_resize(x, size))


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
        inputs: ``"image"`` (the paper) or ``"detail"`` (:data:`INPUT_MODES`). Same
            parameters either way; the outputs are ``lms + residual`` in both.
        base: ``"bicubic"`` (the paper) or a classical method (:data:`BASE_MODES`) whose
            output the caller passes as ``base``; it then takes ``lms``'s place everywhere.
    """

    def __init__(self, bands: int, ratio: int, width: int = 28, teacher: bool = False,
                 stage1: str = "multipatch", inputs: str = "image", base: str = "bicubic") -> None:
        super().__init__()
        if int(bands) < 1:
            raise PSDNetInputError(f"PSDNet bands: got {bands}, need at least 1 band.")
        if int(ratio) not in (2, 3, 4):
            raise PSDNetInputError(f"PSDNet ratio: got {ratio}, supported ratios are 2, 3 and 4.")
        if int(width) < 4:
            raise PSDNetInputError(f"PSDNet width: got {width}, use at least 4 (28 in the paper).")
        if stage1 not in STAGE1_MODES:
            raise PSDNetInputError(f"PSDNet stage1: got {stage1!r}, use one of {STAGE1_MODES}.")
        if inputs not in INPUT_MODES:
            raise PSDNetInputError(f"PSDNet inputs: got {inputs!r}, use one of {INPUT_MODES}.")
        if base not in BASE_MODES:
            raise PSDNetInputError(f"PSDNet base: got {base!r}, use one of {BASE_MODES}.")
        self.stage1 = stage1
        self.inputs = inputs
        self.base = base
        self.bands = int(bands)
        self.ratio = int(ratio)
        self.width = int(width)
        self.teacher = bool(teacher)
        c, r, w = self.bands, self.ratio, self.width

        # Stage 1: multipatch DBPN.
        ms_branch = nn.Sequential(
            nn.ConvTranspose2d(c, w, kernel_size=r, stride=r), PReLU(), conv3(w, w), PReLU()
        )
        self.stem1 = Stem(ms_branch, w)
        self.dbpn = nn.ModuleList([DBPNBlock(w, r) for _ in range(3)])
        self.fuse1_hr = nn.Sequential(conv1(3 * w, w), PReLU())
        self.fuse1_lr = nn.Sequential(conv1(3 * w, w), PReLU())
        self.head1 = Head(w, c)

        # Stage 2: UNet on halves, decoder on the whole.
        self.stem2 = Stem(nn.Sequential(conv3(c, w), PReLU()), w)
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
        self.stem3 = Stem(nn.Sequential(conv3(c, w), PReLU()), w)
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
        if self.inputs != "image":
            kw["inputs"] = self.inputs
        if self.base != "bicubic":
            kw["base"] = self.base
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

    def forward(self, ms: torch.Tensor, pan: torch.Tensor, gt: torch.Tensor | None = None,
                base: torch.Tensor | None = None) -> PSDNetOutput:
        """Pansharpen a batch of tiles.

        Args:
            ms: normalised MS ``(B, C, h, w)``, ``h, w >= 8``.
            pan: normalised PAN ``(B, 1, h r, w r)``.
            gt: reference ``(B, C, h r, w r)``; required when ``teacher=True``,
                ignored otherwise.
            base: the classical fusion ``(B, C, h r, w r)`` of a model whose ``base`` is not
                ``"bicubic"`` (normalised like ``ms``); None otherwise.

        Returns:
            :class:`PSDNetOutput` cropped to ``(h r, w r)``.
        """
        lms, ms, pan, lms_p, gt = self._prepare(ms, pan, gt, base)
        H, W = lms.shape[-2:]
        res1, res2, res3, f2, f3 = self._forward_padded(ms, pan, lms_p, gt if self.teacher else None)
        crop = (slice(None), slice(None), slice(0, H), slice(0, W))
        return PSDNetOutput(
            out1=lms + res1[crop],
            out2=lms + res2[crop],
            out3=lms + res3[crop],
            f2=f2[crop],
            f3=f3[crop],
        )

    def infer(self, ms: torch.Tensor, pan: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """The final image only: ``forward(ms, pan).out3``, the same numbers, less memory.

        The inference path of ``model/predictor.py``: the stage-1 and stage-2 residuals and
        the features ``f2`` / ``f3`` are released as soon as the next stage has used them
        instead of being kept for the returned :class:`PSDNetOutput` (see the module
        docstring, "Memory at inference"): ``forward(ms, pan).out3`` up to float rounding.
        A teacher model needs ``gt``: use ``forward``.

        Returns:
            ``out3`` ``(B, C, h r, w r)``.
        """
        if self.teacher:
            raise PSDNetInputError("PSDNet.infer: a teacher model needs gt; call the model itself.")
        lms, ms, pan, lms_p, _ = self._prepare(ms, pan, None, base)
        H, W = lms.shape[-2:]
        res3 = self._infer_padded(ms, pan, lms_p)
        return lms + res3[:, :, :H, :W]

    def _prepare(self, ms: torch.Tensor, pan: torch.Tensor, gt: torch.Tensor | None,
                 base: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Checks, bicubic ``lms``, padding to multiples of 8 MS px and the body's dtype.

        Returns:
            ``(lms, ms, pan, lms_p, gt)``: ``lms`` of the unpadded MS in the input dtype, then
            the padded ``ms``, ``pan`` (their :func:`detail` in ``inputs="detail"``), ``lms``
            and ``gt`` in the weights' dtype.
        """
        self._check(ms, pan, gt)
        r = self.ratio
        h, w = ms.shape[-2:]
        if self.base == "bicubic":
            lms = F.interpolate(ms, scale_factor=r, mode="bicubic", align_corners=False)
        elif base is None or tuple(base.shape) != (ms.shape[0], self.bands, h * r, w * r):
            got = None if base is None else tuple(base.shape)
            raise PSDNetInputError(
                f"PSDNet base: a model on a {self.base} base needs base of shape "
                f"({ms.shape[0]}, {self.bands}, {h * r}, {w * r}), got {got}."
            )
        else:
            lms = base

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
        if self.inputs == "detail":
            ms, pan = detail(ms), detail(pan)
        dt = self.head3.last.weight.dtype
        if ms.dtype != dt:
            # Weights converted once (model/fastcpu.py, bf16): the body runs in their dtype,
            # lms and the outputs stay in the input dtype (zero residual -> exactly lms).
            ms, pan, lms_p = ms.to(dt), pan.to(dt), lms_p.to(dt)
            gt = gt.to(dt) if gt is not None else None
        return lms, ms, pan, lms_p, gt

    def _forward_padded(
        self, ms: torch.Tensor, pan: torch.Tensor, lms: torch.Tensor, gt: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """Network body on a padded tile (sides multiples of 8 MS px).

        Returns:
            ``(res1, res2, res3, f2, f3)``: tanh residuals ``(B, C, H, W)`` and
            features ``(B, w, H, W)`` on the padded PAN grid.
        """
        res1, e1, *e23 = self._stage2_encoder(ms, pan, lms, gt)
        # ---- Stage 2: decoder on the whole patch.
        f2 = _chain(self.dec1, [self._decoder_in(e1, e23)])
        res2 = torch.tanh(self.head2(f2))
        out2 = res2 if self.inputs == "detail" else lms + res2

        # ---- Stage 3: OFBs on the whole patch.
        box = [add_into(add_into(self.stem3(out2, pan), self.tb3_enc(e1)), self.tb3_dec(f2))]
        del e1, out2
        f3 = _chain(self.ofbs, box)
        res3 = torch.tanh(self.head3(f3))
        return res1, res2, res3, f2, f3

    def _infer_padded(self, ms: torch.Tensor, pan: torch.Tensor, lms: torch.Tensor) -> torch.Tensor:
        """:meth:`_forward_padded` for ``res3`` only (:meth:`infer`).

        Each map is released as soon as it has been used: the stage-3 transfers of ``e1`` and
        ``f2`` run as soon as those exist and are summed before the stem's output is added,
        ``stem3 + (tb3_enc + tb3_dec)`` instead of ``(stem3 + tb3_enc) + tb3_dec`` (float
        rounding only), so that at most four full-resolution maps exist at once.
        """
        e1, *e23 = self._stage2_encoder(ms, pan, lms, None)[1:]
        box = [self._decoder_in(e1, e23)]
        t3 = self.tb3_enc(e1)
        del e1
        f2 = _chain(self.dec1, box)
        out2 = torch.tanh(self.head2(f2))
        if self.inputs != "detail":
            out2 = lms + out2
        t3 = add_into(t3, self.tb3_dec(f2))
        del f2
        box = [add_into(self.stem3(out2, pan), t3)]
        del t3, out2
        return torch.tanh(self.head3(_chain(self.ofbs, box)))

    def _decoder_in(self, e1: torch.Tensor, e23: list[torch.Tensor]) -> torch.Tensor:
        """The stage-2 decoder up to the input of ``dec1`` (``e23`` = ``[e2, e3]``, emptied)."""
        e2, e3 = e23
        e23.clear()
        d2 = _chain(self.dec2, [add_into(_conv_up(self.up2, e3, (e2.shape[-2], e2.shape[-1])), self.skip2(e2))])
        del e2, e3
        up = _conv_up(self.up1, d2, (e1.shape[-2], e1.shape[-1]))
        del d2
        return add_into(up, self.skip1(e1))

    def _stage1(self, ms: torch.Tensor, pan: torch.Tensor, groups: int = 1
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Stage 1 on a padded tile: DBPN on the sub-patches, fused into the two halves.

        Args:
            groups: 1: the pieces stacked on the batch axis, as the network is written; 2
                (inference): one sub-patch, then one half at a time, with the same numbers
                (no operation mixes the pieces before they are stitched) and maps a quarter /
                half the size.

        Returns:
            ``(res1_h, feat_hr, feat_lr)``, each a list of ``groups`` tensors holding the two
            halves ``(2B, ...)`` (or the top ``(B, ...)``, then the bottom): the stage-1 tanh
            residual ``(., C, Ph, W)`` and the fused HR / LR features ``(., w, Ph, W)`` /
            ``(., w, ph, w)``.
        """
        ov_ms = OVERLAP_MS
        ov_pan = OVERLAP_MS * self.ratio
        # sub-blocks 2 and 3 of each group, when they ran before the split (ablation)
        done: list[list[torch.Tensor]] | None = None
        # Order of the 4 sub-patches (quarters) on the batch axis (4B, ...):
        # [top-left, bottom-left, top-right, bottom-right] (split rows first, then columns),
        # so merging columns gives [top, bottom].
        if self.stage1 == "multipatch":
            ms_q = split_pieces(split_pieces(ms, 2, ov_ms), 3, ov_ms)
            pan_q = split_pieces(split_pieces(pan, 2, ov_pan), 3, ov_pan)
            n = 1 if groups == 1 else 4
            q_hr, q_lr = [], []
            for m_q, p_q in zip(ms_q.chunk(n), pan_q.chunk(n), strict=True):
                h, lo = self.dbpn[0](self.stem1(m_q, p_q))
                q_hr.append(h)
                q_lr.append(lo)
                del h, lo
            del ms_q, pan_q
            # Sub-block 1 merges left/right: 4 pieces -> 2 halves (top, bottom).
            hr1 = _halves(q_hr, 3, ov_pan)
            lr1 = _halves(q_lr, 3, ov_ms)
        else:
            # Ablation: the whole patch through DBPN, split into halves afterwards.
            w1, v1 = self.dbpn[0](self.stem1(ms, pan))
            w2, v2 = self.dbpn[1](w1)
            w3, v3 = self.dbpn[2](w2)
            hr1, lr1, *done = [list(split_pieces(t, 2, ov).chunk(groups)) for t, ov in
                               ((w1, ov_pan), (v1, ov_ms), (w2, ov_pan), (v2, ov_ms), (w3, ov_pan), (v3, ov_ms))]
            del w1, w2, w3, v1, v2, v3
        res1_h, feat_hr, feat_lr = [], [], []
        for _ in range(groups):
            h1, l1 = hr1.pop(0), lr1.pop(0)
            if done is None:
                h2, l2 = self.dbpn[1](h1)
                h3, l3 = self.dbpn[2](h2)
            else:
                h2, l2, h3, l3 = (t.pop(0) for t in done)
            fh = conv_of_cat(self.fuse1_hr, [h1, h2, h3])  # (2B, w, Ph, W) or one half of it
            feat_lr.append(conv_of_cat(self.fuse1_lr, [l1, l2, l3]))  # (2B, w, ph, w) or a half
            # Inference keeps a tile's activations only while they are needed (the engine's peak
            # memory per tile); under autograd the graph keeps them anyway.
            del h1, h2, h3, l1, l2, l3
            res1_h.append(torch.tanh(self.head1(fh)))  # (2B, C, Ph, W) or a half
            feat_hr.append(fh)
            del fh
        return res1_h, feat_hr, feat_lr

    def _stage2_encoder(
        self, ms: torch.Tensor, pan: torch.Tensor, lms: torch.Tensor, gt: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 1, then the stage-2 UNet encoder on the two halves, stitched to the whole patch.

        Stage 1 runs in here so that its features are released as soon as the encoder has
        used them (a caller holding them would keep them through stages 2 and 3). Outside
        autograd both run one sub-patch / half at a time (:meth:`_stage1`): the same numbers.

        Returns:
            ``(res1, e1, e2, e3)``: the stage-1 residual and the encoder levels (PAN, 1/2, 1/4).
        """
        ov_pan = OVERLAP_MS * self.ratio
        groups = 2 if eager_inference() else 1
        res1_h, feat_hr, feat_lr = self._stage1(ms, pan, groups)
        pan_h = split_pieces(pan, 2, ov_pan).chunk(groups)
        detail_in = self.inputs == "detail"
        if gt is not None:
            img_h = split_pieces(gt - lms if detail_in else gt, 2, ov_pan).chunk(groups)
        else:
            img_h = () if detail_in else split_pieces(lms, 2, ov_pan).chunk(groups)
        e1s, e2s, e3s = [], [], []
        for g in range(groups):
            # the stage-1 image (its residual in inputs="detail"), or the teacher's reference
            img = img_h[g] if gt is not None else res1_h[g] if detail_in else img_h[g] + res1_h[g]
            box = [add_into(self.stem2(img, pan_h[g]), self.tb2_hr(feat_hr.pop(0)))]
            del img
            e1 = _chain(self.enc1, box)
            size2 = (e1.shape[-2] // 2, e1.shape[-1] // 2)
            e2 = _chain(self.enc2, [self.down1(_resize(e1, size2))])
            size3 = (size2[0] // 2, size2[1] // 2)
            e3 = _chain(self.enc3, [add_into(self.down2(_resize(e2, size3)),
                                             self.tb2_lr(_resize(feat_lr.pop(0), size3)))])
            e1s.append(e1)
            e2s.append(e2)
            e3s.append(e3)
            del e1, e2, e3
        del pan_h, img_h
        # Stitch encoder levels top/bottom (overlap 8 MS px at each level's scale).
        e1 = _join(e1s, 2, ov_pan)
        e2 = _join(e2s, 2, ov_pan // 2)
        e3 = _join(e3s, 2, ov_pan // 4)
        return _join(res1_h, 2, ov_pan), e1, e2, e3


def _halves(q: list[torch.Tensor], dim: int, overlap: int) -> list[torch.Tensor]:
    """Merge the left/right sub-patches ``q`` along ``dim`` into the top/bottom halves (emptying ``q``).

    ``q``: ``[4B stacked]`` (-> ``[2B stacked]``) or ``[top-left, bottom-left, top-right,
    bottom-right]`` (-> ``[top, bottom]``).
    """
    if len(q) == 1:
        return [_join(q, dim, overlap)]
    top = _join([q.pop(0), q.pop(1)], dim, overlap)  # top-left + top-right, released once stitched
    return [top, _join(q, dim, overlap)]  # bottom-left + bottom-right


def _join(pieces: list[torch.Tensor], dim: int, overlap: int) -> torch.Tensor:
    """Stitch the first and the second pieces along ``dim``, given stacked (``[2B]``, as
    :func:`merge_pieces`) or apart (``[first, second]``); empties ``pieces``."""
    if len(pieces) == 1:
        return merge_pieces(pieces.pop(), dim, overlap)
    a, b = pieces
    pieces.clear()
    return stitch(a, b, dim, overlap)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
