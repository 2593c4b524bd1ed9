"""A tiny detector, dataset, evaluator and data loader for engine tests (CPU, milliseconds per step).

The toy parts follow docs/contracts.md. Their loss is a mean over the samples of a batch with every
sample weighted equally, and the model has no batch statistics (GroupNorm), so that 2 processes x
batch b under DDP give the same update as 1 process x batch 2b. The toy loader deals *global* batches
of ``batch_size * world_size`` indices (shuffled by ``(seed, epoch)``) and gives rank r the r-th slice,
so the union over ranks of one step's batches does not depend on the world size.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from detkit.data.collate import collate  # noqa: E402
from detkit.engine import dist  # noqa: E402
from detkit.registry import DATASETS, DETECTORS  # noqa: E402


@DATASETS.register
class ToyDataset:
    """``num_samples`` random ``size`` x ``size`` images, one box each; ``augment`` adds global-RNG noise;
    samples from index ``missing_from`` on raise FileNotFoundError (an image deleted during a run)."""

    def __init__(
        self,
        num_samples: int = 16,
        size: int = 32,
        num_classes: int = 2,
        seed: int = 0,
        augment: bool = False,
        missing_from: int | None = None,
    ):
        self.num_samples, self.size, self.seed, self.augment = num_samples, size, seed, augment
        self.missing_from = missing_from
        self.class_names = [f"toy{i}" for i in range(num_classes)]
        self.aspect_ratios = [1.0] * num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict:
        if self.missing_from is not None and i >= self.missing_from:
            raise FileNotFoundError(f"image toy_{i}.png not found")
        rng = np.random.default_rng([self.seed, i])
        s = self.size
        label = int(rng.integers(len(self.class_names)))
        x0, y0 = rng.uniform(0, s / 2, 2)
        box = np.array([[x0, y0, x0 + s / 4 + label * s / 8, y0 + s / 4]], np.float32)
        img = (rng.random((s, s, 3)) * 60).astype(np.uint8)
        img[int(y0) : int(box[0, 3]), int(x0) : int(box[0, 2])] += np.uint8(min(100 + 80 * label, 190))
        if self.augment:  # consumes the process-global numpy RNG, as random transforms do
            img = np.clip(img.astype(np.int16) + np.random.randint(-3, 4, img.shape), 0, 255).astype(np.uint8)
        return {
            "image": img,
            "boxes": box,
            "labels": np.array([label], np.int64),
            "image_id": i + 1,
            "orig_size": (s, s),
        }


@DETECTORS.register
class ToyDetector(nn.Module):
    """Conv + GroupNorm backbone, linear head predicting one (label, box) per image.

    Args:
        num_classes / class_names: as every detector; dropout: > 0 consumes the torch RNG in training;
        nan_calls: indices of ``loss`` calls whose ``toy/box`` loss is NaN; nan_from: every call from
        this index on is NaN; predict_error: ``predict`` raises RuntimeError(predict_error) once the model has
        trained a step (a broken evaluation; the dry prediction when the model is built still passes).
    """

    def __init__(
        self,
        num_classes: int = 2,
        class_names=None,
        width: int = 8,
        dropout: float = 0.0,
        nan_calls=(),
        nan_from: int | None = None,
        predict_error: str | None = None,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.class_names = list(class_names or [f"class_{i}" for i in range(num_classes)])
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.GroupNorm(2, width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes + 4)
        self.nan_calls, self.nan_from, self.calls = set(nan_calls), nan_from, 0
        self.predict_error = predict_error

    def preprocess(self, batch: dict) -> torch.Tensor:
        """uint8 [B,3,H,W] -> float [B,3,H,W] in [-1, 1] on the model's device."""
        return batch["images"].to(self.head.weight.device).float() / 127.5 - 1.0

    def _raw(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone(self.preprocess(batch)).mean(dim=(2, 3))
        out = self.head(self.drop(feats))
        return out[:, : self.num_classes], out[:, self.num_classes :].sigmoid()  # [B,C], [B,4] in 0..1

    def _norm_boxes(self, batch: dict) -> torch.Tensor:
        sizes = torch.tensor([[w, h, w, h] for h, w in batch["image_sizes"]], dtype=torch.float32)
        boxes = torch.stack([t["boxes"][0].cpu() for t in batch["targets"]])
        return (boxes / sizes).to(self.head.weight.device)

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Mean over the batch's images of cross-entropy + L1 on the normalised box."""
        logits, boxes = self._raw(batch)
        labels = torch.stack([t["labels"][0] for t in batch["targets"]]).to(logits.device)
        box_loss = F.l1_loss(boxes, self._norm_boxes(batch))
        if self.calls in self.nan_calls or (self.nan_from is not None and self.calls >= self.nan_from):
            box_loss = box_loss * float("nan")
        self.calls += 1
        return {"toy/cls": F.cross_entropy(logits, labels), "toy/box": box_loss}

    def predict(self, batch: dict) -> list[dict]:
        """One box per image in original-image pixels."""
        if self.predict_error and self.calls:
            raise RuntimeError(self.predict_error)
        logits, boxes = self._raw(batch)
        scores, labels = logits.softmax(-1).max(-1)
        out = []
        for i, (h, w) in enumerate(batch["orig_sizes"]):
            scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=boxes.device)
            out.append(
                {
                    "boxes": (boxes[i : i + 1].float() * scale),
                    "scores": scores[i : i + 1].float(),
                    "labels": labels[i : i + 1],
                }
            )
        return out

    def forward(self, batch: dict):
        return self.loss(batch) if self.training else self.predict(batch)


class ToyEvaluator:
    """``bbox/AP`` := accuracy of the predicted label; ``toy/l1`` := mean box L1 (pixels)."""

    metric_names = ("bbox/AP", "toy/l1")  # what compute() returns (the trainer checks train.best_metric)

    def reset(self) -> None:
        self.rows: list[tuple[int, float]] = []

    def process(self, batch: dict, preds: list[dict]) -> None:
        for t, p in zip(batch["targets"], preds):
            self.rows.append(
                (
                    int(p["labels"][0] == t["labels"][0].to(p["labels"].device)),
                    float((p["boxes"][0].cpu() - t["boxes"][0]).abs().mean()),
                )
            )

    def compute(self) -> dict[str, float]:
        rows = [r for part in dist.all_gather_object(self.rows) for r in part]
        return {
            "bbox/AP": sum(r[0] for r in rows) / max(1, len(rows)),
            "toy/l1": sum(r[1] for r in rows) / max(1, len(rows)),
        }


class ToyBatchSampler(Sampler):
    """Global batches of ``batch_size * world`` indices in (seed, epoch) order; rank r gets slice r."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, world: int, rank: int):
        self.n, self.bs, self.shuffle, self.seed, self.world, self.rank = n, batch_size, shuffle, seed, world, rank
        self.epoch = self.start_iter = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start_iter(self, i: int) -> None:
        self.start_iter = i

    def __iter__(self):
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        )
        g = self.bs * self.world
        start, self.start_iter = self.start_iter, 0
        for k in range(start, len(self)):
            yield order[k * g + self.rank * self.bs : k * g + (self.rank + 1) * self.bs].tolist()

    def __len__(self) -> int:
        return self.n // (self.bs * self.world)


def toy_build_dataset(split_cfg: dict):
    return DATASETS.build(split_cfg)


def toy_build_dataloader(
    cfg: dict,
    split: str,
    distributed: bool = False,
    seed: int = 0,
    start_iter: int = 0,
    dataset=None,
    pin_memory: bool | None = None,  # builders.build_dataloader's signature; the toy never pins
):
    dataset = dataset if dataset is not None else toy_build_dataset(cfg["data"][split])
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    sampler = ToyBatchSampler(len(dataset), int(cfg["data"]["batch_size"]), split == "train", seed, world, rank)
    sampler.set_start_iter(start_iter)
    return DataLoader(
        dataset, batch_sampler=sampler, num_workers=0, collate_fn=functools.partial(collate, size_divisor=32)
    )


def toy_build_evaluator(cfg: dict, dataset) -> ToyEvaluator:
    return ToyEvaluator()


def install() -> None:
    """Make the trainer build data and evaluators with the toy builders (for this process)."""
    from detkit.engine import builders

    builders.build_dataset = toy_build_dataset
    builders.build_dataloader = toy_build_dataloader
    builders.build_evaluator = toy_build_evaluator


def toy_config(**train) -> dict:
    """A complete toy config; ``train`` keys override the train section."""
    return {
        "model": {"type": "ToyDetector", "num_classes": None},
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "train": {"type": "ToyDataset", "num_samples": 8},
            "val": {"type": "ToyDataset", "num_samples": 4, "seed": 99},
        },
        "train": {"max_epochs": 2, "log_interval": 2, **train},
        "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "base_batch_size": 2},
        "scheduler": {"type": "multistep", "milestones": [1], "warmup_iters": 2},
        "seed": 0,
    }
