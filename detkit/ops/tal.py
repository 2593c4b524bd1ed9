"""Task-aligned assignment (TOOD / YOLOv8): anchors chosen by score^alpha * IoU^beta among those inside a box."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import complete_box_iou_loss


@dataclass
class Assignment:
    """Result of :func:`task_aligned_assign` for a batch of B images and A anchors.

    Attributes:
        labels: int64 [B,A] assigned class (meaningful where ``fg``).
        boxes: float [B,A,4] assigned ground-truth box, xyxy pixels.
        score: float [B,A] soft classification target of the assigned class (normalised alignment; 0 on
            background): the one non-zero entry of each anchor's row of :attr:`scores`.
        fg: bool [B,A] foreground anchors.
        gt_index: int64 [B,A] index of the assigned ground truth in the image's list.
        num_classes: C.
    """

    labels: Tensor
    boxes: Tensor
    score: Tensor
    fg: Tensor
    gt_index: Tensor
    num_classes: int

    @property
    def scores(self) -> Tensor:
        """float [B,A,C] soft classification targets: :attr:`score` in the assigned class, 0 elsewhere (made on
        each access; the YOLO loss uses ``labels`` and ``score`` without it)."""
        out = self.score.new_zeros(*self.score.shape, self.num_classes)
        return out.scatter_(-1, self.labels[..., None], self.score[..., None])


def points_in_boxes(points: Tensor, boxes: Tensor, eps: float = 1e-9) -> Tensor:
    """bool [B,G,A]: anchor centre ``points`` [A,2] strictly inside ``boxes`` [B,G,4]."""
    x, y = points[:, 0], points[:, 1]
    b = boxes[..., None, :]  # [B,G,1,4]
    # the smallest of the four distances to the sides, without a [B,G,A,4] stack
    left_top = torch.minimum(x - b[..., 0], y - b[..., 1])  # [B,G,A]
    return torch.minimum(left_top, torch.minimum(b[..., 2] - x, b[..., 3] - y)) > eps


def pair_ciou(gt: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
    """CIoU [B,G,A] of every (gt, anchor's predicted box) pair where ``mask``, clamped at 0; 0 elsewhere."""
    out = gt.new_zeros(mask.shape)
    b, g, a = mask.nonzero(as_tuple=True)
    if b.numel():
        ciou = 1.0 - complete_box_iou_loss(gt[b, g], pred[b, a], reduction="none")
        out[b, g, a] = ciou.clamp(min=0).to(out.dtype)
    return out


@torch.no_grad()
def task_aligned_assign(
    pred_scores: Tensor,
    pred_boxes: Tensor,
    points: Tensor,
    gt_labels: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    eps: float = 1e-9,
    logits: bool = False,
) -> Assignment:
    """Assign anchors to ground truths by the task-aligned metric ``s^alpha * CIoU^beta``.

    For each ground truth the ``topk`` anchors with the highest metric among those whose centre lies
    inside it become candidates; an anchor claimed by several keeps the one it overlaps most. Soft
    targets are the metric normalised per ground truth so that its best anchor gets its best IoU.

    Args:
        pred_scores: [B,A,C] class probabilities (after sigmoid), or logits with ``logits=True``: the sigmoid
            is then taken of the [B,A,G] entries of the ground truths' classes alone.
        pred_boxes: [B,A,4] predicted boxes, xyxy pixels.
        points: [A,2] anchor centres in pixels.
        gt_labels: int64 [B,G] (padded); gt_boxes: [B,G,4] xyxy pixels; gt_valid: bool [B,G] real entries.
        topk, alpha, beta: the metric's parameters (YOLOv8: 10, 0.5, 6.0).

    Returns:
        :class:`Assignment`.
    """
    bsz, num_anchors, num_classes = pred_scores.shape
    num_gt = gt_boxes.shape[1]
    device = pred_scores.device
    if num_gt == 0:
        zeros = torch.zeros(bsz, num_anchors, dtype=torch.long, device=device)
        score = pred_scores.new_zeros(bsz, num_anchors)
        return Assignment(zeros, pred_boxes.new_zeros(bsz, num_anchors, 4), score, zeros.bool(), zeros, num_classes)
    gt_labels = gt_labels.long().clamp(0, num_classes - 1)
    candidates = points_in_boxes(points, gt_boxes) & gt_valid[..., None]  # [B,G,A]
    overlaps = pair_ciou(gt_boxes.float(), pred_boxes.float(), candidates)  # [B,G,A]
    cls_scores = pred_scores.float().gather(2, gt_labels[:, None, :].expand(-1, num_anchors, -1))  # [B,A,G]
    if logits:
        cls_scores = cls_scores.sigmoid()
    align = cls_scores.transpose(1, 2).pow(alpha) * overlaps.pow(beta) * candidates  # [B,G,A]
    pos = select_positives(align, overlaps, candidates, topk)  # [B,G,A]
    fg = pos.any(1)  # [B,A]
    gt_index = pos.to(torch.uint8).max(1).indices  # [B,A] (argmax over a middle dim is ~15x slower on a CPU)

    labels = gt_labels.gather(1, gt_index)  # [B,A]
    boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))  # [B,A,4]
    # the assigned ground truth's normalised metric, align * (its best IoU / its best align), per anchor [B,A]
    best_overlap = (overlaps * pos).amax(-1)  # [B,G]
    best_align = (align * pos).amax(-1)  # [B,G]
    picked = align.gather(1, gt_index[:, None, :])[:, 0]  # [B,A]
    norm = picked * best_overlap.gather(1, gt_index) / (best_align.gather(1, gt_index) + eps) * fg
    # no [B,A,C] tensor: the target is the normalised metric in the assigned class (Assignment.scores makes it)
    return Assignment(labels, boxes, norm.to(pred_scores.dtype), fg, gt_index, num_classes)


def select_positives(align: Tensor, overlaps: Tensor, candidates: Tensor, topk: int) -> Tensor:
    """bool [B,G,A]: each ground truth's ``topk`` best-aligned candidates; an anchor claimed by several keeps
    the ground truth it overlaps most."""
    k = min(topk, align.shape[-1])
    top_idx = align.topk(k, dim=-1).indices  # [B,G,k]
    in_topk = torch.zeros_like(candidates).scatter_(-1, top_idx, True)
    pos = in_topk & candidates  # [B,G,A]

    multi = pos.sum(1) > 1  # [B,A]
    if multi.any():
        best = overlaps.max(1).indices  # [B,A], the first of equal maxima as argmax
        best_onehot = torch.zeros_like(pos).scatter_(1, best[:, None, :], True)
        pos = torch.where(multi[:, None, :], best_onehot & candidates, pos)
    return pos
