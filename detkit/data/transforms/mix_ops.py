"""Image-mixing steps of :class:`detkit.data.datasets.mix.MixDataset`: letterbox, mosaic (``A.Mosaic``), mixup.

``A.Mosaic`` moves one image, one ``mask`` and the boxes (with their label fields) of four items. To
carry instance masks through it, the items' masks are packed as **bits** of one ``uint8 [H, W, 1 + C]``
mask: instance ``g`` is bit ``g % 8`` of channel ``1 + g // 8`` (8 instances per byte, so 4 x 30 COCO
instances at 640 px cost 6 MB, not 48; each item starts at its own channel), and its box carries ``g``
as the label field ``mask_idx``; channel 0 holds the semantic map (encoded ``(s + 1) % 256`` so that
albumentations' fill 0 decodes to 255 = ignore) or zeros. Nearest-neighbour resizes, crops and pads keep
every bit, so the masks come out exactly where the image pixels go. Packing happens before the
letterbox resize, so one ``cv2.resize`` moves all masks of an item at once.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from detkit.data.transforms.geometric import LetterBox, sanitize_instances  # noqa: E402
from detkit.data.transforms.pipeline import encode_sem  # noqa: E402

__all__ = [
    "MosaicCombiner",
    "letterbox_packed",
    "mixup_samples",
    "pack_masks",
    "tighten_boxes_to_masks",
    "unpack_masks",
]


def pack_masks(masks: np.ndarray, channel: int, channels: int, sem: np.ndarray | None = None) -> np.ndarray:
    """Pack ``[N, H, W]`` 0/1 masks as bits ``8 * channel + (0 .. N - 1)`` of ``uint8 [H, W, 1 + channels]``.

    Channel 0 is the encoded semantic map ``sem`` (``[H, W]``, 255 = ignore) or zeros.
    """
    n, h, w = masks.shape
    out = np.zeros((h, w, 1 + channels), np.uint8)
    if sem is not None:
        out[..., 0] = encode_sem(sem)
    if n:
        bits = np.packbits(np.asarray(masks) != 0, axis=0, bitorder="little")  # [ceil(N/8), H, W]
        out[..., 1 + channel : 1 + channel + len(bits)] = bits.transpose(1, 2, 0)
    return out


def unpack_masks(packed: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The masks of instances ``idx`` (int ``[K]``) from a packed ``[H, W, C]`` mask, as ``uint8 [K, H, W]``."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if len(idx) == 0:
        return np.zeros((0,) + packed.shape[:2], np.uint8)
    planes = packed[..., 1 + idx // 8]  # [H, W, K]
    bits = (planes >> (idx % 8).astype(np.uint8)) & np.uint8(1)
    return np.ascontiguousarray(bits.transpose(2, 0, 1))


def tighten_boxes_to_masks(sample: dict) -> dict:
    """Shrink each box to the bounding box of its mask's pixels inside it; drop instances whose mask is empty there.

    A box cut by a crop keeps its full extent along the cut edge, while the object's visible part may be
    much narrower (a circle cut near its edge): with masks the box can follow the visible part, as
    Ultralytics recomputes boxes from segments. Uncut boxes change at most by the box/mask disagreement.
    """
    masks = sample.get("masks")
    boxes = sample.get("boxes")
    if masks is None or boxes is None or len(boxes) == 0:
        return sample
    masks = np.asarray(masks)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    keep = np.ones(len(boxes), bool)
    for k, m in enumerate(masks):
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        if len(rows) == 0:
            keep[k] = False
            continue
        tight = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
        box = np.concatenate([np.maximum(boxes[k, :2], tight[:2]), np.minimum(boxes[k, 2:], tight[2:])])
        keep[k] = box[2] > box[0] and box[3] > box[1]
        boxes[k] = box
    out = dict(sample)
    out["boxes"] = boxes[keep]
    for key in ("labels", "masks", "iscrowd", "areas"):
        if out.get(key) is not None and len(out[key]) == len(keep):
            out[key] = np.asarray(out[key])[keep]
    return out


def mixup_samples(a: dict, b: dict, ratio: float) -> dict:
    """Blend two same-size samples ``ratio * a + (1 - ratio) * b`` and concatenate their instances.

    Semantic maps keep the pixels where both agree and become 255 (ignore) elsewhere.
    """
    if a["image"].shape != b["image"].shape:
        raise ValueError(f"mixup needs two images of the same size, got {a['image'].shape} and {b['image'].shape}")
    out = dict(a)
    img = a["image"].astype(np.float32) * ratio + b["image"].astype(np.float32) * (1.0 - ratio)
    out["image"] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    out["boxes"] = np.concatenate(
        [np.asarray(a["boxes"], np.float32).reshape(-1, 4), np.asarray(b["boxes"], np.float32).reshape(-1, 4)]
    )
    out["labels"] = np.concatenate([np.asarray(a["labels"], np.int64), np.asarray(b["labels"], np.int64)])
    if a.get("masks") is not None and b.get("masks") is not None:
        out["masks"] = np.concatenate([np.asarray(a["masks"], np.uint8), np.asarray(b["masks"], np.uint8)])
    if a.get("sem_seg") is not None and b.get("sem_seg") is not None:
        sa, sb = np.asarray(a["sem_seg"]), np.asarray(b["sem_seg"])
        out["sem_seg"] = np.where(sa == sb, sa, np.asarray(255, sa.dtype)).astype(sa.dtype)
    return out


def letterbox_packed(
    sample: dict,
    letterbox: LetterBox,
    channel: int = 0,
    channels: int | None = None,
) -> tuple[dict, np.ndarray | None]:
    """Letterbox ``sample`` with its masks / sem_seg packed (see :func:`pack_masks`) at bit channel ``channel``.

    Returns:
        the letterboxed sample without ``masks`` / ``sem_seg`` (``scale_factor`` / ``pad_offset`` counted
        from this call), and the packed ``uint8 [H, W, 1 + channels]`` mask of the output size, or None
        when the sample has neither masks nor sem_seg.
    """
    sample = sanitize_instances(sample)
    masks, sem = sample.get("masks"), sample.get("sem_seg")
    base = {k: v for k, v in sample.items() if k not in ("masks", "sem_seg")}
    out = letterbox({**base, "scale_factor": (1.0, 1.0), "pad_offset": (0, 0)})
    if masks is None and sem is None:
        return out, None
    h, w = sample["image"].shape[:2]
    masks = np.zeros((0, h, w), np.uint8) if masks is None else np.asarray(masks)
    own = (len(masks) + 7) // 8
    channels = own if channels is None else channels
    small = pack_masks(masks, 0, own, sem)  # [h, w, 1 + own]: sem + this item's bits
    (sx, sy), (left, top) = out["scale_factor"], out["pad_offset"]
    new_w, new_h = int(round(w * sx)), int(round(h * sy))
    if (new_h, new_w) != (h, w):
        small = cv2.resize(small, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT).reshape(new_h, new_w, -1)
    packed = np.zeros(out["image"].shape[:2] + (1 + channels,), np.uint8)
    top, left = int(round(top)), int(round(left))
    region = packed[top : top + new_h, left : left + new_w]
    region[..., 0] = small[..., 0]
    region[..., 1 + channel : 1 + channel + own] = small[..., 1:]
    return out, packed


def unpack_sample(
    sample: dict,
    packed: np.ndarray | None,
    idx: np.ndarray,
    with_masks: bool,
    with_sem: bool,
    sem_dtype: np.dtype = np.uint8,
) -> dict:
    """Put ``masks`` (instances ``idx`` of ``packed``) and ``sem_seg`` (channel 0) back into ``sample``."""
    out = dict(sample)
    if with_masks:
        out["masks"] = unpack_masks(packed, idx)
    if with_sem:
        out["sem_seg"] = (packed[..., 0] - np.uint8(1)).astype(sem_dtype, copy=False)  # fill 0 -> 255
    return out


class MosaicCombiner:
    """Four samples -> one ``size`` mosaic: each letterboxed to ``size``, then ``A.Mosaic`` on a 2x2 grid of them.

    The 2x2 canvas is cropped back to ``size`` around a centre drawn by albumentations from
    ``center_range`` (fraction of the valid zone; ``(0, 1)`` lets the junction fall anywhere in the crop,
    as Ultralytics' ``mosaic_border``). Boxes cut by the crop to less than ``min_visibility`` of their
    area are dropped with their masks.

    Args:
        size: output and cell size (h, w). center_range: see above. pad_value: image fill.
        min_visibility: minimum kept fraction of a box's area.
    """

    def __init__(
        self,
        size: tuple[int, int],
        center_range: Sequence[float] = (0.25, 0.75),
        pad_value: int = 114,
        min_visibility: float = 0.1,
    ):
        self.size = (int(size[0]), int(size[1]))
        self.min_visibility = float(min_visibility)
        self.letterbox_op = LetterBox(self.size, pad_value=pad_value)
        bbox = A.BboxParams(format="pascal_voc", label_fields=["labels", "mask_idx"], clip=True)
        mosaic = A.Mosaic(
            grid_yx=(2, 2),
            target_size=self.size,
            cell_shape=self.size,
            center_range=tuple(float(c) for c in center_range),
            fit_mode="contain",
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            fill=pad_value,
            fill_mask=0,
            p=1.0,
        )
        self.compose = A.Compose([mosaic], bbox_params=bbox, mask_interpolation=cv2.INTER_NEAREST, strict=True)

    def seed(self, seed: np.random.SeedSequence) -> None:
        """Draw the mosaic's centre and cell assignment from generators seeded by ``seed``."""
        numpy_seq, python_seq = seed.spawn(2)
        self.compose.set_random_state(
            np.random.default_rng(numpy_seq), random.Random(int(python_seq.generate_state(1, np.uint64)[0]))
        )

    def letterbox(self, sample: dict) -> dict:
        """One sample letterboxed to ``size`` (masks and sem_seg moved in one packed resize)."""
        out, packed = letterbox_packed(sample, self.letterbox_op)
        return unpack_sample(
            out,
            packed,
            np.arange(len(out["boxes"])),
            sample.get("masks") is not None,
            sample.get("sem_seg") is not None,
            np.asarray(sample.get("sem_seg", 0)).dtype,
        )

    def __call__(self, items: list[dict]) -> dict:
        """Combine ``items`` (the first is the primary; 1 to 4 samples of any size) into one ``size`` sample."""
        with_masks = all(it.get("masks") is not None for it in items)
        with_sem = all(it.get("sem_seg") is not None for it in items)
        items = [
            {k: v for k, v in it.items() if (k != "masks" or with_masks) and (k != "sem_seg" or with_sem)}
            for it in items
        ]
        first_channel = np.cumsum([0] + [(len(it["boxes"]) + 7) // 8 for it in items])
        channels = int(first_channel[-1])
        data, before = [], np.zeros((8 * channels, 4), np.float32)  # each instance's box before the crop
        for it, ch in zip(items, first_channel):
            lb, packed = letterbox_packed(it, self.letterbox_op, int(ch), channels)
            n = len(lb["boxes"])
            data.append(
                {
                    "image": lb["image"],
                    "bboxes": np.asarray(lb["boxes"], np.float32).reshape(-1, 4),
                    "labels": np.asarray(lb["labels"], np.int64).reshape(-1),
                    "mask_idx": 8 * int(ch) + np.arange(n, dtype=np.int64),
                    **({"mask": packed} if packed is not None else {}),
                }
            )
            before[8 * int(ch) : 8 * int(ch) + n] = data[-1]["bboxes"]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*mosaic_metadata.*")
            res = self.compose(**data[0], mosaic_metadata=data[1:])
        boxes = np.asarray(res["bboxes"], np.float32).reshape(-1, 4)
        gidx = np.asarray(res["mask_idx"], np.int64).reshape(-1)
        keep = _area(boxes) >= self.min_visibility * np.maximum(_area(before[gidx]), 1e-6)
        out = {k: v for k, v in items[0].items() if k not in ("masks", "sem_seg")}
        out.update(
            image=res["image"],
            boxes=boxes[keep],
            labels=np.asarray(res["labels"], np.int64)[keep],
            scale_factor=(1.0, 1.0),
            pad_offset=(0, 0),
        )
        sem_dtype = np.asarray(items[0]["sem_seg"]).dtype if with_sem else np.uint8
        return unpack_sample(out, res.get("mask"), gidx[keep], with_masks, with_sem, sem_dtype)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
