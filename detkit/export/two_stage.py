"""Tensor-only Faster R-CNN / Mask R-CNN for ONNX export, built from the detector's own batched steps.

torchvision makes its R-CNN exportable with tracing-aware branches inside the model (per-image loops
unrolled at a fixed batch size). Here nothing is re-implemented: the wrapper calls the same tensor-only
steps that ``TwoStageDetector.predict`` calls (``Preprocessor.normalize``, ``RPNHead.anchors`` /
``candidates`` / ``select``, ``RoIBoxHead`` pooling / ``decode`` / ``select``, ``RoIMaskHead`` and
``class_probs``). They batch the post-processing without Python loops (one NMS over the batch with
(image, level) or (image, class) groups, per-image top-k by ranks, padded outputs), so the graph keeps
its batch and image sizes dynamic, and in PyTorch the wrapper gives exactly ``model.predict``'s detections.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.export.common import ExportWrapper, as_tensors, dynamic_axes, padded_to_predictions
from detkit.ops.batched import box_limits
from detkit.ops.masks import paste_masks

__all__ = ["TwoStageExport"]


class TwoStageExport(ExportWrapper):
    """Faster / Mask R-CNN inference as ``forward(images, image_sizes) -> (boxes, scores, labels, num_dets[, masks])``.

    Args:
        model: a ``TwoStageDetector`` (copied; the original is left as it is).
        max_per_img: detections per image in the outputs (default: the box head's ``max_per_img``).

    Inputs:
        images: uint8 (or float 0..255) [B,3,H,W] RGB, H and W multiples of the model's size divisor
            (pad bottom/right with zeros), each image resized as the config's test pipeline does.
        image_sizes: int64 [B,2] the (h, w) of each image inside the padded batch.
    Outputs (in the pixels of the network input; map back with the resize factor):
        boxes float32 [B,K,4] xyxy, scores float32 [B,K], labels int64 [B,K] (0..C-1, -1 in empty slots),
        num_dets int64 [B] (the first num_dets slots of each image are filled, by descending score);
        with a mask head also masks float32 [B,K,M,M] (M = 28): each detection's mask probabilities over
        its box, to be pasted into the image (:meth:`outputs_to_predictions`, ``detkit.ops.masks.paste_masks``).
    """

    options = ("max_per_img",)

    def __init__(self, model: nn.Module, max_per_img: int | None = None):
        super().__init__(model)
        box = self.model.box_head
        self.with_masks = getattr(self.model, "mask_head", None) is not None
        self.max_per_img = int(max_per_img if max_per_img is not None else box.max_per_img)
        self.score_thr = float(box.score_thr)
        self.output_names = ["boxes", "scores", "labels", "num_dets"] + (["masks"] if self.with_masks else [])
        self.dynamic_axes = dynamic_axes({name: {0: "batch"} for name in self.output_names})

    def outputs_to_predictions(self, outputs: Sequence, inputs: Sequence) -> list[dict[str, Tensor]]:
        """Per image ``boxes``/``scores``/``labels`` (and ``masks`` bool [N,h,w] at each image's size) from the
        outputs (torch or numpy) of ``inputs``.

        The paste step of the masks: each 28x28 mask is padded by one pixel, resized bilinearly onto its
        (equally grown) box and thresholded at the model's ``mask_thresh``, as ``model.predict`` does.
        """
        outs = as_tensors(outputs)
        preds = padded_to_predictions(*outs[:4])
        if self.with_masks:
            sizes = torch.as_tensor(inputs[1]).tolist()
            for i, p in enumerate(preds):
                probs = outs[4][i, : len(p["boxes"]), None].float()  # [N,1,M,M]
                p["masks"] = paste_masks(probs, p["boxes"], sizes[i], padding=1, threshold=self.mask_thresh)[:, 0]
        return preds

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, ...]:
        model, rpn, box = self.model, self.model.rpn_head, self.model.box_head
        sizes = image_sizes.to(torch.int64)
        x = model.preprocess.normalize(images, sizes)  # [B,3,H,W]
        feats = model.extract_feats(x)
        anchors = rpn.anchors(feats, (x.shape[-2], x.shape[-1]))
        props, _, counts = rpn.select(*rpn.candidates(rpn(feats), anchors, sizes, "test"), "test")  # [B,P,4]
        b, p = props.shape[0], props.shape[1]
        slot = torch.arange(p, device=props.device)[None, :].expand(b, p)
        image = torch.arange(b, device=props.device)[:, None].expand(b, p)
        roi_image = image.masked_fill(slot >= counts[:, None], -1).reshape(-1)  # [B*P] (-1: empty slot)
        limits = box_limits(sizes)[:, None, :].expand(b, p, 4).reshape(-1, 4)
        boxes, scores = box.decode(box(feats, props), props.reshape(-1, 4), limits)
        dets, num = box.select(boxes, scores, roi_image, b, max_per_img=self.max_per_img)
        out = (dets["boxes"], dets["scores"], dets["labels"], num)
        if not self.with_masks:
            return out
        logits = model.mask_head(feats, dets["boxes"])  # [B*K,C,M,M]
        probs = model.mask_head.class_probs(logits, dets["labels"].reshape(-1).clamp(min=0))  # [B*K,M,M]
        return out + (probs.reshape(b, self.max_per_img, probs.shape[-2], probs.shape[-1]),)
