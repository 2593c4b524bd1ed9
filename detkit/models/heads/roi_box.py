"""Fast R-CNN RoI box head: multi-scale RoIAlign, 2fc or 4conv1fc, class-specific box regression.

Class logits are ``[R, C+1]`` with the background LAST (index C, as MMDetection / Detectron2); box
deltas are ``[R, C*4]`` (no background deltas). Labels at the API are 0..C-1; sampled labels use
``C`` for background.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from detkit.models.heads.class_weight import class_weight_tensor, weight_of_labels
from detkit.models.norms import build_norm
from detkit.ops import batched
from detkit.ops.box_coder import BoxCoder
from detkit.ops.global_batch import at_least_float32, canonical_box_order
from detkit.ops.matcher import Matcher
from detkit.ops.roi_pool import boxes_to_rois, multiscale_roi_align
from detkit.ops.sampler import sample_pos_neg
from detkit.registry import HEADS


def conv_block(in_ch: int, out_ch: int, norm: str | None = None, dilation: int = 1) -> nn.Sequential:
    """3x3 conv (+ norm) + ReLU, laid out as torchvision's Conv2dNormActivation (``0`` conv, ``1`` norm)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=not norm)]
    if norm:
        layers.append(build_norm(norm, out_ch, owner="RoI head norm"))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@HEADS.register
class RoIBoxHead(nn.Module):
    """Second-stage box classifier and class-specific regressor on RoIAligned FPN features.

    Args:
        num_classes: C foreground classes.
        in_channels: channels of the feature maps.
        featmap_strides: strides of the maps used for pooling (the first ``len`` maps of the neck).
        roi_output_size, sampling_ratio: RoIAlign settings.
        head: '2fc' (torchvision's TwoMLPHead) or '4conv1fc' (FastRCNNConvFCHead).
        representation_size: width of the fully connected layers.
        conv_channels, norm: conv width and normalisation ('BN', 'GN' or None) for '4conv1fc'.
        fg_iou_thresh, bg_iou_thresh: proposal matching thresholds.
        batch_size_per_image, positive_fraction: RoI sampling.
        bbox_reg_weights: BoxCoder weights.
        score_thr, nms_thr, max_per_img: test settings (overridable in ``predict``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        featmap_strides: Sequence[int] = (4, 8, 16, 32),
        roi_output_size: int = 7,
        sampling_ratio: int = 2,
        head: str = "2fc",
        representation_size: int = 1024,
        conv_channels: int = 256,
        norm: str | None = None,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.5,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        bbox_reg_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        score_thr: float = 0.05,
        nms_thr: float = 0.5,
        max_per_img: int = 100,
        class_weight: Sequence[float] | None = None,
    ):
        super().__init__()
        if head not in ("2fc", "4conv1fc"):
            raise ValueError(f"RoIBoxHead head must be '2fc' or '4conv1fc', got {head!r}")
        self.num_classes = int(num_classes)
        weight = class_weight_tensor(class_weight, self.num_classes, "RoIBoxHead")
        self.register_buffer("class_weight", weight, persistent=False)  # [C] of roi/cls (background: 1)
        self.featmap_strides = tuple(int(s) for s in featmap_strides)
        self.roi_output_size, self.sampling_ratio = int(roi_output_size), int(sampling_ratio)
        convs, ch = [], in_channels
        if head == "4conv1fc":
            for _ in range(4):
                convs.append(conv_block(ch, conv_channels, norm))
                ch = conv_channels
        self.convs = nn.Sequential(*convs)
        dims = [ch * roi_output_size**2] + [representation_size] * (2 if head == "2fc" else 1)
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.cls_score = nn.Linear(representation_size, self.num_classes + 1)
        self.bbox_pred = nn.Linear(representation_size, self.num_classes * 4)
        for m in self.convs.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

        self.box_coder = BoxCoder(bbox_reg_weights)
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.score_thr = float(score_thr)
        self.nms_thr = float(nms_thr)
        self.max_per_img = int(max_per_img)

    @torch.no_grad()
    def sample(
        self, proposals: list[Tensor], targets: list[dict], generators: Sequence[torch.Generator] | None = None
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """Add gt boxes to the proposals, match them to the gt and sample a balanced subset per image.

        Args:
            proposals: per image Tensor[P_i,4] xyxy (input-image pixels).
            targets: per image dict with ``boxes`` float [N_i,4] and ``labels`` int64 [N_i] (0..C-1).
            generators: one ``torch.Generator`` per image for the sampling (default: torch's RNG); with
                them, the proposals are first put in a canonical order, so the subset depends on their set.

        Returns:
            proposals [S_i,4], labels int64 [S_i] (0..C-1, C = background), regression_targets [S_i,4],
            matched_idxs int64 [S_i] (index of the matched gt; 0 for background) -- lists per image.
        """
        out_p, out_l, out_t, out_m = [], [], [], []
        for i, (props, tgt) in enumerate(zip(proposals, targets)):
            gt = tgt["boxes"].to(device=props.device, dtype=props.dtype)
            gt_labels = tgt["labels"].to(device=props.device, dtype=torch.int64)
            props = torch.cat([props, gt])  # [P+N,4]
            if generators is not None:  # per-image draws: a subset independent of the proposals' order
                props = props[canonical_box_order(props)]
            if gt.shape[0] == 0:
                matched = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                labels = torch.full_like(matched, self.num_classes)
                gt = props.new_zeros((1, 4))
            else:
                m = self.matcher(box_iou(gt, props))  # [P+N]
                matched = m.clamp(min=0)
                labels = gt_labels[matched]
                labels[m == Matcher.BELOW_LOW_THRESHOLD] = self.num_classes
                labels[m == Matcher.BETWEEN_THRESHOLDS] = -1
            # sampler convention: >=1 positive, 0 negative, <0 ignored
            code = torch.where(labels == self.num_classes, 0, torch.where(labels < 0, -1, 1))
            gen = generators[i] if generators is not None else None
            pos, neg = sample_pos_neg(code, self.batch_size_per_image, self.positive_fraction, gen)
            keep = torch.where(pos | neg)[0]
            props, labels, matched = props[keep], labels[keep], matched[keep]
            out_p.append(props)
            out_l.append(labels)
            out_m.append(matched)
            out_t.append(self.box_coder.encode(gt[matched], props))
        return out_p, out_l, out_t, out_m

    def pool(self, feats: Sequence[Tensor], boxes: Sequence[Tensor] | Tensor) -> Tensor:
        """RoIAlign of per-image boxes [K_i,4] (or padded [B,K,4]) from the FPN maps -> [sum K_i, C_in, S, S]."""
        rois = boxes_to_rois(boxes)
        return multiscale_roi_align(feats, rois, self.featmap_strides, self.roi_output_size, self.sampling_ratio)

    def forward(
        self, feats: Sequence[Tensor], proposals: list[Tensor], image_sizes: Sequence[Sequence[int]] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Classify and regress proposals.

        Args:
            feats: neck maps [B,C_in,H_l,W_l], increasing stride (only the first ``len(featmap_strides)`` used).
            proposals: per image Tensor[K_i,4] xyxy (or padded [B,K,4]: R = B*K).
            image_sizes: unused (kept for a uniform head signature); pooling scales come from the strides.

        Returns:
            class_logits [R, C+1] (background last), box_deltas [R, C*4]; R = sum K_i.
        """
        return self.forward_pooled(self.pool(feats, proposals))

    def forward_pooled(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Classify and regress RoI features [R,C_in,S,S] -> logits [R, C+1], deltas [R, C*4]."""
        x = self.convs(x).flatten(1)
        for fc in self.fcs:
            x = F.relu(fc(x))
        return self.cls_score(x), self.bbox_pred(x)

    def loss(
        self,
        raw: tuple[Tensor, Tensor],
        labels: list[Tensor] | Tensor,
        regression_targets: list[Tensor] | Tensor,
        counts: dict[str, Tensor | int] | None = None,
    ) -> dict[str, Tensor]:
        """torchvision's fastrcnn_loss: CE over sampled RoIs, smooth-L1 (beta 1/9) on positives / #sampled.

        ``counts``, when given, receives per loss key the number of sampled RoIs the loss is divided by
        (``detkit.ops.global_batch.global_mean_losses``). Returns ``{'roi/cls': scalar, 'roi/box': scalar}``.
        """
        logits, deltas = at_least_float32(raw[0]), at_least_float32(raw[1])  # float32 losses under AMP
        labels = torch.cat(list(labels)) if isinstance(labels, (list, tuple)) else labels
        targets = (
            torch.cat(list(regression_targets)) if isinstance(regression_targets, (list, tuple)) else regression_targets
        )
        if counts is not None:
            counts["roi/cls"] = counts["roi/box"] = labels.numel()
        if labels.numel() == 0:
            zero = logits.sum() * 0 + deltas.sum() * 0
            return {"roi/cls": zero, "roi/box": zero.clone()}
        weight = weight_of_labels(self.class_weight, labels)  # [R] or None
        if weight is None:
            cls_loss = F.cross_entropy(logits, labels)
        else:  # each RoI's term times its class's weight, still divided by the number of RoIs
            cls_loss = (F.cross_entropy(logits, labels, reduction="none") * weight).mean()
        pos = torch.where(labels < self.num_classes)[0]
        deltas = deltas.reshape(deltas.shape[0], self.num_classes, 4)  # [R,C,4]
        box_loss = F.smooth_l1_loss(
            deltas[pos, labels[pos]], targets[pos].to(deltas.dtype), beta=1 / 9, reduction="sum"
        )
        return {"roi/cls": cls_loss, "roi/box": box_loss / labels.numel()}

    def decode(self, raw: tuple[Tensor, Tensor], proposals: Tensor, limits: Tensor) -> tuple[Tensor, Tensor]:
        """Class boxes and scores of RoIs (batched, tensor-only).

        Args:
            raw: logits [R, C+1], deltas [R, C*4]; proposals [R,4]; limits [R,4] (w, h, w, h) of each RoI's image.

        Returns:
            boxes [R,C,4] clipped to the image, scores [R,C] (softmax without the background).
        """
        logits, deltas = raw[0].float(), raw[1].float()  # decode in float32 even under AMP
        c = self.num_classes
        boxes = self.box_coder.decode(deltas, proposals.float()).reshape(-1, c, 4)  # [R,C,4]
        return batched.clip_to_sizes(boxes, limits[:, None, :]), F.softmax(logits, -1)[:, :c]

    def select(
        self,
        boxes: Tensor,
        scores: Tensor,
        roi_image: Tensor,
        num_images: Tensor | int,
        score_thr: float | None = None,
        nms_thr: float | None = None,
        max_per_img: int | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Detections per image from class boxes [R,C,4] and scores [R,C] (batched, tensor-only).

        Candidates (RoI, class) with score > ``score_thr`` and sides >= 1e-2 px, NMS per image and class,
        the ``max_per_img`` best of each image. ``roi_image`` int64 [R] is each RoI's image (-1: ignore).

        Returns:
            padded ``{'boxes': [B,K,4], 'scores': [B,K], 'labels': int64 [B,K] (-1 in empty slots)}``,
            score-descending, and counts int64 [B]; K = ``max_per_img``.
        """
        score_thr = self.score_thr if score_thr is None else float(score_thr)
        nms_thr = self.nms_thr if nms_thr is None else float(nms_thr)
        k = self.max_per_img if max_per_img is None else int(max_per_img)
        c = self.num_classes
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (roi_image[:, None] >= 0) & (scores > score_thr) & (wh >= 1e-2).all(-1)  # [R,C]
        flat = torch.where(valid.reshape(-1))[0]
        image, label = roi_image[flat // c], flat % c
        fb, fs = boxes.reshape(-1, 4)[flat], scores.reshape(-1)[flat]
        keep = batched_nms(fb, fs, image * c + label, nms_thr)  # score-descending
        sel, dest = batched.per_image_topk(image[keep], num_images, k)
        keep = keep[sel]
        out = batched.pad_per_image((fb[keep], fs[keep], label[keep]), (0.0, 0.0, -1), dest, num_images, k)
        return dict(zip(("boxes", "scores", "labels"), out)), batched.count_per_image(image[keep], num_images)

    @torch.no_grad()
    def predict(
        self,
        raw: tuple[Tensor, Tensor],
        proposals: list[Tensor],
        image_sizes: Sequence[Sequence[int]],
        score_thr: float | None = None,
        nms_thr: float | None = None,
        max_per_img: int | None = None,
    ) -> list[dict[str, Tensor]]:
        """Detections per image, as torchvision's postprocess_detections (:meth:`decode`, then :meth:`select`).

        Softmax, decode per class, clip to the image, drop background, keep scores > score_thr, remove
        boxes smaller than 1e-2, per-class NMS, top ``max_per_img``.

        Returns:
            per image ``{'boxes': [N,4], 'scores': [N], 'labels': int64 [N] (0..C-1)}`` in input-image pixels.
        """
        device = raw[0].device
        counts = torch.tensor([p.shape[0] for p in proposals], device=device)
        roi_image = torch.repeat_interleave(torch.arange(len(proposals), device=device), counts)  # [R]
        props = torch.cat(proposals) if len(proposals) else raw[1].new_zeros((0, 4))
        limits = batched.box_limits(batched.sizes_tensor(image_sizes, device))[roi_image]  # [R,4]
        boxes, scores = self.decode(raw, props, limits)
        dets, num = self.select(boxes, scores, roi_image, len(proposals), score_thr, nms_thr, max_per_img)
        return batched.unpad(dets, num)
