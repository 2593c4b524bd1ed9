"""YOLO-style anchor-free decoupled head: DFL box sides, CIoU loss, BCE classes, task-aligned assignment."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss

from detkit.models.blocks import ConvBNAct
from detkit.models.heads.class_weight import class_weight_tensor
from detkit.models.losses.bce import bce_with_logits_one_hot
from detkit.models.losses.dfl import distribution_focal_loss
from detkit.ops import batched
from detkit.ops.global_batch import at_least_float32
from detkit.ops.points import anchor_points, boxes_to_distance, distance_to_boxes, maps_to_anchors
from detkit.ops.tal import Assignment, task_aligned_assign
from detkit.registry import HEADS
from detkit.utils.amp import autocast_off


def pad_targets(targets: Sequence[dict], device) -> tuple[Tensor, Tensor, Tensor]:
    """Stack per-image ``labels``/``boxes`` into padded ``labels`` [B,G], ``boxes`` [B,G,4], ``valid`` [B,G]."""
    g = max((len(t["labels"]) for t in targets), default=0)
    b = len(targets)
    labels = torch.zeros(b, g, dtype=torch.long, device=device)
    boxes = torch.zeros(b, g, 4, dtype=torch.float32, device=device)
    valid = torch.zeros(b, g, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        n = len(t["labels"])
        if n:
            labels[i, :n] = t["labels"].to(device)
            boxes[i, :n] = t["boxes"].to(device, torch.float32)
            valid[i, :n] = True
    return labels, boxes, valid


@HEADS.register
class YOLOHead(nn.Module):
    """Decoupled head over L levels: a box branch (4 x ``reg_max`` bins) and a class branch per level.

    Args:
        num_classes: C; in_channels: channels of the L input maps; strides: their strides.
        reg_max: bins of the distribution over each box side (in stride units, 0..reg_max-1).
        loss_box, loss_cls, loss_dfl: loss weights (YOLOv8: 7.5, 0.5, 1.5).
        topk, alpha, beta: task-aligned assigner parameters.
        score_thr, nms_thr, max_per_img, nms_pre: test settings (candidates above ``score_thr``, at most
            ``nms_pre`` per image, class-aware NMS, ``max_per_img`` kept).

    ``forward(feats) -> list`` of L tensors [B, 4*reg_max + C, H_l, W_l] (box bins first).
    ``loss(raw, targets) -> {'yolo/box', 'yolo/cls', 'yolo/dfl'}``; ``predict(raw, image_sizes)`` ->
    per image ``boxes`` [N,4] (input pixels), ``scores`` [N], ``labels`` [N], ``index`` [N] (anchor index).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int],
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int = 16,
        loss_box: float = 7.5,
        loss_cls: float = 0.5,
        loss_dfl: float = 1.5,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        score_thr: float = 0.001,
        nms_thr: float = 0.7,
        max_per_img: int = 300,
        nms_pre: int = 30000,
        class_weight: Sequence[float] | None = None,
    ):
        super().__init__()
        self.num_classes, self.reg_max = int(num_classes), int(reg_max)
        weight = class_weight_tensor(class_weight, self.num_classes, "YOLOHead")
        self.register_buffer("class_weight", weight, persistent=False)  # [C] of the class BCE terms
        self.strides = [int(s) for s in strides]
        in_channels = [int(c) for c in in_channels]
        if len(in_channels) != len(self.strides):
            raise ValueError(f"YOLOHead: {len(in_channels)} in_channels for {len(self.strides)} strides")
        c_box = max(16, in_channels[0] // 4, 4 * self.reg_max)
        c_cls = max(in_channels[0], min(self.num_classes, 100))
        self.box_branch = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_box, 3), ConvBNAct(c_box, c_box, 3), nn.Conv2d(c_box, 4 * self.reg_max, 1))
            for c in in_channels
        )
        self.cls_branch = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_cls, 3), ConvBNAct(c_cls, c_cls, 3), nn.Conv2d(c_cls, self.num_classes, 1))
            for c in in_channels
        )
        self.register_buffer("proj", torch.arange(self.reg_max, dtype=torch.float32), persistent=False)
        self.weights = {"box": float(loss_box), "cls": float(loss_cls), "dfl": float(loss_dfl)}
        self.assigner = dict(topk=int(topk), alpha=float(alpha), beta=float(beta))
        self.test_cfg = dict(
            score_thr=float(score_thr), nms_thr=float(nms_thr), max_per_img=int(max_per_img), nms_pre=int(nms_pre)
        )
        self.init_bias()

    def init_bias(self, image_size: int = 640) -> None:
        """Box bins start flat-ish (bias 1); class logits start at a prior of ~5 objects per image."""
        for box, cls, s in zip(self.box_branch, self.cls_branch, self.strides):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.num_classes / (image_size / s) ** 2))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        return [torch.cat([b(x), c(x)], 1) for x, b, c in zip(feats, self.box_branch, self.cls_branch)]

    def flatten(self, raw: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per-anchor box bins [B,A,4*R], class logits [B,A,C], anchor points [A,2] and strides [A,1]."""
        shapes = [tuple(r.shape[-2:]) for r in raw]
        # two tensors, not one [B,A,4R+C] split in two: at 8x640 that one is 37 MiB, above glibc's largest mmap
        # threshold (32 MiB), so it and its gradient were fresh pages (page faults) in every training step
        box_maps, cls_maps = zip(*(r.split([4 * self.reg_max, self.num_classes], 1) for r in raw))
        bins, logits = maps_to_anchors(box_maps), maps_to_anchors(cls_maps)  # [B,A,4R], [B,A,C]
        points, strides = anchor_points(shapes, self.strides, raw[0].device, torch.float32)
        return bins, logits, points, strides

    def decode(self, bins: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        """Boxes xyxy pixels [B,A,4] from bins [B,A,4R]: expected bin of each side, times the stride.

        From NCHW maps the softmax runs over the bins in the [B,4,R,A] layout that :meth:`flatten`'s bins are
        a view of (no copy; anchors innermost, so both it and the expectation, one matmul with ``proj``,
        vectorise over anchors; a softmax over 16 strided values per row took ten times as long on a CPU).
        From channels_last maps the bins are contiguous [B,A,4R] rows: softmax over each side's 16 contiguous
        bins, then a matrix-vector product (fwd + bwd 5-7 ms against 11-12.5 ms via a [B,4,R,A] copy, at 8x640;
        equal up to float rounding, 4e-6 strides). The matmul
        stays in float32 under autocast: in bf16 a side of 8-16 strides is rounded to 1/16 of a stride (2 px at
        stride 32), which the box loss would see as error.
        """
        b, a, _ = bins.shape
        bins = at_least_float32(bins)
        proj = self.proj.to(bins.dtype)
        with autocast_off(bins.device.type):
            if bins.is_contiguous():  # from channels_last maps (CPU training): [B,A,4,R] rows
                dist = bins.view(b, a, 4, self.reg_max).softmax(-1) @ proj  # [B,A,4] in strides
            else:  # a view of [B,4,R,A]
                dist = (proj @ bins.transpose(1, 2).reshape(b, 4, self.reg_max, a).softmax(2)).transpose(1, 2)
        return distance_to_boxes(points / strides, dist) * strides

    def assign(self, raw: Sequence[Tensor], targets: Sequence[dict]) -> tuple[Assignment, dict]:
        """Task-aligned assignment of a batch; also returns the flattened predictions used by the losses."""
        bins, logits, points, strides = self.flatten(raw)
        # NCHW maps: one copy into a contiguous [B,A,C] (as Ultralytics makes it): the sigmoid, the BCE and its
        # backward then run over contiguous rows, about a fifth faster on a CPU than over the strided view of
        # [B,C,A]. From channels_last maps the logits are a contiguous [B,A,C] already (no copy).
        logits = logits.contiguous()
        boxes = self.decode(bins, points, strides)
        gt_labels, gt_boxes, gt_valid = pad_targets(targets, logits.device)
        # the sigmoid of the ground truths' classes only ([B,A,G]), not of every [B,A,C] logit
        assignment = task_aligned_assign(
            logits.detach(), boxes.detach(), points, gt_labels, gt_boxes, gt_valid, **self.assigner, logits=True
        )
        return assignment, dict(bins=bins, logits=logits, boxes=boxes, points=points, strides=strides)

    def loss(
        self,
        raw: Sequence[Tensor],
        targets: Sequence[dict],
        assignment: Assignment | None = None,
        pred: dict | None = None,
        counts: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Weighted CIoU, BCE and DFL losses, each normalised by the sum of the soft targets.

        ``counts``, when given, receives per loss key that sum (the normaliser before its clamp to 1;
        ``detkit.ops.global_batch.global_mean_losses``).
        """
        if assignment is None or pred is None:
            assignment, pred = self.assign(raw, targets)
        logits = at_least_float32(pred["logits"])
        score_sum = assignment.score.sum()
        if counts is not None:
            counts.update(dict.fromkeys(("yolo/box", "yolo/cls", "yolo/dfl"), score_sum))
        norm = score_sum.clamp(min=1.0)
        # BCE against the [B,A,C] soft one-hot targets, without making them (detkit.models.losses.bce)
        cls = bce_with_logits_one_hot(logits, assignment.labels, assignment.score, self.class_weight) / norm
        # the foreground's (image, anchor) indices once: one host sync on a GPU, not one per masked gather
        fg = assignment.fg.nonzero(as_tuple=True)  # ([P], [P]), in the mask's row-major order
        if fg[0].numel():
            weight = assignment.score[fg]  # [P]
            box = (
                complete_box_iou_loss(pred["boxes"][fg], assignment.boxes[fg], reduction="none") * weight
            ).sum() / norm
            strides = pred["strides"][fg[1]]  # [P,1] (points and strides are per anchor: [A,2], [A,1])
            points = pred["points"][fg[1]] / strides
            target = boxes_to_distance(points, assignment.boxes[fg] / strides, self.reg_max - 1 - 0.01)
            bins = at_least_float32(pred["bins"][fg]).view(-1, self.reg_max)  # [P*4,R]
            dfl = distribution_focal_loss(bins, target.reshape(-1)).view(-1, 4).mean(-1)
            dfl = (dfl * weight).sum() / norm
        else:
            box = dfl = pred["bins"].sum() * 0.0
        return {
            "yolo/box": box * self.weights["box"],
            "yolo/cls": cls * self.weights["cls"],
            "yolo/dfl": dfl * self.weights["dfl"],
        }

    def dense(self, raw: Sequence[Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes [B,A,4] clipped to each image (``image_sizes`` int64 [B,2] (h, w)) and class scores [B,A,C]."""
        bins, logits, points, strides = self.flatten(raw)
        boxes = self.decode(bins, points, strides)
        return batched.clip_to_sizes(
            boxes, batched.box_limits(image_sizes.to(boxes.device))[:, None, :]
        ), at_least_float32(logits).sigmoid()  # the boxes' dtype: float64 models give float64 both

    @torch.no_grad()
    def predict(
        self,
        raw: Sequence[Tensor],
        image_sizes: Sequence[Sequence[int]],
        score_thr: float | None = None,
        nms_thr: float | None = None,
        max_per_img: int | None = None,
    ) -> list[dict[str, Tensor]]:
        """Class-aware NMS over candidates (anchor, class) above ``score_thr``; boxes clipped to the image.

        :meth:`dense`, then :meth:`select`; per image ``boxes``, ``scores``, ``labels`` and ``index`` (anchor).
        """
        sizes = batched.sizes_tensor(image_sizes, raw[0].device)
        dets, counts = self.select(*self.dense(raw, sizes), sizes, score_thr, nms_thr, max_per_img)
        return batched.unpad(dets, counts)

    def select(
        self,
        boxes: Tensor,
        scores: Tensor,
        image_sizes: Tensor,
        score_thr: float | None = None,
        nms_thr: float | None = None,
        max_per_img: int | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Detections from clipped boxes [B,A,4] and class scores [B,A,C] (batched, tensor-only).

        Candidates (anchor, class) above ``score_thr`` (several classes per anchor), the ``nms_pre`` best
        of each image, class-aware NMS per image, the ``max_per_img`` best of each image.

        Returns:
            padded ``{'boxes': [B,K,4], 'scores': [B,K], 'labels': int64 [B,K] (-1 when empty), 'index':
            int64 [B,K] (anchor)}``, score-descending, and counts int64 [B].
        """
        cfg = self.test_cfg
        thr = cfg["score_thr"] if score_thr is None else float(score_thr)
        k = cfg["max_per_img"] if max_per_img is None else int(max_per_img)
        b = scores.shape[0]
        image, anchor, label = torch.where(scores > thr)
        cand = scores[image, anchor, label]
        # ties keep (image, anchor, class) order; ONNX has no stable sort (ties may order differently there).
        # Eagerly only each image's nms_pre best are sorted (a top-k first: the same items in the same order)
        if torch.jit.is_tracing():
            order = cand.argsort(descending=True)
        else:
            order = batched.sorted_top_per_image(cand, image, b, cfg["nms_pre"])
        image, anchor, label, cand = image[order], anchor[order], label[order], cand[order]
        sel, _ = batched.per_image_topk(image, b, cfg["nms_pre"])
        image, anchor, label, cand = image[sel], anchor[sel], label[sel], cand[sel]
        cand_boxes = boxes[image, anchor]
        # class-aware NMS: classes shifted apart along x and y (as torchvision's batched_nms does for small inputs;
        # its per-class loop for large ones is slower here), images further along y
        span = image_sizes.max().to(cand_boxes.dtype) + 1.0
        dx, dy = label.to(cand_boxes.dtype) * span, (label + image).to(cand_boxes.dtype) * span
        shifted = cand_boxes + torch.stack([dx, dy, dx, dy], 1)
        keep = batched.nms_by_image(shifted, cand, image, b, cfg["nms_thr"] if nms_thr is None else nms_thr, k)
        sel, dest = batched.per_image_topk(image[keep], b, k)
        keep = keep[sel]
        values = (cand_boxes[keep], cand[keep], label[keep], anchor[keep])
        out = batched.pad_per_image(values, (0.0, 0.0, -1, 0), dest, b, k)
        return dict(zip(("boxes", "scores", "labels", "index"), out)), batched.count_per_image(image[keep], b)
