"""``MixDataset``: YOLO-style training data (mosaic, mixup, then affine / colour / flip) around a dataset.

The recipe follows Ultralytics (YOLOv8 defaults): every sample is a mosaic of the requested image and
3 random others (each letterboxed to ``size`` first, combined by albumentations' ``A.Mosaic``), with
probability ``mixup.p`` blended with a second mosaic (ratio ~ Beta(32, 32), labels concatenated), then
passed through ``pipeline`` (e.g. ``A.Affine``, ``A.ColorJitter``, ``A.HorizontalFlip``). In the last
``close_mosaic.epochs`` epochs (and when ``mosaic.p`` misses) a sample is the image letterboxed to
``size`` and the same pipeline. See docs/datasets.md, "YOLO augmentation".

Every random choice (mosaic or not, the 3 partner images, the mosaic centre, mixup and its partner and
ratio, the pipeline's parameters) is drawn from generators that ``pipeline.seed((seed, epoch, index))``
sets, which ``detkit.data.build.SeededDataset`` calls before each sample: a sample is a pure function of
those numbers, the same after a resume and with any number of workers.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data

from detkit.data.build import build_dataset
from detkit.data.datasets.inner import inner_dataset_config
from detkit.data.transforms import build_transforms
from detkit.data.transforms.geometric import sanitize_instances
from detkit.data.transforms.mix_ops import MosaicCombiner, mixup_samples, tighten_boxes_to_masks
from detkit.registry import DATASETS

__all__ = ["MixDataset", "MixPipeline"]

_MOSAIC_KEYS = {"p": 1.0, "size": None, "center_range": (0.25, 0.75), "min_visibility": 0.1}
_MIXUP_KEYS = {"p": 0.0, "alpha": 32.0}
_CLOSE_KEYS = {"epochs": 0, "max_epochs": None}


def _options(given: dict | None, defaults: dict, name: str) -> dict:
    """``defaults`` updated with ``given``; an unknown key raises naming the nearest valid one."""
    given = dict(given or {})
    for k in given:
        if k not in defaults:
            close = difflib.get_close_matches(k, list(defaults), n=1, cutoff=0.4)
            raise ValueError(
                f"MixDataset: unknown key '{name}.{k}'"
                f"{f' (did you mean {close[0]!r}?)' if close else ''}; valid: {', '.join(defaults)}"
            )
    return {**defaults, **given}


class MixPipeline:
    """``MixDataset.pipeline``: seeds every random step of the dataset; calling it runs the post-mix transforms.

    ``seed(key)`` (an int or ints such as ``(seed, epoch, index)``) seeds, from independent child streams
    of ``numpy.random.SeedSequence(key)``, the dataset's own choices, the mosaic, the inner dataset's
    pipeline and the post-mix ``transforms``.
    """

    def __init__(self, owner: MixDataset, transforms: Callable | None):
        self.owner = owner
        self.transforms = transforms

    def seed(self, seed: int | Sequence[int]) -> None:
        """Seed the whole sample-making process (see the class docstring)."""
        entropy = int(seed) % 2**128 if np.isscalar(seed) else [int(s) % 2**64 for s in seed]
        own, mosaic, inner, post = np.random.SeedSequence(entropy).spawn(4)
        self.owner.rng = np.random.default_rng(own)
        self.owner.mosaic.seed(mosaic)
        for pipe, child in ((getattr(self.owner.dataset, "pipeline", None), inner), (self.transforms, post)):
            if callable(getattr(pipe, "seed", None)):
                pipe.seed([int(x) for x in child.generate_state(4)])
        self.owner._seed_pid = os.getpid()

    def __call__(self, sample: dict) -> dict:
        return self.transforms(sample) if self.transforms is not None else sample

    def __repr__(self) -> str:
        return f"MixPipeline({self.transforms!r})"


@DATASETS.register
class MixDataset(torch.utils.data.Dataset):
    """Mosaic + mixup + a post-mix pipeline around ``dataset`` (Ultralytics' YOLO training recipe).

    Samples follow docs/contracts.md at a fixed ``size``: ``image`` uint8 ``[h, w, 3]``, ``boxes`` float32
    ``[N, 4]``, ``labels`` int64 ``[N]``, ``masks`` uint8 ``[N, h, w]`` and ``sem_seg`` ``[h, w]`` when the
    inner samples have them, the primary image's ``image_id`` and ``orig_size``, ``scale_factor`` (1, 1)
    and ``pad_offset`` (0, 0) (a mixed image maps back to no single original). Boxes narrower or lower than
    ``min_size`` pixels, or cut by the mosaic crop to less than ``mosaic.min_visibility`` of their area,
    are dropped with their masks. Attributes that this class lacks (``class_names``, ``cat_ids``,
    ``label_to_cat_id``, ``coco``, ``with_masks``, ...) come from the inner dataset; ``aspect_ratios`` are
    all 1 (square output).

    Args:
        dataset: the inner dataset (a config dict, default ``{type: CocoDataset}``, or a dataset object).
        size: output ``(h, w)`` (an int is a square; default 640; ``mosaic.size`` is an alias).
        mosaic: ``p`` (1.0), ``center_range`` ((0.25, 0.75)), ``min_visibility`` (0.1), ``size``.
        mixup: ``p`` (0.0) and ``alpha`` (32.0: ratio ~ Beta(alpha, alpha)).
        pipeline: post-mix transform specs (``build_transforms``) or a callable on a sample dict.
        close_mosaic: ``epochs`` (0): the last ``epochs`` of ``max_epochs`` use neither mosaic nor mixup.
        pad_value: grey of letterbox and mosaic padding. min_size: see above.
        tighten_boxes: with masks, shrink each box to its mask's pixels (``tighten_boxes_to_masks``).
        ann_file, img_dir, on_error: set in the inner dataset config (so that ``data.train.ann_file`` and
            ``data.train.on_error`` work as with a plain ``CocoDataset``).

    Bad records: the inner dataset's ``on_error`` decides (raise, or leave them out and count them in
    ``skipped``, which reads through); a primary image the inner dataset skips gives ``None``, a skipped
    mosaic partner is left out of the mosaic.
    """

    def __init__(
        self,
        dataset: dict | Any = None,
        size: int | Sequence[int] | None = None,
        mosaic: dict | None = None,
        mixup: dict | None = None,
        pipeline: Sequence[dict] | Callable | None = None,
        close_mosaic: dict | None = None,
        pad_value: int = 114,
        min_size: float = 2.0,
        tighten_boxes: bool = True,
        ann_file: str | None = None,
        img_dir: str | None = None,
        on_error: str | None = None,
    ):
        inner = inner_dataset_config(
            {"type": "CocoDataset"} if dataset is None else dataset,
            "MixDataset",
            ann_file=ann_file,
            img_dir=img_dir,
            on_error=on_error,
        )
        self.dataset = build_dataset(inner) if isinstance(inner, dict) else inner
        mos = _options(mosaic, _MOSAIC_KEYS, "mosaic")
        self.mixup_cfg = _options(mixup, _MIXUP_KEYS, "mixup")
        self.close_cfg = _options(close_mosaic, _CLOSE_KEYS, "close_mosaic")
        self.size = _resolve_size(size, mos.pop("size"))
        for name, p in (("mosaic.p", mos["p"]), ("mixup.p", self.mixup_cfg["p"])):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"MixDataset: {name} must be in [0, 1], got {p}")
        self.mosaic_p = float(mos.pop("p"))
        self.mosaic = MosaicCombiner(self.size, pad_value=pad_value, **mos)
        transforms = build_transforms(list(pipeline)) if isinstance(pipeline, (list, tuple)) else pipeline
        self.pipeline = MixPipeline(self, transforms)
        self.min_size, self.tighten_boxes = float(min_size), bool(tighten_boxes)
        self.epoch = 0
        self.rng = np.random.default_rng()
        self._seed_pid: int | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "dataset":  # no recursion while unpickling
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def aspect_ratios(self) -> np.ndarray:
        """``h / w`` of every output image: all equal (one aspect group)."""
        return np.full(len(self), self.size[0] / self.size[1], np.float32)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the next samples (``SeededDataset`` calls it before every item)."""
        self.epoch = int(epoch)

    def set_max_epochs(self, max_epochs: int) -> None:
        """Length of the run, for ``close_mosaic`` when the config leaves ``max_epochs`` out (the trainer calls it)."""
        self.close_cfg["max_epochs"] = int(max_epochs)

    def mosaic_open(self, epoch: int | None = None) -> bool:
        """Whether mosaic and mixup apply in ``epoch`` (default: the current one); False in the closing epochs.

        Without ``close_mosaic.max_epochs`` (given in the config or by the trainer's ``set_max_epochs``)
        mosaic never closes.
        """
        epoch = self.epoch if epoch is None else int(epoch)
        n, max_epochs = int(self.close_cfg["epochs"]), self.close_cfg["max_epochs"]
        return not (n > 0 and max_epochs is not None and epoch >= int(max_epochs) - n)

    def __getitem__(self, i: int) -> dict | None:
        """Sample ``i`` mixed and transformed (see the class docstring); ``None`` when its image fails to decode."""
        if self._seed_pid != os.getpid():  # used without SeededDataset: one stream per process
            self.pipeline.seed(torch.initial_seed())
        open_ = self.mosaic_open()
        sample = self._make(int(i), open_)
        if sample is None:
            return None
        if open_ and self.mixup_cfg["p"] > 0 and self.rng.random() < self.mixup_cfg["p"]:
            other = self._make(int(self.rng.integers(len(self))), open_)
            if other is not None:
                alpha = float(self.mixup_cfg["alpha"])
                sample = mixup_samples(sample, other, float(self.rng.beta(alpha, alpha)))
        sample = self.pipeline(sample)
        return self._finish(sample)

    def _make(self, i: int, open_: bool) -> dict | None:
        """Item ``i`` as a mosaic with 3 random others (probability ``mosaic.p`` when open) or letterboxed."""
        use_mosaic = open_ and self.mosaic_p > 0 and self.rng.random() < self.mosaic_p
        others = self.rng.integers(len(self), size=3) if use_mosaic else []
        first = self.dataset[i]
        if first is None:
            return None
        items = [_checked(first)]
        for j in others:  # a partner that fails to decode is left out (A.Mosaic repeats the primary)
            s = self.dataset[int(j)]
            if s is not None:
                items.append(_checked(s))
        return self.mosaic(items) if use_mosaic else self.mosaic.letterbox(items[0])

    def _finish(self, sample: dict) -> dict:
        """Tighten boxes to masks, drop small boxes, fix dtypes and the map-back keys."""
        if self.tighten_boxes:
            sample = tighten_boxes_to_masks(sample)
        sample = sanitize_instances(sample, self.min_size)
        sample["boxes"] = np.asarray(sample["boxes"], np.float32).reshape(-1, 4)
        sample["labels"] = np.asarray(sample["labels"], np.int64).reshape(-1)
        if sample.get("masks") is not None:
            sample["masks"] = np.asarray(sample["masks"]).astype(np.uint8, copy=False)
        sample["scale_factor"], sample["pad_offset"] = (1.0, 1.0), (0, 0)
        return sample

    def __repr__(self) -> str:
        return (
            f"MixDataset(size={self.size}, mosaic_p={self.mosaic_p}, mixup={self.mixup_cfg}, "
            f"close_mosaic={self.close_cfg}, dataset={type(self.dataset).__name__}, {self.pipeline!r})"
        )


def _checked(sample: dict) -> dict:
    """``sample`` with ``boxes`` float32 [N, 4] and ``labels`` int64 [N] (empty when absent)."""
    out = dict(sample)
    out["boxes"] = np.asarray(out.get("boxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
    out["labels"] = np.asarray(out.get("labels", np.zeros(len(out["boxes"]))), np.int64).reshape(-1)
    if len(out["labels"]) != len(out["boxes"]):
        raise ValueError(
            f"MixDataset: sample {out.get('image_id')} has {len(out['boxes'])} boxes but {len(out['labels'])} labels"
        )
    return out


def _resolve_size(size: int | Sequence[int] | None, mosaic_size: int | Sequence[int] | None) -> tuple[int, int]:
    def hw(s: Any) -> tuple[int, int]:
        return (int(s), int(s)) if isinstance(s, (int, float)) else (int(s[0]), int(s[1]))

    if size is not None and mosaic_size is not None and hw(size) != hw(mosaic_size):
        raise ValueError(f"MixDataset: size {size} and mosaic.size {mosaic_size} differ; give one of them")
    s = hw(size if size is not None else mosaic_size if mosaic_size is not None else 640)
    if min(s) <= 0:
        raise ValueError(f"MixDataset: size must be positive, got {s}")
    return s
