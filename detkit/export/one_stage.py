"""Tensor-only YOLO (and YOLO-seg) inference for ONNX export, built from the head's own batched steps.

The wrapper calls what ``OneStageDetector.predict`` calls: ``Preprocessor.normalize``, the network,
``YOLOHead.dense`` (decoded, clipped boxes and class scores) and ``YOLOHead.select`` (candidates, NMS per
image and class, per-image top-k, padded), and for instance masks ``YOLOSegHead.proto_logits`` and
``masks`` (prototypes x coefficients, cropped to the box, at the input size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.export.common import ExportError, ExportWrapper, as_tensors, dynamic_axes, padded_to_predictions
from detkit.ops.batched import unpad
from detkit.ops.masks import masks_to_original

__all__ = ["OneStageExport"]


class OneStageExport(ExportWrapper):
    """YOLO inference as ``forward(images, image_sizes)``; batch and image size stay dynamic.

    Args:
        model: a ``OneStageDetector`` with a ``YOLOHead`` or ``YOLOSegHead`` (copied; the original is kept).
        nms: put the post-processing in the graph (multi-label candidates above the head's ``score_thr``,
            at most ``nms_pre`` per image, class-aware NMS, ``max_per_img`` kept), as ``model.predict`` does.
            False: the graph ends at the decoded boxes and class scores (post-process outside).
        max_per_img: detections per image in the NMS outputs (default: the head's ``max_per_img``).

    Inputs:
        images: uint8 (or float 0..255) [B,3,H,W] RGB, H and W multiples of 32 (letterboxed as the config's
            test pipeline does, zero padding bottom/right); image_sizes: int64 [B,2] (h, w) inside the batch.
    Outputs (network-input pixels):
        nms=True: boxes float32 [B,K,4] xyxy, scores [B,K], labels int64 [B,K] (-1 in empty slots),
            num_dets int64 [B] (the first num_dets slots are filled, by descending score); instance
            models also masks float32 [B,K,H,W] (probabilities at the input size, zero outside the box).
        nms=False: boxes float32 [B,A,4] (clipped to each image), scores float32 [B,A,C]; instance models
            also coefs float32 [B,A,P] (mask coefficients per anchor) and protos float32 [B,P,H/4,W/4].
    """

    options = ("nms", "max_per_img")

    def __init__(self, model: nn.Module, nms: bool = True, max_per_img: int | None = None):
        head = model.head
        det = head.det if hasattr(head, "proto_logits") else head
        if not hasattr(det, "dense") or not hasattr(det, "select"):
            raise ExportError(
                f"ONNX export supports YOLOHead and YOLOSegHead models; {type(head).__name__} is not exported: "
                "run it in PyTorch"
            )
        super().__init__(model)
        self.nms, self.with_masks = bool(nms), hasattr(head, "proto_logits")
        cfg = self.det.test_cfg
        self.max_per_img = int(max_per_img if max_per_img is not None else cfg["max_per_img"])
        self.score_thr = float(cfg["score_thr"])
        if self.nms:
            self.output_names = ["boxes", "scores", "labels", "num_dets"] + (["masks"] if self.with_masks else [])
            axes = {name: {0: "batch"} for name in self.output_names}
            axes.update({"masks": {0: "batch", 2: "height", 3: "width"}} if self.with_masks else {})
            self.dynamic_axes = dynamic_axes(axes)
        else:
            self.output_names = ["boxes", "scores"] + (["coefs", "protos"] if self.with_masks else [])
            axes = {name: {0: "batch", 1: "anchors"} for name in self.output_names}
            axes.update({"protos": {0: "batch", 2: "proto_height", 3: "proto_width"}} if self.with_masks else {})
            self.dynamic_axes = dynamic_axes(axes)

    @property
    def det(self) -> nn.Module:
        """The detection head (``YOLOHead``; the ``det`` part of a ``YOLOSegHead``)."""
        return self.model.head.det if self.with_masks else self.model.head

    def outputs_to_predictions(self, outputs: Sequence, inputs: Sequence) -> list[dict[str, Tensor]]:
        """Per image ``boxes``/``scores``/``labels`` (and ``masks`` bool [N,h,w] at each image's size) from the
        outputs (torch or numpy) of ``inputs``; without NMS in the graph the head's own steps run here."""
        outs = as_tensors(outputs)
        sizes = torch.as_tensor(inputs[1]).to(torch.int64)
        if self.nms:
            preds = padded_to_predictions(*outs[:4])
            masks = [m[: len(p["boxes"])] for m, p in zip(outs[4], preds)] if self.with_masks else None
        else:
            dets, counts = self.det.select(outs[0].float(), outs[1].float(), sizes, max_per_img=self.max_per_img)
            masks = self._masks(outs[2], outs[3], dets, counts) if self.with_masks else None
            preds = [{k: d[k] for k in ("boxes", "scores", "labels")} for d in unpad(dets, counts)]
        for i, p in enumerate(masks or []):
            h, w = sizes[i].tolist()
            preds[i]["masks"] = masks_to_original(p.float(), (1.0, 1.0), (0.0, 0.0), (h, w), self.mask_thresh)
        return preds

    def _masks(self, coefs: Tensor, protos: Tensor, dets: dict[str, Tensor], counts: Tensor) -> list[Tensor]:
        """Per image mask probabilities [N_i,H,W] of padded detections [B,K] (the head's mask steps)."""
        head = self.model.head
        logits = head.proto_logits(coefs.float(), protos.float(), dets["index"])  # [B,K,h,w]
        return [head.masks(logits[i, :n], dets["boxes"][i, :n]) for i, n in enumerate(counts.tolist())]

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, ...]:
        sizes = image_sizes.to(torch.int64)
        x = self.model.preprocess.normalize(images, sizes)  # [B,3,H,W]
        raw = self.model.forward_raw(x)
        det_raw = raw[0] if self.with_masks else raw
        boxes, scores = self.det.dense(det_raw, sizes)  # [B,A,4], [B,A,C]
        if not self.nms:
            return (boxes, scores) + ((self.model.head.coefficients(raw[1]), raw[2]) if self.with_masks else ())
        dets, num = self.det.select(boxes, scores, sizes, max_per_img=self.max_per_img)
        out = (dets["boxes"], dets["scores"], dets["labels"], num)
        if not self.with_masks:
            return out
        head, (b, k) = self.model.head, dets["index"].shape
        logits = head.proto_logits(head.coefficients(raw[1]), raw[2], dets["index"])  # [B,K,h,w]
        masks = head.masks(logits.flatten(0, 1), dets["boxes"].reshape(-1, 4))  # [B*K,H,W]
        return out + (masks.reshape(b, k, masks.shape[-2], masks.shape[-1]),)
