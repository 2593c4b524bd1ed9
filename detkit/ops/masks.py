"""Pasting fixed-size RoI masks into the image, vectorised, with torchvision's numerics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detkit.utils.amp import autocast_off


def _expand(masks: Tensor, boxes: Tensor, padding: int) -> tuple[Tensor, Tensor]:
    """Pad masks by ``padding`` and grow the boxes to match, as torchvision's expand_masks/expand_boxes.

    Returns the padded masks [N,M+2p,M+2p] and the integer boxes [N,4] (truncated toward zero).
    """
    m = masks.shape[-1]
    scale = float(m + 2 * padding) / m
    masks = F.pad(masks, (padding,) * 4)
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    boxes = torch.stack((x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half), dim=1)
    return masks, boxes.to(torch.int64)


def _interp_matrix(start: Tensor, end: Tensor, src_size: int, out_size: int) -> Tensor:
    """Bilinear weights [N,out_size,src_size] that resize a source axis onto image pixels ``start..end``.

    For image pixel ``p`` inside ``[max(start,0), min(end+1,out_size))`` the row holds the weights that
    ``F.interpolate(mode='bilinear', align_corners=False)`` uses to resize ``src_size`` samples to
    ``length = max(end - start + 1, 1)`` samples, at output index ``p - start``; rows outside the box hold
    clamped weights that :func:`paste_masks` never reads (it takes the box's rows only).
    """
    n = start.shape[0]
    device = start.device
    length = (end - start + 1).clamp(min=1)  # [N]
    scale = torch.tensor(float(src_size), device=device) / length.to(torch.float32)  # [N] float32
    pix = torch.arange(out_size, device=device)  # [P]
    dst = (pix[None, :] - start[:, None]).to(torch.float32)  # [N,P] output index
    src = (scale[:, None] * (dst + 0.5) - 0.5).clamp(min=0)  # PyTorch's source index
    i0 = src.to(torch.int64).clamp(max=src_size - 1)
    i1 = torch.where(i0 < src_size - 1, i0 + 1, i0)
    l1 = (src - i0.to(torch.float32)).clamp(0, 1)
    l0 = 1.0 - l1
    weights = torch.zeros(n, out_size, src_size, device=device, dtype=torch.float32)
    weights.scatter_add_(2, i0[..., None], l0[..., None])
    weights.scatter_add_(2, i1[..., None], l1[..., None])
    return weights


def paste_masks(
    masks: Tensor, boxes: Tensor, image_shape: tuple[int, int], padding: int = 1, threshold: float | None = None
) -> Tensor:
    """Paste RoI masks into an image of ``image_shape``, like torchvision's ``paste_masks_in_image``.

    Each mask is padded by ``padding``, its box grown accordingly and truncated to integers, the mask is
    bilinearly resized to the box and written into a zero image. The separable bilinear weights of every
    box are built at once; each mask is then two small matrix products over its box's pixels only (the
    image outside the box stays zero), so the cost follows the boxes' area, not masks x image size.
    Values equal torchvision's within ~1e-6 (summation order), so a pixel within that of the threshold
    may differ.

    Args:
        masks: float [N,1,M,M] mask probabilities (or logits).
        boxes: float [N,4] xyxy boxes in the coordinates of the target image.
        image_shape: (H, W) of the target image.
        padding: pixels of zero padding around each mask before resizing (torchvision uses 1).
        threshold: when given, return ``bool`` masks ``value > threshold`` instead of floats.

    Returns:
        [N,1,H,W] float32 (or bool when ``threshold`` is given).
    """
    im_h, im_w = int(image_shape[0]), int(image_shape[1])
    n = masks.shape[0]
    out_dtype = torch.bool if threshold is not None else torch.float32
    out = torch.zeros((n, 1, im_h, im_w), dtype=out_dtype, device=masks.device)
    if n == 0:
        return out
    padded, ibox = _expand(masks[:, 0].to(torch.float32), boxes.to(torch.float32), padding)
    src = padded.shape[-1]
    wy = _interp_matrix(ibox[:, 1], ibox[:, 3], src, im_h)  # [N,H,S]
    wx = _interp_matrix(ibox[:, 0], ibox[:, 2], src, im_w)  # [N,W,S]
    lo = ibox[:, :2].clamp(min=0)
    hi = torch.minimum(ibox[:, 2:] + 1, ibox.new_tensor([im_w, im_h]))
    # float32 products under autocast too (evaluation runs predict under train.amp): fp16 / bf16 would move the
    # values by up to 1e-3 / 8e-3 and flip pixels near the threshold
    with autocast_off(masks.device.type):
        for i, (x0, y0, x1, y1) in enumerate(torch.cat([lo, hi], 1).tolist()):
            if x1 <= x0 or y1 <= y0:
                continue  # the box lies outside the image: an empty mask
            # along W first, then H: the order of F.interpolate's bilinear kernel
            pasted = wy[i, y0:y1] @ (padded[i] @ wx[i, x0:x1].T)  # [h,w]
            out[i, 0, y0:y1, x0:x1] = pasted > threshold if threshold is not None else pasted
    return out


def masks_to_original(
    masks: Tensor, scale_factor, pad_offset, orig_size, threshold: float = 0.5, chunk: int = 32
) -> Tensor:
    """Full-image mask probabilities in transformed-image pixels -> bool masks of the original image.

    The region of the transformed image that holds the original content (after ``pad_offset`` (left, top),
    ``scale_factor`` (sx, sy) pixels per original pixel) is cut out and resized bilinearly to ``orig_size``.

    Args:
        masks: float [N,H,W] probabilities (or logits with ``threshold`` set accordingly).
        orig_size: (h0, w0).

    Returns:
        bool [N,h0,w0].
    """
    h0, w0 = int(orig_size[0]), int(orig_size[1])
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, h0, w0, dtype=torch.bool, device=masks.device)
    left, top = float(pad_offset[0]), float(pad_offset[1])
    x0, y0 = int(round(left)), int(round(top))
    x1 = min(w, int(round(left + w0 * float(scale_factor[0]))))
    y1 = min(h, int(round(top + h0 * float(scale_factor[1]))))
    region = masks[:, y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    out = [
        F.interpolate(region[i : i + chunk, None].float(), size=(h0, w0), mode="bilinear", align_corners=False)[:, 0]
        > threshold
        for i in range(0, n, chunk)
    ]
    return torch.cat(out)
