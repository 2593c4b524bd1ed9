"""Region Proposal Network head: torchvision's ``RPNHead`` + ``RegionProposalNetwork`` numerics, batched."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, batched_nms, box_iou

from detkit.models.fuse import conv2d_act
from detkit.ops import batched
from detkit.ops.anchors import anchor_strides, base_anchors, grid_anchors, make_anchors
from detkit.ops.box_coder import BoxCoder
from detkit.ops.dense_maps import flat_deltas, flat_objectness, take_deltas
from detkit.ops.global_batch import at_least_float32
from detkit.ops.matcher import Matcher
from detkit.ops.sampler import sample_pos_neg
from detkit.registry import HEADS

Raw = tuple[list[Tensor], list[Tensor]]


@HEADS.register
class RPNHead(nn.Module):
    """Objectness + box deltas for A anchors per location on every feature level (shared weights).

    Args:
        in_channels: channels of every input map.
        anchor_sizes: one tuple of sizes per level (a flat tuple means one size per level).
        aspect_ratios: ratios (height / width) shared by every level, or one tuple per level.
        num_convs: 3x3 conv + ReLU layers before the two 1x1 predictors.
        fg_iou_thresh, bg_iou_thresh: anchor IoU >= fg is positive, < bg negative, between ignored
            (plus torchvision's low-quality matches).
        batch_size_per_image, positive_fraction: anchors sampled per image for the loss.
        pre_nms_top_n_*: proposals kept per level (and image) before NMS; ``*_train`` / ``*_test`` are
            chosen by ``predict(train=...)``.
        post_nms_top_n_*: proposals kept per image after NMS.
        nms_thr, score_thr, min_size: proposal filtering as torchvision's ``filter_proposals``.

    Raw output (``forward``): ``(objectness: list[Tensor[B,A,H_l,W_l]], deltas: list[Tensor[B,A*4,H_l,W_l]])``.
    Anchors are float32 whatever the feature dtype, and decoding runs in float32.

    State dict (same names as torchvision's ``rpn.head.*``): ``conv.{i}.0.{weight,bias}``,
    ``cls_logits.{weight,bias}``, ``bbox_pred.{weight,bias}``.
    """

    def __init__(
        self,
        in_channels: int = 256,
        anchor_sizes: Sequence = ((32,), (64,), (128,), (256,), (512,)),
        aspect_ratios: Sequence = (0.5, 1.0, 2.0),
        num_convs: int = 1,
        fg_iou_thresh: float = 0.7,
        bg_iou_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_top_n_train: int = 2000,
        post_nms_top_n_train: int = 2000,
        pre_nms_top_n_test: int = 1000,
        post_nms_top_n_test: int = 1000,
        nms_thr: float = 0.7,
        score_thr: float = 0.0,
        min_size: float = 1e-3,
    ):
        super().__init__()
        sizes = [tuple(s) if isinstance(s, (list, tuple)) else (s,) for s in anchor_sizes]
        if aspect_ratios and isinstance(aspect_ratios[0], (list, tuple)):
            ratios = [tuple(r) for r in aspect_ratios]
        else:
            ratios = [tuple(aspect_ratios)] * len(sizes)
        if len(ratios) != len(sizes):
            raise ValueError(f"RPNHead: {len(sizes)} anchor size tuples but {len(ratios)} aspect ratio tuples")
        counts = {len(s) * len(r) for s, r in zip(sizes, ratios)}
        if len(counts) != 1:
            raise ValueError(
                "RPNHead shares its convs across levels: every level needs the same number of "
                f"anchors (sizes x ratios), got {sorted(counts)}"
            )
        self.anchor_sizes, self.aspect_ratios = tuple(sizes), tuple(ratios)
        self.num_anchors = counts.pop()
        self.conv = nn.Sequential(
            *[Conv2dNormActivation(in_channels, in_channels, kernel_size=3, norm_layer=None) for _ in range(num_convs)]
        )
        self.cls_logits = nn.Conv2d(in_channels, self.num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(in_channels, self.num_anchors * 4, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.pre_nms_top_n = {"train": pre_nms_top_n_train, "test": pre_nms_top_n_test}
        self.post_nms_top_n = {"train": post_nms_top_n_train, "test": post_nms_top_n_test}
        self.nms_thr, self.score_thr, self.min_size = nms_thr, score_thr, min_size
        self.fused_inference = False  # conv + ReLU as one op without autograd (detectors turn it on)

    def forward(self, feats: list[Tensor]) -> Raw:
        """Objectness logits [B,A,H,W] and deltas [B,A*4,H,W] for every level."""
        if len(feats) != len(self.anchor_sizes):
            raise ValueError(
                f"RPNHead has anchor sizes for {len(self.anchor_sizes)} levels but got "
                f"{len(feats)} feature maps; set rpn_head.anchor_sizes to one tuple per level"
            )
        objectness, deltas = [], []
        fused = self.fused_inference and not torch.is_grad_enabled()
        for f in feats:
            if fused:  # each Conv2dNormActivation(conv, ReLU) as one op
                t = f
                for block in self.conv:
                    t = conv2d_act(t, block[0], relu=True)
            else:
                t = self.conv(f)
            objectness.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return objectness, deltas

    def anchors(self, feats: list[Tensor], batch_shape: Sequence[int]) -> list[Tensor]:
        """Per-level anchors Tensor[H_l*W_l*A, 4] (float32, shared by every image of the padded batch).

        ``batch_shape`` is the padded batch's ``(H, W)``; strides are ``H // H_l``, ``W // W_l`` (torchvision).
        While tracing for export the sizes are traced tensors: the anchors are built from them, uncached.
        """
        if torch.jit.is_tracing():
            h, w = batch_shape[0], batch_shape[1]
            return [
                grid_anchors(
                    base_anchors(sizes, ratios, torch.float32, f.device),
                    (f.shape[-2], f.shape[-1]),
                    (h // f.shape[-2], w // f.shape[-1]),
                )
                for f, sizes, ratios in zip(feats, self.anchor_sizes, self.aspect_ratios)
            ]
        sizes = [tuple(f.shape[-2:]) for f in feats]
        return make_anchors(
            sizes,
            anchor_strides(batch_shape, sizes),
            self.anchor_sizes,
            self.aspect_ratios,
            device=feats[0].device,
            dtype=torch.float32,
        )

    def candidates(
        self, raw: Raw, anchors: list[Tensor], image_sizes: Tensor, mode: str = "test"
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Decoded top anchors of every level, clipped to each image (batched, tensor-only).

        Per level the ``pre_nms_top_n[mode]`` best anchors by objectness are decoded and clipped to
        ``image_sizes`` int64 [B,2] (h, w); boxes smaller than ``min_size`` or scoring below ``score_thr``
        are marked invalid.

        Returns:
            boxes [B,K,4], scores [B,K] (sigmoid), levels int64 [B,K], valid bool [B,K].
        """
        objectness, deltas = raw
        boxes, logits, levels = [], [], []
        for lvl, (o, d, a) in enumerate(zip(objectness, deltas, anchors)):
            o = flat_objectness(o).float()  # [B, n]
            top, idx = o.topk(batched.topk_count(o.shape[1], self.pre_nms_top_n[mode]), dim=1)  # [B, k]
            boxes.append(self.box_coder.decode(take_deltas(d, idx).float(), a[idx]))  # [B, k, 4]
            logits.append(top)
            levels.append(torch.full_like(idx, lvl))
        boxes, scores, levels = torch.cat(boxes, 1), torch.cat(logits, 1).sigmoid(), torch.cat(levels, 1)
        boxes = batched.clip_to_sizes(
            boxes, batched.box_limits(image_sizes.to(boxes.device))[:, None, :]
        )  # each image, not the batch
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (wh >= self.min_size).all(-1) & (scores >= self.score_thr)  # [B, K]
        return boxes, scores, levels, valid

    def select(
        self, boxes: Tensor, scores: Tensor, levels: Tensor, valid: Tensor, mode: str = "test"
    ) -> tuple[Tensor, Tensor, Tensor]:
        """NMS per image and level, then the ``post_nms_top_n[mode]`` best of each image (batched).

        Args: the outputs of :meth:`candidates`.

        Returns:
            proposals [B,P,4] and scores [B,P] (score-descending, zero after the first ``counts[i]``),
            counts int64 [B]; P = ``post_nms_top_n[mode]``.
        """
        b, num_levels = boxes.shape[0], len(self.anchor_sizes)
        image = torch.arange(b, device=boxes.device)[:, None].expand_as(levels)
        flat = torch.where(valid.reshape(-1))[0]
        fb, fs = boxes.reshape(-1, 4)[flat], scores.reshape(-1)[flat]
        fi, fl = image.reshape(-1)[flat], levels.reshape(-1)[flat]
        keep = batched_nms(fb, fs, fi * num_levels + fl, self.nms_thr)  # score-descending
        k = self.post_nms_top_n[mode]
        sel, dest = batched.per_image_topk(fi[keep], b, k)
        keep = keep[sel]
        props, props_scores = batched.pad_per_image((fb[keep], fs[keep]), (0.0, 0.0), dest, b, k)
        return props, props_scores, batched.count_per_image(fi[keep], b)

    @torch.no_grad()
    def predict(
        self,
        raw: Raw,
        feats: list[Tensor],
        batch_shape: Sequence[int],
        image_sizes: Sequence[Sequence[int]],
        train: bool = False,
        with_scores: bool = False,
    ) -> list[Tensor] | tuple[list[Tensor], list[Tensor]]:
        """Proposals per image (detached), as torchvision's ``RegionProposalNetwork.filter_proposals``.

        Per level the ``pre_nms_top_n`` best anchors are decoded, clipped to ``image_sizes[i]`` (h, w),
        small and low-score boxes dropped, NMS run per level, and the ``post_nms_top_n`` best kept
        (:meth:`candidates`, then :meth:`select`).

        Returns:
            list of Tensor[K_i, 4] xyxy (score-descending); with ``with_scores`` also list of Tensor[K_i]
            sigmoid objectness.
        """
        mode = "train" if train else "test"
        sizes = batched.sizes_tensor(image_sizes, raw[0][0].device)
        props, scores, counts = self.select(*self.candidates(raw, self.anchors(feats, batch_shape), sizes, mode), mode)
        per_image = batched.unpad({"boxes": props, "scores": scores}, counts)
        boxes = [p["boxes"] for p in per_image]
        return (boxes, [p["scores"] for p in per_image]) if with_scores else boxes

    def loss(
        self,
        raw: Raw,
        feats: list[Tensor],
        batch_shape: Sequence[int],
        targets: list[dict],
        image_sizes: Sequence[Sequence[int]] | None = None,
        generators: Sequence[torch.Generator] | None = None,
        counts: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Sampled BCE objectness loss and smooth-L1 (beta 1/9) box loss, both over the sampled anchors.

        Args:
            targets: per image a dict with ``boxes`` Tensor[M_i, 4] (M_i may be 0: all anchors negative).
            image_sizes: unused (torchvision keeps anchors that cross the image border); for API symmetry.
            generators: one ``torch.Generator`` per image for the anchor sampling (default: torch's RNG).
            counts: when given, receives per loss key the number of sampled anchors the loss is divided
                by (``detkit.ops.global_batch.global_mean_losses``).

        Returns:
            ``{'rpn/cls': Tensor[], 'rpn/box': Tensor[]}``.
        """
        objectness, deltas = raw
        anchors = torch.cat(self.anchors(feats, batch_shape))  # [N, 4]
        obj = at_least_float32(torch.cat([flat_objectness(o) for o in objectness], 1))  # [B, N]
        dlt = at_least_float32(torch.cat([flat_deltas(d) for d in deltas], 1))  # [B, N, 4]
        labels, matches, gt = self.assign(anchors, [t["boxes"] for t in targets])
        pos, neg = sample_pos_neg(labels, self.batch_size_per_image, self.positive_fraction, generators)
        sampled = pos | neg
        num_sampled = sampled.sum().clamp(min=1)
        if counts is not None:
            counts["rpn/cls"] = counts["rpn/box"] = sampled.sum()
        img, anchor = pos.nonzero(as_tuple=True)  # only the sampled positives need targets
        reg_targets = self.box_coder.encode(gt[img, matches[img, anchor]], anchors[anchor])
        box_loss = (
            F.smooth_l1_loss(dlt[img, anchor], reg_targets.to(dlt.dtype), beta=1 / 9, reduction="sum") / num_sampled
        )
        # a 0/1 weight instead of boolean indexing: no host sync on GPU
        cls_loss = (
            F.binary_cross_entropy_with_logits(obj, pos.to(obj.dtype), weight=sampled.to(obj.dtype), reduction="sum")
            / num_sampled
        )
        return {"rpn/cls": cls_loss, "rpn/box": box_loss}

    @torch.no_grad()
    def assign(self, anchors: Tensor, gt_boxes: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Label anchors for every image at once (torchvision's ``assign_targets_to_anchors``).

        Args:
            anchors: Tensor[N, 4]; gt_boxes: per image Tensor[M_i, 4].

        Returns:
            labels int64 [B, N] (1 positive, 0 negative, -1 ignored), matched gt index int64 [B, N]
            (negative where unmatched) and the gts padded to float [B, max M_i, 4].
        """
        batch, n = len(gt_boxes), anchors.shape[0]
        gts = [g.to(device=anchors.device, dtype=anchors.dtype).reshape(-1, 4) for g in gt_boxes]
        m_max = max((len(g) for g in gts), default=0)
        if m_max == 0:
            return (
                anchors.new_zeros((batch, n), dtype=torch.int64),
                anchors.new_full((batch, n), Matcher.BELOW_LOW_THRESHOLD, dtype=torch.int64),
                anchors.new_zeros((batch, 0, 4)),
            )
        lengths = [len(g) for g in gts]
        counts = torch.tensor(lengths, device=anchors.device)
        flat = torch.cat(gts)  # [sum M, 4]
        img = torch.repeat_interleave(torch.arange(batch, device=anchors.device), counts, output_size=len(flat))
        slot = torch.arange(len(flat), device=anchors.device) - (torch.cumsum(counts, 0) - counts)[img]
        valid = torch.zeros((batch, m_max), dtype=torch.bool, device=anchors.device)
        valid[img, slot] = True
        padded = anchors.new_zeros((batch, m_max, 4))
        padded[img, slot] = flat
        if min(lengths) == m_max:  # no padding: IoU straight into the batch layout
            quality = box_iou(flat, anchors).view(batch, m_max, n)
        else:
            quality = anchors.new_empty((batch, m_max, n))  # the matcher ignores the padded rows
            quality[img, slot] = box_iou(flat, anchors)
        matches = self.matcher(quality, valid)  # [B, N]
        labels = torch.where(matches == Matcher.BETWEEN_THRESHOLDS, -1, (matches >= 0).to(torch.int64))
        return labels, matches, padded
