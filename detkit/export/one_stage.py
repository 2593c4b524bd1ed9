"""Tensor-only YOLO inference for ONNX export: the detector's modules, decoding and (optionally) NMS in the graph."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from detkit.export.two_stage import _scatter, per_image_topk

__all__ = ["OneStageExport"]


class OneStageExport(nn.Module):
    """YOLO inference as ``forward(images, image_sizes)``; batch and image size stay dynamic.

    Args:
        model: a ``OneStageDetector`` with a ``YOLOHead`` (copied; the original is left as it is).
        nms: put the post-processing in the graph (multi-label candidates above the head's ``score_thr``,
            at most ``nms_pre`` per image, class-aware NMS, ``max_per_img`` kept), as ``model.predict`` does.
            False: the graph ends at the decoded boxes and class scores (post-process outside).
        max_per_img: detections per image in the NMS outputs (default: the head's ``max_per_img``).

    Inputs:
        images: uint8 (or float 0..255) [B,3,H,W] RGB, H and W multiples of 32 (letterboxed as the config's
            test pipeline does, zero padding bottom/right); image_sizes: int64 [B,2] (h, w) inside the batch.
    Outputs (network-input pixels):
        nms=True: boxes float32 [B,K,4] xyxy, scores [B,K], labels int64 [B,K] (-1 in empty slots),
            num_dets int64 [B] (the first num_dets slots are filled, by descending score).
        nms=False: boxes float32 [B,A,4] (clipped to each image), scores float32 [B,A,C].
    """

    dynamic_axes_nms = {
        "images": {0: "batch", 2: "height", 3: "width"},
        "image_sizes": {0: "batch"},
        "boxes": {0: "batch"},
        "scores": {0: "batch"},
        "labels": {0: "batch"},
        "num_dets": {0: "batch"},
    }
    input_names = ["images", "image_sizes"]

    def __init__(self, model: nn.Module, nms: bool = True, max_per_img: int | None = None):
        super().__init__()
        head = model.head
        if not hasattr(head, "decode") or not hasattr(head, "select"):
            raise NotImplementedError(
                f"ONNX export supports YOLOHead models; {type(head).__name__} (instance masks) "
                "is not exported yet: run it in PyTorch"
            )
        model = copy.deepcopy(model).eval()
        model.optimize_for_inference(False)  # plain modules: the oneDNN fast path has no ONNX form
        self.model, self.nms = model, bool(nms)
        cfg = model.head.test_cfg
        self.max_per_img = int(max_per_img if max_per_img is not None else cfg["max_per_img"])
        self.size_divisor = int(getattr(model.preprocess, "size_divisor", 32))
        if self.nms:
            self.output_names = ["boxes", "scores", "labels", "num_dets"]
            self.dynamic_axes = self.dynamic_axes_nms
        else:
            self.output_names = ["boxes", "scores"]
            self.dynamic_axes = {
                "images": {0: "batch", 2: "height", 3: "width"},
                "image_sizes": {0: "batch"},
                "boxes": {0: "batch", 1: "anchors"},
                "scores": {0: "batch", 1: "anchors"},
            }

    def example_inputs(self, batch_size: int = 1, image_size: Sequence[int] = (320, 320)) -> tuple[Tensor, Tensor]:
        """Random inputs of the given batch and (padded) image size, for tracing."""
        d = self.size_divisor
        h, w = (-(-int(s) // d) * d for s in image_size)
        return (
            torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8),
            torch.tensor([[h, w]] * batch_size, dtype=torch.int64),
        )

    def inputs_from_batch(self, batch: dict) -> tuple[Tensor, Tensor]:
        """The exported inputs for a ``detkit.data.collate`` batch."""
        return batch["images"], torch.tensor([list(s) for s in batch["image_sizes"]], dtype=torch.int64)

    def outputs_to_predictions(self, outputs: Sequence) -> list[dict[str, Tensor]]:
        """Per image ``boxes``/``scores``/``labels`` from the outputs (torch or numpy); without NMS in the
        graph, the head's own post-processing runs here."""
        outs = [torch.as_tensor(np.asarray(o)) for o in outputs]
        if self.nms:
            boxes, scores, labels, num = outs
            return [
                {"boxes": boxes[i, :n].float(), "scores": scores[i, :n].float(), "labels": labels[i, :n].long()}
                for i, n in enumerate(num.tolist())
            ]
        boxes, scores = outs
        out = []
        for b, s in zip(boxes.float(), scores.float()):
            size = (int(b.max()) + 1,) * 2 if len(b) else (1, 1)  # boxes were clipped in the graph already
            d = self.model.head.select(b, s, size, max_per_img=self.max_per_img)
            out.append({k: d[k] for k in ("boxes", "scores", "labels")})
        return out

    def forward(self, images: Tensor, image_sizes: Tensor):
        pre = self.model.preprocess
        x = (images.to(torch.float32) / 255.0 - pre.mean) / pre.std  # [B,3,H,W]
        rows = torch.arange(x.shape[2], device=x.device)
        cols = torch.arange(x.shape[3], device=x.device)
        valid = (rows[None, :, None] < image_sizes[:, 0, None, None]) & (
            cols[None, None, :] < image_sizes[:, 1, None, None]
        )
        x = x.masked_fill(~valid[:, None], 0.0)
        head = self.model.head
        bins, logits, points, strides = head.flatten(self.model.forward_raw(x))
        boxes = head.decode(bins, points, strides)  # [B,A,4]
        hw = image_sizes.to(boxes.dtype)
        limit = torch.stack([hw[:, 1], hw[:, 0], hw[:, 1], hw[:, 0]], 1)[:, None, :]  # [B,1,4] (w, h, w, h)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        scores = logits.float().sigmoid()  # [B,A,C]
        if not self.nms:
            return boxes, scores
        return self._nms(boxes, scores)

    def _nms(self, boxes: Tensor, scores: Tensor):
        cfg = self.model.head.test_cfg
        b, _a, c = scores.shape
        img, anchor, label = torch.where(scores > cfg["score_thr"])  # candidates
        cand = scores[img, anchor, label]
        order = cand.argsort(descending=True)  # (ONNX has no stable sort; ties may order differently)
        img, anchor, label, cand = img[order], anchor[order], label[order], cand[order]
        sel, _ = per_image_topk(img, b, cfg["nms_pre"])  # nms_pre per image
        img, anchor, label, cand = img[sel], anchor[sel], label[sel], cand[sel]
        cand_boxes = boxes[img, anchor]
        keep = batched_nms(cand_boxes, cand, img * c + label, cfg["nms_thr"])  # sorted by score
        sel, dest = per_image_topk(img[keep], b, self.max_per_img)
        keep = keep[sel]
        k = self.max_per_img
        out_boxes = _scatter(cand_boxes[keep], dest, b * k, 0.0).reshape(b, k, 4)
        out_scores = _scatter(cand[keep], dest, b * k, 0.0).reshape(b, k)
        out_labels = _scatter(label[keep], dest, b * k, -1).reshape(b, k)
        num = (img[keep][:, None] == torch.arange(b, device=img.device)[None, :]).sum(0)
        return out_boxes, out_scores, out_labels, num
