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
import random
import warnings
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call on import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.core.composition import BaseCompose  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform  # noqa: E402

from detkit.data.transforms.geometric import (  # noqa: E402,F401
    INSTANCE_KEYS,
    SEM_IGNORE,
    LetterBox,
    ResizeShortestEdge,
    pad_sample,
    resize_output_size,
    resize_sample,
    sanitize_instances,
)
from detkit.registry import TRANSFORMS  # noqa: E402

# the resizes live in detkit.data.transforms.geometric and are re-exported here
__all__ = [
    "INSTANCE_KEYS",
    "SEM_IGNORE",
    "LetterBox",
    "Pipeline",
    "ResizeShortestEdge",
    "as_pipeline",
    "build_transforms",
    "encode_sem",
    "pad_sample",
    "resize_output_size",
    "resize_sample",
    "sanitize_instances",
]

# BboxParams keys a config may set; format, label_fields and clip are fixed by detkit
_BBOX_KEYS = (
    "min_area",
    "min_visibility",
    "min_width",
    "min_height",
    "check_each_transform",
    "filter_invalid_bboxes",
    "max_accept_ratio",
)


def encode_sem(sem: np.ndarray) -> np.ndarray:
    """uint8 map with ``(s + 1) % 256`` so that albumentations' fill 0 decodes to 255 (ignore)."""
    sem = np.asarray(sem)
    if sem.dtype != np.uint8:
        if sem.size and (sem.min() < 0 or sem.max() > 255):
            raise ValueError(
                f"sem_seg values must be in 0..255 (255 = ignore) for albumentations, "
                f"got range {sem.min()}..{sem.max()}"
            )
        sem = sem.astype(np.uint8)
    return sem + np.uint8(1)  # wraps 255 -> 0


class AlbumentationsGroup:
    """Consecutive albumentations transforms run as one ``A.Compose`` on boxes, masks and sem_seg together."""

    def __init__(self, transforms: list, bbox_params: dict | None = None):
        bbox = A.BboxParams(format="pascal_voc", label_fields=["labels", "mask_idx"], clip=True, **(bbox_params or {}))
        with warnings.catch_warnings():  # a colour-only group has nothing to do with boxes: not a problem
            warnings.filterwarnings("ignore", message="Got processor for bboxes")
            self.compose = A.Compose(transforms, bbox_params=bbox, mask_interpolation=cv2.INTER_NEAREST, strict=True)

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
            data["mask"] = encode_sem(sample["sem_seg"])
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

    def seed(self, seed: np.random.SeedSequence) -> None:
        """Make every transform of the group draw, in turn, from one numpy and one python stream of ``seed``.

        (``Compose.set_random_seed`` would give each transform its own generator with the *same* seed, so
        e.g. ``HorizontalFlip(p=0.5)`` and ``ToGray(p=0.5)`` would always fire together.)
        """
        numpy_seq, python_seq = seed.spawn(2)
        self.compose.set_random_state(
            np.random.default_rng(numpy_seq), random.Random(int(python_seq.generate_state(1, np.uint64)[0]))
        )

    def __repr__(self) -> str:
        return f"AlbumentationsGroup({[t.__class__.__name__ for t in self.compose.transforms]})"


class Pipeline:
    """Runs transforms in order on a sample dict (a Compose for detkit samples).

    Random steps draw from generators that ``seed()`` sets. The training loader calls ``seed((seed, epoch,
    index))`` before every sample (``detkit.data.build.SeededDataset``), so an augmentation is a pure
    function of those three numbers: the same after a resume and for any number of workers or processes.
    Used alone, a pipeline seeds itself from ``torch.initial_seed()`` the first time it runs in a process
    (each DataLoader worker gets its own seed) unless ``seed()`` was called there.
    """

    def __init__(self, steps: Sequence[Callable[[dict], dict]]):
        self.steps = list(steps)
        self._seed_pid: int | None = None

    def seed(self, seed: int | Sequence[int]) -> None:
        """Seed every random step (albumentations groups and detkit transforms with an ``rng``).

        Args:
            seed: an int, or a sequence of ints such as ``(base_seed, epoch, index)`` (mixed by
                ``numpy.random.SeedSequence``; each step gets an independent child stream).
        """
        entropy = int(seed) % 2**128 if np.isscalar(seed) else [int(s) % 2**64 for s in seed]
        children = np.random.SeedSequence(entropy).spawn(max(1, len(self.steps)))
        for step, child in zip(self.steps, children):
            if isinstance(step, AlbumentationsGroup):
                step.seed(child)
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
    return [
        n
        for n, o in vars(A).items()
        if inspect.isclass(o) and issubclass(o, (BasicTransform, BaseCompose)) and not n.startswith("_")
    ]


def _closest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.4)
    return f" Closest names: {', '.join(close)}." if close else ""


def _build_albu(spec: dict, where: str) -> Any:
    """Build one albumentations transform (or composition such as OneOf) from a spec dict."""
    name = spec["type"]
    cls = getattr(A, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, (BasicTransform, BaseCompose))):
        raise ValueError(
            f"{where}: unknown transform '{name}': not a detkit transform "
            f"({', '.join(TRANSFORMS) or 'none'}) nor an albumentations transform."
            f"{_closest(name, list(TRANSFORMS) + _albu_names())}"
        )
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    if issubclass(cls, BaseCompose):
        children = kwargs.get("transforms") or []
        kwargs["transforms"] = [
            _build_albu(_check_spec(c, f"{where}.transforms[{j}]"), f"{where}.transforms[{j}]")
            for j, c in enumerate(children)
        ]
    elif hasattr(cls, "InitSchema"):
        valid = set(cls.InitSchema.model_fields) | {"p", "strict"}
        for k in kwargs:
            if k not in valid:
                raise ValueError(
                    f"{where}: albumentations {name} has no argument '{k}'."
                    f"{_closest(k, sorted(valid))} Valid: {', '.join(sorted(valid))}"
                )
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
    for spec in specs:
        if isinstance(spec, dict) and spec.get("type") == "BboxParams":
            params.update({k: v for k, v in spec.items() if k != "type"})
    bad = [k for k in params if k not in _BBOX_KEYS]
    if bad:
        raise ValueError(
            f"bbox_params: unknown or fixed key(s) {bad}; settable keys: {', '.join(_BBOX_KEYS)} "
            "(format=pascal_voc, label_fields and clip=True are fixed by detkit)"
        )
    return params


def as_pipeline(pipeline: Sequence[dict] | Callable | None) -> Callable | None:
    """A dataset's ``pipeline`` argument as a callable: None and callables as given, spec lists built."""
    if pipeline is None or callable(pipeline):
        return pipeline
    return build_transforms(list(pipeline))


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
