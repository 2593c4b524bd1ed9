"""Mask R-CNN RoI mask head: RoIAlign 14x14, four 3x3 convs, 2x2 deconv, class-specific 28x28 mask logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from detkit.models.fuse import conv_norm_act
from detkit.models.heads.roi_box import conv_block
from detkit.ops.global_batch import at_least_float32
from detkit.ops.roi_pool import boxes_to_rois, multiscale_roi_align
from detkit.registry import HEADS


@HEADS.register
class RoIMaskHead(nn.Module):
    """Class-specific mask logits for boxes, as torchvision's MaskRCNNHeads + MaskRCNNPredictor.

    Args:
        num_classes: C foreground classes (one mask channel each; no background channel).
        in_channels: channels of the feature maps.
        featmap_strides: strides of the pooled maps (the first ``len`` maps of the neck).
        roi_output_size, sampling_ratio: RoIAlign settings (masks are ``2 * roi_output_size`` square).
        conv_channels, num_convs, dilation: the conv tower.
        norm: None, 'BN' or 'GN' after each conv.

    State dict: ``convs.{i}.0.weight/bias`` (``convs.{i}.1.*`` with a norm), ``deconv.*``, ``logits.*``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        featmap_strides: Sequence[int] = (4, 8, 16, 32),
        roi_output_size: int = 14,
        sampling_ratio: int = 2,
        conv_channels: int = 256,
        num_convs: int = 4,
        dilation: int = 1,
        norm: str | None = None,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.featmap_strides = tuple(int(s) for s in featmap_strides)
        self.roi_output_size, self.sampling_ratio = int(roi_output_size), int(sampling_ratio)
        self.convs = nn.Sequential(
            *[
                conv_block(in_channels if i == 0 else conv_channels, conv_channels, norm, dilation)
                for i in range(num_convs)
            ]
        )
        ch = conv_channels if num_convs else in_channels
        self.deconv = nn.ConvTranspose2d(ch, conv_channels, 2, 2, 0)
        self.logits = nn.Conv2d(conv_channels, self.num_classes, 1)
        self.mask_size = 2 * int(roi_output_size)
        self.fused_inference = False  # conv (+ norm) + ReLU as one op without autograd (detectors turn it on)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(
        self, feats: Sequence[Tensor], boxes: list[Tensor] | Tensor, image_sizes: Sequence[Sequence[int]] | None = None
    ) -> Tensor:
        """Mask logits for ``boxes`` (per image Tensor[K_i,4] xyxy, or padded [B,K,4]) -> [R, C, M, M], M = 28."""
        rois = boxes_to_rois(boxes)
        x = multiscale_roi_align(feats, rois, self.featmap_strides, self.roi_output_size, self.sampling_ratio)
        return self.forward_pooled(x)  # [R,C_in,14,14] -> [R,C,28,28]

    def forward_pooled(self, x: Tensor) -> Tensor:
        """Mask logits [R,C,M,M] of RoI features [R,C_in,S,S] (conv tower, 2x deconv, 1x1 class logits)."""
        if self.fused_inference and not torch.is_grad_enabled():
            if x.device.type == "cpu":  # oneDNN's deconv took 75 ms channels_last vs 148 ms NCHW (100 RoIs)
                x = x.contiguous(memory_format=torch.channels_last)
            for block in self.convs:  # (conv, [norm,] ReLU) as one op, in x's layout
                x = conv_norm_act(x, block[0], block[1] if len(block) == 3 else None, relu=True)
        else:
            x = self.convs(x)
        # in place (as torchvision): the deconv's backward does not read its output; at 100 RoIs the output is
        # 80 MB, a fresh allocation for an out-of-place ReLU
        x = F.relu(self.deconv(x), inplace=True)  # [R,256,28,28]
        return self.logits(x)  # [R,C,28,28]

    def loss(
        self,
        mask_logits: Tensor,
        proposals: list[Tensor],
        gt_masks: list[Tensor],
        matched_idxs: list[Tensor],
        labels: list[Tensor] | Tensor,
        counts: dict[str, Tensor | int] | None = None,
    ) -> dict[str, Tensor]:
        """torchvision's maskrcnn_loss: BCE between the gt-class logits and gt masks RoIAligned to M x M.

        Args:
            mask_logits: [P, C, M, M] for the positive proposals of all images (P = sum P_i).
            proposals: per image Tensor[P_i,4] positive proposals (input-image pixels).
            gt_masks: per image uint8/bool/float [N_i,h,w] instance masks (input-image pixels).
            matched_idxs: per image int64 [P_i], the gt each proposal matched.
            labels: per image int64 [P_i] (or concatenated), their classes 0..C-1.
            counts: when given, receives ``roi/mask``: the number of mask pixels (P x M x M) the BCE is a
                mean over (``detkit.ops.global_batch.global_mean_losses``).

        Returns:
            ``{'roi/mask': scalar}`` (``0 * logits.sum()`` when there are no positives).
        """
        m = mask_logits.shape[-1]
        labels = torch.cat(list(labels)) if isinstance(labels, (list, tuple)) else labels
        targets = []
        for masks, props, idxs in zip(gt_masks, proposals, matched_idxs):  # one roi_align per image
            if props.shape[0] == 0:
                continue
            rois = torch.cat([idxs.to(props)[:, None], props], dim=1)  # [P_i,5]
            masks = masks.to(device=props.device)[:, None]  # [N_i,1,h,w]
            targets.append(roi_align(masks.float(), rois.float(), (m, m), 1.0)[:, 0])  # [P_i,M,M]
        if counts is not None:
            counts["roi/mask"] = labels.numel() * m * m if targets else 0
        if not targets or labels.numel() == 0:
            return {"roi/mask": mask_logits.sum() * 0}
        targets = torch.cat(targets)
        logits = at_least_float32(mask_logits[torch.arange(labels.shape[0], device=labels.device), labels])  # [P,M,M]
        return {"roi/mask": F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))}

    @staticmethod
    def class_probs(mask_logits: Tensor, labels: Tensor) -> Tensor:
        """Probabilities [N,M,M] of each RoI's class channel from logits [N,C,M,M] and labels int64 [N] (0..C-1)."""
        return mask_logits[torch.arange(labels.shape[0], device=labels.device), labels].float().sigmoid()

    @torch.no_grad()
    def predict(self, mask_logits: Tensor, detections: list[dict] | list[Tensor]) -> list[Tensor]:
        """Mask probabilities of each detection's class (:meth:`class_probs`).

        Args:
            mask_logits: [N, C, M, M] for the detections of all images, in order.
            detections: per image dict with ``labels`` int64 [N_i] (or the label tensors themselves).

        Returns:
            per image float [N_i, 1, M, M] probabilities.
        """
        labels = [d["labels"] if isinstance(d, dict) else d for d in detections]
        flat = torch.cat(labels) if labels else mask_logits.new_zeros((0,), dtype=torch.int64)
        probs = self.class_probs(mask_logits, flat)[:, None]
        return list(probs.split([lab.shape[0] for lab in labels]))
