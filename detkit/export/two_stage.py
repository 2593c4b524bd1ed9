"""Tensor-only Faster R-CNN for ONNX export: the detector's modules, post-processing batched without Python loops.

torchvision makes its R-CNN exportable with tracing-aware branches inside the model (``_topk_min``,
``_onnx_merge_levels``, per-image loops unrolled at a fixed batch size). Here the detector stays as it is
and this wrapper re-expresses its inference path with ops that trace into a graph whose batch size and
image size stay dynamic: one NMS over the whole batch (images and levels/classes as NMS groups), per-image
top-k by ranks, and fixed-size padded outputs. The arithmetic is the detector's (same modules, box coder,
anchors, RoIAlign, thresholds), so outputs equal ``model.predict`` up to float rounding.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import _topk_min
from torchvision.ops import batched_nms, roi_align
from torchvision.ops.poolers import initLevelMapper

from detkit.ops.anchors import base_anchors, grid_anchors

__all__ = ["TwoStageExport", "per_image_topk"]


def per_image_topk(image_idx: Tensor, num_images: Tensor | int, k: int) -> tuple[Tensor, Tensor]:
    """For items sorted by descending score, the ones among the first ``k`` of their image.

    Args:
        image_idx: int64 [M], the image of each item (items in descending score order).
        num_images: the batch size B.
        k: items kept per image.

    Returns:
        (sel int64 [M'] indices of the kept items, dest int64 [M'] their slot ``image * k + rank``).
    """
    onehot = (image_idx[:, None] == torch.arange(num_images, device=image_idx.device)[None, :]).to(torch.int64)
    rank = (onehot.cumsum(0) * onehot).sum(1) - 1  # [M] rank within its image
    sel = torch.where(rank < k)[0]
    return sel, image_idx[sel] * k + rank[sel]


def _scatter(values: Tensor, dest: Tensor, slots: Tensor, fill: float) -> Tensor:
    """A [slots, *values.shape[1:]] tensor filled with ``fill``, ``values`` written at rows ``dest``."""
    out = values.new_zeros((slots,) + tuple(values.shape[1:]))  # (aten::full with a bool fill does not trace)
    if fill:
        out = out + fill
    return out.index_put((dest,), values)


class TwoStageExport(nn.Module):
    """Faster R-CNN inference as ``forward(images, image_sizes) -> (boxes, scores, labels, num_dets)``.

    Args:
        model: a ``TwoStageDetector`` (copied; the original is left as it is).
        max_per_img: detections per image in the outputs (default: the box head's ``max_per_img``).

    Inputs:
        images: uint8 (or float 0..255) [B,3,H,W] RGB, H and W multiples of the model's size divisor
            (pad bottom/right with zeros), each image resized as the config's test pipeline does.
        image_sizes: int64 [B,2] the (h, w) of each image inside the padded batch.
    Outputs (in the pixels of the network input; map back with the resize factor):
        boxes float32 [B,K,4] xyxy, scores float32 [B,K], labels int64 [B,K] (0..C-1, -1 in empty slots),
        num_dets int64 [B] (the first num_dets slots of each image are filled, by descending score).
    """

    input_names = ["images", "image_sizes"]
    output_names = ["boxes", "scores", "labels", "num_dets"]
    dynamic_axes = {
        "images": {0: "batch", 2: "height", 3: "width"},
        "image_sizes": {0: "batch"},
        "boxes": {0: "batch"},
        "scores": {0: "batch"},
        "labels": {0: "batch"},
        "num_dets": {0: "batch"},
    }

    def __init__(self, model: nn.Module, max_per_img: int | None = None):
        super().__init__()
        if getattr(model, "mask_head", None) is not None:
            raise NotImplementedError(
                "ONNX export of the mask head is not supported yet: export a model "
                "without mask_head (its boxes) or run Mask R-CNN in PyTorch"
            )
        model = copy.deepcopy(model).eval()
        if hasattr(model, "optimize_for_inference"):
            model.optimize_for_inference(False)  # plain modules: the fused fast path has no ONNX form
        self.model = model
        box = model.box_head
        self.max_per_img = int(max_per_img if max_per_img is not None else box.max_per_img)
        strides = box.featmap_strides
        self.mapper = initLevelMapper(int(np.log2(strides[0])), int(np.log2(strides[-1])))
        self.size_divisor = int(getattr(model.preprocess, "size_divisor", 32))

    def example_inputs(self, batch_size: int = 1, image_size: Sequence[int] = (320, 320)) -> tuple[Tensor, Tensor]:
        """Random inputs of the given batch and (padded) image size, for tracing."""
        d = self.size_divisor
        h, w = (-(-int(s) // d) * d for s in image_size)
        images = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8)
        return images, torch.tensor([[h, w]] * batch_size, dtype=torch.int64)

    def inputs_from_batch(self, batch: dict) -> tuple[Tensor, Tensor]:
        """The exported inputs for a ``detkit.data.collate`` batch."""
        return batch["images"], torch.tensor([list(s) for s in batch["image_sizes"]], dtype=torch.int64)

    @staticmethod
    def outputs_to_predictions(outputs: Sequence) -> list[dict[str, Tensor]]:
        """Per image ``boxes``/``scores``/``labels`` tensors from the four outputs (torch or numpy)."""
        boxes, scores, labels, num = (torch.as_tensor(np.asarray(o)) for o in outputs)
        return [
            {"boxes": boxes[i, :n].float(), "scores": scores[i, :n].float(), "labels": labels[i, :n].long()}
            for i, n in enumerate(num.tolist())
        ]

    def _normalise(self, images: Tensor, sizes: Tensor) -> Tensor:
        """The Preprocessor's arithmetic; the zero padding after normalisation comes from ``sizes``."""
        pre = self.model.preprocess
        x = (images.to(torch.float32) / 255.0 - pre.mean) / pre.std  # [B,3,H,W]
        rows = torch.arange(x.shape[2], device=x.device)
        cols = torch.arange(x.shape[3], device=x.device)
        valid = (rows[None, :, None] < sizes[:, 0, None, None]) & (cols[None, None, :] < sizes[:, 1, None, None])
        return x.masked_fill(~valid[:, None], 0.0)

    def _anchors(self, feats: list[Tensor], batch_hw: tuple) -> list[Tensor]:
        """Per-level anchors [H_l*W_l*A, 4] from traced feature sizes (strides = padded size // map size)."""
        head = self.model.rpn_head
        out = []
        for f, sizes, ratios in zip(feats, head.anchor_sizes, head.aspect_ratios):
            fh, fw = f.shape[-2], f.shape[-1]
            base = base_anchors(sizes, ratios, torch.float32, f.device)
            out.append(grid_anchors(base, (fh, fw), (batch_hw[0] // fh, batch_hw[1] // fw)))
        return out

    def _proposals(self, feats: list[Tensor], sizes: Tensor, batch_hw: tuple) -> tuple[Tensor, Tensor]:
        """RPN proposals as ``RPNHead.predict`` (test settings), padded: boxes [B,P,4] and valid [B,P]."""
        from detkit.models.heads.rpn import _flat_obj, _take_deltas

        head = self.model.rpn_head
        objectness, deltas = head(feats)
        boxes, logits, levels = [], [], []
        for lvl, (o, d, a) in enumerate(zip(objectness, deltas, self._anchors(feats, batch_hw))):
            o = _flat_obj(o).float()  # [B, n]
            top, idx = o.topk(_topk_min(o, head.pre_nms_top_n["test"], 1), dim=1)  # [B, k]
            boxes.append(head.box_coder.decode(_take_deltas(d, idx).float(), a[idx]))
            logits.append(top)
            levels.append(torch.full_like(idx, lvl))
        boxes, scores, levels = torch.cat(boxes, 1), torch.cat(logits, 1).sigmoid(), torch.cat(levels, 1)
        limits = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], 1).to(boxes.dtype)
        boxes = torch.minimum(boxes.clamp(min=0), limits[:, None, :])  # [B, K, 4]
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = (wh >= head.min_size).all(-1) & (scores >= head.score_thr)
        b = boxes.shape[0]
        image = torch.arange(b, device=boxes.device)[:, None].expand_as(levels)
        flat = torch.where(valid.reshape(-1))[0]
        fb, fs = boxes.reshape(-1, 4)[flat], scores.reshape(-1)[flat]
        fi, fl = image.reshape(-1)[flat], levels.reshape(-1)[flat]
        keep = batched_nms(fb, fs, fi * len(objectness) + fl, head.nms_thr)
        keep = keep[fs[keep].argsort(descending=True)]
        k = head.post_nms_top_n["test"]
        sel, dest = per_image_topk(fi[keep], b, k)
        props = _scatter(fb[keep][sel], dest, b * k, 0.0).reshape(b, k, 4)
        ok = _scatter(torch.ones_like(dest), dest, b * k, 0).reshape(b, k) > 0
        return props, ok

    def _pool(self, feats: list[Tensor], boxes: Tensor) -> Tensor:
        """Multi-scale RoIAlign of boxes [B,P,4] (FPN level rule of torchvision's MultiScaleRoIAlign)."""
        head = self.model.box_head
        b, p = boxes.shape[0], boxes.shape[1]
        flat = boxes.reshape(-1, 4)
        image = torch.arange(b, device=boxes.device)[:, None].expand(b, p).reshape(-1, 1).to(flat.dtype)
        rois = torch.cat([image, flat], 1)  # [B*P, 5]
        levels = self.mapper([flat])
        size, ratio = head.pooler.output_size, head.pooler.sampling_ratio
        out = None
        for lvl, (f, s) in enumerate(zip(feats[: len(head.featmap_strides)], head.featmap_strides)):
            idx = torch.where(levels == lvl)[0]
            pooled = roi_align(f, rois[idx], size, 1.0 / s, sampling_ratio=ratio)  # [R_l, C, S, S]
            if out is None:
                out = torch.zeros((rois.shape[0],) + tuple(pooled.shape[1:]), dtype=pooled.dtype, device=f.device)
            out = out.index_put((idx,), pooled)
        return out

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        model, head = self.model, self.model.box_head
        sizes = image_sizes.to(torch.int64)
        x = self._normalise(images, sizes)
        feats = model.extract_feats(x)
        batch_hw = (x.shape[-2], x.shape[-1])
        props, ok = self._proposals(feats, sizes, batch_hw)  # [B,P,4], [B,P]
        b, p, c = props.shape[0], props.shape[1], head.num_classes
        logits, deltas = head.forward_pooled(self._pool(feats, props))
        boxes = head.box_coder.decode(deltas.float(), props.reshape(-1, 4)).reshape(b, p, c, 4)
        limits = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], 1).to(boxes.dtype)
        boxes = torch.minimum(boxes.clamp(min=0), limits[:, None, None, :])
        scores = F.softmax(logits.float(), -1)[:, :c].reshape(b, p, c)
        wh = boxes[..., 2:] - boxes[..., :2]
        valid = ok[:, :, None] & (scores > head.score_thr) & (wh >= 1e-2).all(-1)  # [B,P,C]
        flat = torch.where(valid.reshape(-1))[0]
        image, label = flat // (p * c), flat % c
        fb, fs = boxes.reshape(-1, 4)[flat], scores.reshape(-1)[flat]
        keep = batched_nms(fb, fs, image * c + label, head.nms_thr)
        keep = keep[fs[keep].argsort(descending=True)]
        k = self.max_per_img
        sel, dest = per_image_topk(image[keep], b, k)
        keep = keep[sel]
        out_boxes = _scatter(fb[keep], dest, b * k, 0.0).reshape(b, k, 4)
        out_scores = _scatter(fs[keep], dest, b * k, 0.0).reshape(b, k)
        out_labels = _scatter(label[keep], dest, b * k, -1).reshape(b, k)
        num = (out_labels >= 0).sum(1)
        return out_boxes, out_scores, out_labels, num
