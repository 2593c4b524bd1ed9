"""Normalise and pad a uint8 batch on the model's device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.ops.batched import sizes_tensor


def not_a_batch(given: object) -> str:
    """The message for a model called with images instead of the collated batch dict (docs/contracts.md)."""
    return (
        f"detkit models take a collated batch dict, got {type(given).__name__}; for images call "
        "detkit.predict(model, images)"
    )


class Preprocessor(nn.Module):
    """uint8 images [B,3,H,W] -> float32 normalised images, zero outside each image, padded to a divisor.

    Arithmetic follows torchvision's GeneralizedRCNNTransform: ``(x / 255 - mean / 255) / (std / 255)``
    (mean/std given in 0..255 pixel units), and the padded region is 0 *after* normalisation.

    Args:
        pixel_mean: per-channel mean, RGB, in 0..255 units.
        pixel_std: per-channel std, RGB, in 0..255 units.
        size_divisor: pad height and width (bottom/right) up to a multiple of this.
        channels_last: return a channels-last tensor: True (faster convolutions on GPUs with AMP), False
            (default), or ``"cpu_train"``: on the CPU under autograd only, i.e. in training steps, where oneDNN's
            convolutions then skip reordering NCHW maps and RoIAlign reads the maps in place (a YOLO n step ~0.86x,
            a Faster / Mask R-CNN R50-FPN step ~0.84x, the R18 GN shapes models ~0.90x the NCHW one;
            docs/benchmarks.md), while inference keeps NCHW and its reference arithmetic.
    """

    def __init__(
        self,
        pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
        pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
        size_divisor: int = 32,
        channels_last: bool | str = False,
    ):
        super().__init__()
        if len(pixel_mean) != 3 or len(pixel_std) != 3:
            raise ValueError(f"pixel_mean and pixel_std need 3 values (RGB), got {pixel_mean} and {pixel_std}")
        # torch's default dtype (float32; float64 where a test sets it): the dtype of the normalised images
        mean = torch.tensor([float(m) / 255.0 for m in pixel_mean])
        std = torch.tensor([float(s) / 255.0 for s in pixel_std])
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        # a zero mean and a 255 std (YOLO's pixels / 255) leave ``x / 255`` as it is: those two passes are skipped
        self.identity_mean = all(float(m) == 0.0 for m in pixel_mean)
        self.identity_std = all(float(s) == 255.0 for s in pixel_std)
        self.size_divisor = int(size_divisor)
        if not isinstance(channels_last, bool) and channels_last != "cpu_train":
            raise ValueError(
                f"model.preprocess.channels_last must be true, false or 'cpu_train' (channels_last in CPU "
                f"training steps only), got {channels_last!r}"
            )
        self.channels_last = channels_last

    def forward(
        self,
        images: Tensor | dict,
        image_sizes: Sequence[Sequence[int]] | None = None,
        pad_size: Sequence[int] | None = None,
    ) -> Tensor:
        """Normalise and pad.

        Args:
            images: uint8 (or float in 0..255) [B,3,H,W], or a batch dict with ``images``/``image_sizes``
                (and optionally ``pad_size``).
            image_sizes: (h, w) of each image before padding; default: the full H, W.
            pad_size: (H, W) to pad to at least (then up to ``size_divisor``): the trainer gives the largest
                padded size of the global batch of a distributed step, so that every process pads its images
                alike and an image's features do not depend on the process that holds it.

        Returns:
            float32 [B,3,H',W'] on this module's device, H' and W' multiples of ``size_divisor`` (and at
            least ``pad_size``), zero outside ``image_sizes``.
        """
        if not isinstance(images, (dict, Tensor)):  # a list of images, a path (torchvision's / Ultralytics' call)
            raise TypeError(not_a_batch(images))
        if isinstance(images, dict):
            image_sizes = images.get("image_sizes") if image_sizes is None else image_sizes
            pad_size = images.get("pad_size") if pad_size is None else pad_size
            images = images["images"]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B,3,H,W], got shape {tuple(images.shape)}")
        b, _, h, w = images.shape
        x = images.to(self.mean.device, non_blocking=True)
        ph, pw = self.padding(h, w, pad_size)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))  # [B,3,H',W'] (the padding is zeroed after normalisation)
        if image_sizes is not None and len(image_sizes) != b:
            raise ValueError(f"{len(image_sizes)} image_sizes for a batch of {b} images")
        # nothing to zero when every image fills the (unpadded) batch
        full = image_sizes is None or all(int(s[0]) >= h and int(s[1]) >= w for s in image_sizes)
        layout = torch.channels_last if self.wants_channels_last(x) else torch.contiguous_format
        if full and not (ph or pw):
            return self.normalize(x, layout=layout)
        sizes = [(h, w)] * b if image_sizes is None else image_sizes
        return self.normalize(x, sizes_tensor(sizes, x.device), layout=layout)

    def wants_channels_last(self, x: Tensor) -> bool:
        """Whether :meth:`forward` returns ``x`` [B,3,H,W] channels_last (``"cpu_train"``: CPU + autograd)."""
        if self.channels_last == "cpu_train":
            return x.device.type == "cpu" and torch.is_grad_enabled()
        return self.channels_last

    def padding(self, h: int, w: int, pad_size: Sequence[int] | None = None) -> tuple[int, int]:
        """Rows and columns to add below / right of an [h, w] batch: up to ``pad_size``, then to the divisor."""
        th, tw = (h, w) if pad_size is None else (max(h, int(pad_size[0])), max(w, int(pad_size[1])))
        d = self.size_divisor
        if d > 1:
            th, tw = -(-th // d) * d, -(-tw // d) * d
        return th - h, tw - w

    def normalize(
        self, images: Tensor, image_sizes: Tensor | None = None, layout: torch.memory_format = torch.contiguous_format
    ) -> Tensor:
        """``(x / 255 - mean) / std`` of uint8 (or 0..255 float) images [B,3,H,W], zero outside ``image_sizes``.

        The tensor-only step of :meth:`forward` (no padding, no Python sizes): ``image_sizes`` int64 [B,2]
        (h, w) of each image inside the batch, or None to keep every pixel. Returns float [B,3,H,W] in the
        dtype of ``mean`` (float32, or float64 after ``model.double()``) and the memory ``layout``. The arithmetic
        runs in place on one fresh copy (the same values as out of place, without three more image-sized
        allocations: ~40 ms of a yolo_n step at 8x640 on the CPU); subtracting a zero mean and dividing by a unit
        std are skipped (exact either way).
        """
        x = images.to(self.mean.dtype, memory_format=layout, copy=True)  # [B,3,H,W], never the caller's tensor
        x.div_(255.0)
        if not self.identity_mean:
            x.sub_(self.mean)
        if not self.identity_std:
            x.div_(self.std)
        if image_sizes is None:
            return x
        rows = torch.arange(x.shape[2], device=x.device)
        cols = torch.arange(x.shape[3], device=x.device)
        valid = (rows[None, :, None] < image_sizes[:, 0, None, None]) & (
            cols[None, None, :] < image_sizes[:, 1, None, None]
        )
        return x.masked_fill_(~valid[:, None], 0.0)

    def extra_repr(self) -> str:
        mean = [round(float(v) * 255, 3) for v in self.mean.flatten()]
        std = [round(float(v) * 255, 3) for v in self.std.flatten()]
        return f"pixel_mean={mean}, pixel_std={std}, size_divisor={self.size_divisor}"
