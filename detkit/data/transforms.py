"""Data transforms: detkit resizes (which keep the map back to the original image) plus albumentations.

A pipeline is a list of specs ``{type: Name, **kwargs}``. ``Name`` is a detkit transform when it is
registered in ``detkit.registry.TRANSFORMS``, otherwise an albumentations transform (``getattr(A, Name)``).
Consecutive albumentations entries run as one ``A.Compose`` that moves boxes (pascal_voc), instance
masks (``masks``) and the semantic map (``mask``) together. Every transform takes and returns the sample
dict of docs/contracts.md and never modifies the arrays it is given.

Only the detkit resizes (``ResizeShortestEdge``, ``LetterBox``) update ``scale_factor`` / ``pad_offset``;
albumentations geometric transforms (crops, affine, ...) are for training, where nothing maps back, and
leave them as they are. Instance masks and ``sem_seg`` resize nearest; regions that a transform fills
become 0 in masks and 255 (ignore) in ``sem_seg`` (with albumentations' default ``fill_mask=0``).
"""
from __future__ import annotations

import difflib
import inspect
import os
import warnings
from typing import Any, Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.core.composition import BaseCompose  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform  # noqa: E402

from detkit.registry import TRANSFORMS  # noqa: E402

__all__ = ["build_transforms", "Pipeline", "ResizeShortestEdge", "LetterBox", "resize_output_size",
           "sanitize_instances", "INSTANCE_KEYS"]

# per-instance arrays (first dim N) that are filtered together with the boxes
INSTANCE_KEYS = ("boxes", "labels", "masks", "iscrowd", "areas")
SEM_IGNORE = 255
_INTERP = {"nearest": cv2.INTER_NEAREST_EXACT, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
           "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}
# BboxParams keys a config may set; format, label_fields and clip are fixed by detkit
_BBOX_KEYS = ("min_area", "min_visibility", "min_width", "min_height", "check_each_transform",
              "filter_invalid_bboxes", "max_accept_ratio")


def _interp(name: str) -> int:
    if name not in _INTERP:
        raise ValueError(f"interpolation '{name}' is not one of {sorted(_INTERP)}")
    return _INTERP[name]


def sanitize_instances(sample: dict, min_size: float = 0.0) -> dict:
    """Clip boxes to the image and drop boxes not wider/taller than ``min_size`` with their masks/labels."""
    if "boxes" not in sample:
        return sample
    h, w = sample["image"].shape[:2]
    boxes = np.asarray(sample["boxes"], dtype=np.float32).reshape(-1, 4)
    clipped = np.empty_like(boxes)
    np.clip(boxes[:, 0::2], 0.0, w, out=clipped[:, 0::2])
    np.clip(boxes[:, 1::2], 0.0, h, out=clipped[:, 1::2])
    keep = ((clipped[:, 2] - clipped[:, 0]) > min_size) & ((clipped[:, 3] - clipped[:, 1]) > min_size)
    out = dict(sample)
    out["boxes"] = clipped
    if not keep.all():
        out["boxes"] = clipped[keep]
        for k in INSTANCE_KEYS[1:]:
            if k in out and out[k] is not None and len(out[k]) == len(keep):
                out[k] = np.asarray(out[k])[keep]
    return out


def resize_output_size(h: int, w: int, short: int, max_size: int | None) -> tuple[int, int]:
    """Output ``(h, w)`` of a keep-ratio resize, computed as torchvision's GeneralizedRCNNTransform does.

    ``scale = min(short / min(h, w), max_size / max(h, w))`` and each side becomes ``floor(side * scale)``
    (``F.interpolate(scale_factor=scale, recompute_scale_factor=True)``).
    """
    scale = short / min(h, w)
    if max_size is not None:
        scale = min(scale, max_size / max(h, w))
    return max(1, int(h * scale)), max(1, int(w * scale))


def _nearest_resize(arr: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Nearest (pixel-centre, like cv2.INTER_NEAREST_EXACT) resize of the last two dims of ``[..., H, W]``."""
    h, w = arr.shape[-2:]
    rows = np.minimum(((np.arange(new_h) + 0.5) * (h / new_h)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * (w / new_w)).astype(np.int64), w - 1)
    return arr[..., rows[:, None], cols[None, :]]


def resize_sample(sample: dict, new_h: int, new_w: int, interpolation: int = cv2.INTER_LINEAR) -> dict:
    """Resize the image (and boxes, masks, sem_seg) to ``(new_h, new_w)``; update scale_factor / pad_offset."""
    img = sample["image"]
    h, w = img.shape[:2]
    out = dict(sample)
    out["image"] = cv2.resize(img, (new_w, new_h), interpolation=interpolation)
    sx, sy = new_w / w, new_h / h
    if out.get("boxes") is not None:
        out["boxes"] = (np.asarray(out["boxes"], np.float32).reshape(-1, 4)
                        * np.array([sx, sy, sx, sy], np.float32))
    if out.get("masks") is not None:
        out["masks"] = _nearest_resize(np.asarray(out["masks"]), new_h, new_w)
    if out.get("sem_seg") is not None:
        out["sem_seg"] = _nearest_resize(np.asarray(out["sem_seg"]), new_h, new_w)
    sf = out.get("scale_factor", (1.0, 1.0))
    out["scale_factor"] = (float(sf[0]) * sx, float(sf[1]) * sy)
    po = out.get("pad_offset", (0, 0))
    out["pad_offset"] = (float(po[0]) * sx, float(po[1]) * sy)  # padding scales with the image
    return sanitize_instances(out)


@TRANSFORMS.register
class ResizeShortestEdge:
    """Keep-ratio resize: short side to one of ``short_sizes`` (random when several), long side <= ``max_size``.

    The output size equals torchvision's ``GeneralizedRCNNTransform`` (``floor(side * scale)``); an image
    that it would not resize is returned unchanged. Boxes scale, masks / sem_seg resize nearest.

    Args:
        short_sizes: candidate short-side sizes (an int is one size).
        max_size: upper bound of the long side (None: unbounded).
        sample: ``'choice'`` picks one of ``short_sizes``; ``'range'`` picks an int in ``[min, max]``.
        interpolation: image interpolation, one of nearest, bilinear, bicubic, area, lanczos.
    """

    def __init__(self, short_sizes: int | Sequence[int] = (800,), max_size: int | None = 1333,
                 sample: str = "choice", interpolation: str = "bilinear"):
        self.short_sizes = (int(short_sizes),) if isinstance(short_sizes, (int, float)) else tuple(
            int(s) for s in short_sizes)
        if not self.short_sizes or min(self.short_sizes) <= 0:
            raise ValueError(f"ResizeShortestEdge: short_sizes must be positive ints, got {short_sizes!r}")
        if sample not in ("choice", "range"):
            raise ValueError(f"ResizeShortestEdge: sample must be 'choice' or 'range', got {sample!r}")
        if sample == "range" and len(self.short_sizes) != 2:
            raise ValueError("ResizeShortestEdge: sample='range' needs short_sizes=[min, max]")
        self.max_size = None if max_size is None else int(max_size)
        self.sample = sample
        self.interpolation = interpolation
        self._interp = _interp(interpolation)
        self.rng = np.random.default_rng()

    def _pick_short(self) -> int:
        if self.sample == "range":
            return int(self.rng.integers(self.short_sizes[0], self.short_sizes[1] + 1))
        if len(self.short_sizes) == 1:
            return self.short_sizes[0]
        return self.short_sizes[int(self.rng.integers(len(self.short_sizes)))]

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        new_h, new_w = resize_output_size(h, w, self._pick_short(), self.max_size)
        if (new_h, new_w) == (h, w):
            return sample
        return resize_sample(sample, new_h, new_w, self._interp)

    def __repr__(self) -> str:
        return (f"ResizeShortestEdge(short_sizes={list(self.short_sizes)}, max_size={self.max_size}, "
                f"sample={self.sample!r}, interpolation={self.interpolation!r})")


@TRANSFORMS.register
class LetterBox:
    """Keep-ratio resize to fit ``size`` (h, w), then pad centred; masks pad with 0, sem_seg with 255.

    Args:
        size: output ``(h, w)`` (an int is a square).
        pad_value: image fill value of the padding.
        scaleup: allow enlarging small images (False: only shrink).
        interpolation: image interpolation name.
    """

    def __init__(self, size: int | Sequence[int] = (640, 640), pad_value: int = 114, scaleup: bool = True,
                 interpolation: str = "bilinear"):
        self.size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
        self.pad_value = pad_value
        self.scaleup = scaleup
        self._interp = _interp(interpolation)

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        out_h, out_w = self.size
        r = min(out_h / h, out_w / w)
        if not self.scaleup:
            r = min(r, 1.0)
        new_h = min(out_h, max(1, int(round(h * r))))
        new_w = min(out_w, max(1, int(round(w * r))))
        if (new_h, new_w) != (h, w):
            sample = resize_sample(sample, new_h, new_w, self._interp)
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        return pad_sample(sample, top, out_h - new_h - top, left, out_w - new_w - left, self.pad_value)

    def __repr__(self) -> str:
        return f"LetterBox(size={self.size}, pad_value={self.pad_value}, scaleup={self.scaleup})"


def pad_sample(sample: dict, top: int, bottom: int, left: int, right: int, pad_value: Any = 0) -> dict:
    """Pad the image (``pad_value``), masks (0) and sem_seg (255); shift boxes and ``pad_offset``."""
    if top == bottom == left == right == 0:
        return sample
    out = dict(sample)
    img = sample["image"]
    value = [pad_value] * img.shape[2] if img.ndim == 3 and np.isscalar(pad_value) else pad_value
    out["image"] = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    if out.get("boxes") is not None:
        out["boxes"] = np.asarray(out["boxes"], np.float32).reshape(-1, 4) + np.array(
            [left, top, left, top], np.float32)
    if out.get("masks") is not None:
        out["masks"] = np.pad(np.asarray(out["masks"]), ((0, 0), (top, bottom), (left, right)))
    if out.get("sem_seg") is not None:
        out["sem_seg"] = np.pad(np.asarray(out["sem_seg"]), ((top, bottom), (left, right)),
                                constant_values=SEM_IGNORE)
    po = out.get("pad_offset", (0, 0))
    out["pad_offset"] = (float(po[0]) + left, float(po[1]) + top)
    return out


def _encode_sem(sem: np.ndarray) -> np.ndarray:
    """uint8 map with ``(s + 1) % 256`` so that albumentations' fill 0 decodes to 255 (ignore)."""
    sem = np.asarray(sem)
    if sem.dtype != np.uint8:
        if sem.size and (sem.min() < 0 or sem.max() > 255):
            raise ValueError(f"sem_seg values must be in 0..255 (255 = ignore) for albumentations, "
                             f"got range {sem.min()}..{sem.max()}")
        sem = sem.astype(np.uint8)
    return sem + np.uint8(1)  # wraps 255 -> 0


class AlbumentationsGroup:
    """Consecutive albumentations transforms run as one ``A.Compose`` on boxes, masks and sem_seg together."""

    def __init__(self, transforms: list, bbox_params: dict | None = None):
        bbox = A.BboxParams(format="pascal_voc", label_fields=["labels", "mask_idx"], clip=True,
                            **(bbox_params or {}))
        with warnings.catch_warnings():  # a colour-only group has nothing to do with boxes: not a problem
            warnings.filterwarnings("ignore", message="Got processor for bboxes")
            self.compose = A.Compose(transforms, bbox_params=bbox, mask_interpolation=cv2.INTER_NEAREST,
                                     strict=True)

    def __call__(self, sample: dict) -> dict:
        sample = sanitize_instances(sample)  # albumentations rejects degenerate boxes
        img = sample["image"]
        boxes = sample.get("boxes")
        n = 0 if boxes is None else len(boxes)
        labels = sample.get("labels")
        data: dict[str, Any] = {
            "image": img,
            "bboxes": np.zeros((0, 4), np.float32) if boxes is None else boxes,
            "labels": np.zeros(n, np.int64) if labels is None else np.asarray(labels),
            "mask_idx": np.arange(n, dtype=np.int64),
        }
        masks = sample.get("masks")
        masks = None if masks is None else np.asarray(masks)
        if masks is not None and n > 0:
            data["masks"] = np.asarray(masks).view(np.uint8) if masks.dtype == bool else masks
        if sample.get("sem_seg") is not None:
            data["mask"] = _encode_sem(sample["sem_seg"])
        res = self.compose(**data)
        return self._unpack(sample, res, masks)

    @staticmethod
    def _unpack(sample: dict, res: dict, masks: np.ndarray | None) -> dict:
        out = dict(sample)
        out["image"] = res["image"]
        h, w = res["image"].shape[:2]
        idx = np.asarray(res["mask_idx"], dtype=np.int64).reshape(-1)
        if sample.get("boxes") is not None:
            out["boxes"] = np.asarray(res["bboxes"], dtype=np.float32).reshape(-1, 4)
            if sample.get("labels") is not None:
                out["labels"] = np.asarray(res["labels"]).astype(np.asarray(sample["labels"]).dtype).reshape(-1)
            for k in INSTANCE_KEYS[3:]:
                if out.get(k) is not None:
                    out[k] = np.asarray(out[k])[idx]
        if masks is not None:
            kept = res["masks"][idx] if "masks" in res else np.zeros((0, h, w), np.uint8)
            out["masks"] = kept.view(bool) if masks.dtype == bool else kept
        if sample.get("sem_seg") is not None:
            sem = res["mask"] - np.uint8(1)  # 0 (fill) wraps to 255 = ignore
            out["sem_seg"] = sem.astype(np.asarray(sample["sem_seg"]).dtype, copy=False)
        return sanitize_instances(out)

    def __repr__(self) -> str:
        return f"AlbumentationsGroup({[t.__class__.__name__ for t in self.compose.transforms]})"


class Pipeline:
    """Runs transforms in order on a sample dict (a Compose for detkit samples).

    Random transforms are reseeded from ``torch.initial_seed()`` the first time the pipeline runs in a
    process (each DataLoader worker gets its own seed) unless ``seed()`` was called there.
    """

    def __init__(self, steps: Sequence[Callable[[dict], dict]]):
        self.steps = list(steps)
        self._seed_pid: int | None = None

    def seed(self, seed: int) -> None:
        """Seed every random step (albumentations groups and detkit transforms with an ``rng``)."""
        children = np.random.SeedSequence(int(seed) % (2 ** 128)).spawn(max(1, len(self.steps)))
        for step, child in zip(self.steps, children):
            if isinstance(step, AlbumentationsGroup):
                step.compose.set_random_seed(int(child.generate_state(1)[0]))
            elif hasattr(step, "rng"):
                step.rng = np.random.default_rng(child)
        self._seed_pid = os.getpid()

    def __call__(self, sample: dict) -> dict:
        if self._seed_pid != os.getpid():
            self.seed(torch.initial_seed())
        for step in self.steps:
            sample = step(sample)
        return sample

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return "Pipeline(\n" + "".join(f"  {s!r},\n" for s in self.steps) + ")"


def _albu_names() -> list[str]:
    return [n for n, o in vars(A).items()
            if inspect.isclass(o) and issubclass(o, (BasicTransform, BaseCompose)) and not n.startswith("_")]


def _closest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.4)
    return f" Closest names: {', '.join(close)}." if close else ""


def _build_albu(spec: dict, where: str) -> Any:
    """Build one albumentations transform (or composition such as OneOf) from a spec dict."""
    name = spec["type"]
    cls = getattr(A, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, (BasicTransform, BaseCompose))):
        raise ValueError(f"{where}: unknown transform '{name}': not a detkit transform "
                         f"({', '.join(TRANSFORMS) or 'none'}) nor an albumentations transform."
                         f"{_closest(name, list(TRANSFORMS) + _albu_names())}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    if issubclass(cls, BaseCompose):
        children = kwargs.get("transforms") or []
        kwargs["transforms"] = [_build_albu(_check_spec(c, f"{where}.transforms[{j}]"),
                                            f"{where}.transforms[{j}]") for j, c in enumerate(children)]
    elif hasattr(cls, "InitSchema"):
        valid = set(cls.InitSchema.model_fields) | {"p", "strict"}
        for k in kwargs:
            if k not in valid:
                raise ValueError(f"{where}: albumentations {name} has no argument '{k}'."
                                 f"{_closest(k, sorted(valid))} Valid: {', '.join(sorted(valid))}")
    try:
        return cls(**kwargs)
    except Exception as e:  # pydantic ValidationError, TypeError, ValueError
        raise ValueError(f"{where}: cannot build albumentations {name}({kwargs}): {e}") from e


def _check_spec(spec: Any, where: str) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ValueError(f"{where}: a transform spec must be a mapping with a 'type' key, got {spec!r}")
    return spec


def _bbox_params(specs: Sequence[dict], bbox_params: dict | None) -> dict:
    params = dict(bbox_params or {})
    for i, spec in enumerate(specs):
        if isinstance(spec, dict) and spec.get("type") == "BboxParams":
            params.update({k: v for k, v in spec.items() if k != "type"})
    bad = [k for k in params if k not in _BBOX_KEYS]
    if bad:
        raise ValueError(f"bbox_params: unknown or fixed key(s) {bad}; settable keys: {', '.join(_BBOX_KEYS)} "
                         "(format=pascal_voc, label_fields and clip=True are fixed by detkit)")
    return params


def build_transforms(specs: Sequence[dict] | None, bbox_params: dict | None = None) -> Pipeline:
    """Build a pipeline from specs ``[{type: Name, **kwargs}, ...]`` (detkit or albumentations names).

    Args:
        specs: transform specs, in order. A ``{type: BboxParams, ...}`` entry sets albumentations'
            box filtering (min_visibility, min_area, ...) for the whole pipeline.
        bbox_params: defaults for the same keys (entries in ``specs`` override them).
    Returns:
        a ``Pipeline``, callable on a sample dict.
    """
    specs = list(specs or [])
    params = _bbox_params(specs, bbox_params)
    steps: list = []
    pending: list = []

    def flush() -> None:
        if pending:
            steps.append(AlbumentationsGroup(list(pending), params))
            pending.clear()

    for i, spec in enumerate(specs):
        where = f"pipeline[{i}]"
        name = _check_spec(spec, where)["type"]
        if name == "BboxParams":
            continue
        if name in TRANSFORMS:
            flush()
            try:
                steps.append(TRANSFORMS.build(spec))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: {e}") from e
        else:
            pending.append(_build_albu(spec, where))
    flush()
    return Pipeline(steps)
