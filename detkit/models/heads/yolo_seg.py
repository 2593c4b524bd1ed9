"""YOLO instance segmentation head: a YOLOHead plus prototype masks and per-anchor mask coefficients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.blocks import ConvBNAct
from detkit.models.heads.yolo import YOLOHead
from detkit.ops.batched import sizes_tensor, unpad
from detkit.ops.points import maps_to_anchors
from detkit.registry import HEADS


def crop_to_boxes(masks: Tensor, boxes: Tensor) -> Tensor:
    """Zero ``masks`` [N,H,W] outside ``boxes`` [N,4] (xyxy in the masks' pixels)."""
    _, h, w = masks.shape
    x1, y1, x2, y2 = boxes[:, :, None, None].unbind(1)  # each [N,1,1]
    cols = torch.arange(w, device=masks.device, dtype=boxes.dtype)[None, None, :]
    rows = torch.arange(h, device=masks.device, dtype=boxes.dtype)[None, :, None]
    return masks * ((cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2))


@HEADS.register
class YOLOSegHead(nn.Module):
    """Detection head + prototype net (on the stride-8 map, upsampled to stride 4) + mask coefficients.

    Args:
        num_classes, in_channels, strides: as :class:`YOLOHead`; further YOLOHead options in ``det``.
        num_protos: prototype masks (and coefficients per anchor); proto_channels: prototype net width.
        loss_mask: weight of the mask BCE (cropped to each box, averaged over the box area).
        det: extra keyword arguments of the inner :class:`YOLOHead`.

    ``forward(feats) -> (det_raw list, coef list of [B,K,H_l,W_l], protos [B,K,H/4,W/4])``.
    ``loss(raw, targets)`` adds ``yolo/mask`` (targets need ``masks`` [N,H,W] at the input size);
    ``predict(raw, image_sizes)`` adds ``masks`` float [N,H,W] probabilities at the padded input size.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int],
        strides: Sequence[int] = (8, 16, 32),
        num_protos: int = 32,
        proto_channels: int = 256,
        loss_mask: float = 7.5,
        det: dict | None = None,
    ):
        super().__init__()
        self.det = YOLOHead(num_classes, in_channels, strides, **(det or {}))
        self.num_classes = self.det.num_classes
        self.num_protos = int(num_protos)
        c_coef = max(in_channels[0] // 4, self.num_protos)
        self.coef_branch = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_coef, 3), ConvBNAct(c_coef, c_coef, 3), nn.Conv2d(c_coef, self.num_protos, 1))
            for c in in_channels
        )
        self.proto = nn.Sequential(
            ConvBNAct(in_channels[0], proto_channels, 3),
            nn.ConvTranspose2d(proto_channels, proto_channels, 2, 2),
            ConvBNAct(proto_channels, proto_channels, 3),
            ConvBNAct(proto_channels, self.num_protos, 1),
        )
        self.loss_mask = float(loss_mask)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], Tensor]:
        return self.det(feats), [c(x) for x, c in zip(feats, self.coef_branch)], self.proto(feats[0])

    @staticmethod
    def coefficients(coef: Sequence[Tensor]) -> Tensor:
        """Mask coefficients per anchor [B,A,P] from the per-level maps [B,P,H_l,W_l] (anchor order of YOLOHead)."""
        return maps_to_anchors(coef)

    def loss(self, raw: tuple, targets: Sequence[dict], counts: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Detection losses plus ``yolo/mask``: BCE of each foreground anchor's mask against its object's.

        ``counts``, when given, receives each loss's normaliser (``YOLOHead.loss``; ``yolo/mask``: the
        foreground anchors).
        """
        det_raw, coef, protos = raw
        assignment, pred = self.det.assign(det_raw, targets)
        losses = self.det.loss(det_raw, targets, assignment, pred, counts)
        coefs = self.coefficients(coef)
        ph, pw = protos.shape[-2:]
        stride = self.det.strides[0] / 2.0  # proto pixels
        total, count = protos.sum() * 0.0, 0
        # each image's foreground anchors from one nonzero (a GPU waits for the host once, not per masked gather)
        fg_image, fg_anchor = assignment.fg.nonzero(as_tuple=True)
        per_image = fg_anchor.split(torch.bincount(fg_image, minlength=len(targets)).tolist())
        for i, (t, fg) in enumerate(zip(targets, per_image)):
            if not len(fg):
                continue
            if "masks" not in t:
                raise ValueError(
                    "YOLOSegHead needs instance masks in the targets: build the dataset with with_masks=True"
                )
            gt_masks = t["masks"].to(protos.device)
            if gt_masks.shape[-2:] != (ph, pw):  # input size -> proto size
                gt_masks = F.interpolate(gt_masks[None].float(), size=(ph, pw), mode="bilinear", align_corners=False)[0]
            idx = assignment.gt_index[i][fg]
            target = (gt_masks[idx] > 0.5).float()  # [P,ph,pw]
            logits = torch.einsum("pk,khw->phw", coefs[i][fg].float(), protos[i].float())
            boxes = assignment.boxes[i][fg] / stride
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1.0)
            total = total + (crop_to_boxes(bce, boxes).sum((1, 2)) / area).sum()
            count += len(fg)
        if counts is not None:
            counts["yolo/mask"] = count
        losses["yolo/mask"] = total / max(count, 1) * self.loss_mask
        return losses

    @staticmethod
    def proto_logits(coefs: Tensor, protos: Tensor, index: Tensor) -> Tensor:
        """Mask logits [B,K,h,w] at the prototype size: coefficients [B,A,P] of anchors ``index`` [B,K] x protos."""
        picked = coefs.gather(1, index[..., None].expand(-1, -1, coefs.shape[-1]))  # [B,K,P]
        return torch.einsum("bkp,bphw->bkhw", picked.float(), protos.float())

    def masks(self, logits: Tensor, boxes: Tensor) -> Tensor:
        """Probabilities [N,H,W] at the input size (4x the prototypes) from logits [N,h,w], cropped to boxes [N,4]."""
        h, w = logits.shape[-2] * 4, logits.shape[-1] * 4
        probs = crop_to_boxes(logits.sigmoid(), boxes / (self.det.strides[0] / 2.0))
        if probs.shape[0] == 0:
            return probs.new_zeros((0, h, w))
        return F.interpolate(probs[None], size=(h, w), mode="bilinear", align_corners=False)[0]

    @torch.no_grad()
    def predict(
        self,
        raw: tuple,
        image_sizes: Sequence[Sequence[int]],
        score_thr: float | None = None,
        nms_thr: float | None = None,
        max_per_img: int | None = None,
    ) -> list[dict[str, Tensor]]:
        """Detections (``YOLOHead.predict``) plus ``masks``: probabilities [N,H,W] at the padded input size."""
        det_raw, coef, protos = raw
        sizes = sizes_tensor(image_sizes, protos.device)
        dets, counts = self.det.select(*self.det.dense(det_raw, sizes), sizes, score_thr, nms_thr, max_per_img)
        filled = torch.arange(dets["index"].shape[1], device=protos.device)[None, :] < counts[:, None]  # [B,K]
        logits = self.proto_logits(self.coefficients(coef), protos, dets["index"])[
            filled
        ]  # [N,h,w], only the filled slots
        per_image = unpad(dets, counts)
        for d, m in zip(per_image, self.masks(logits, dets["boxes"][filled]).split(counts.tolist())):
            d["masks"] = m
        return per_image
