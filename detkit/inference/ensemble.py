"""Several models (and test-time augmentation views) predicting as one model.

``Ensemble(models, options)`` runs every model on every view of ``options`` (``detkit.inference.tta``) and
merges all their predictions with the same rule: weighted box fusion or NMS for detectors, averaged
probabilities for segmentors and classifiers. It has ``predict(batch)`` like a detkit model, so
``detkit.predict``, ``tools/infer.py`` and ``tools/eval.py`` run it unchanged; the test pipeline (resize /
letterbox) is the first model's, each model normalises the batch with its own ``preprocess``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from detkit.inference.tta import (
    TTAOptions,
    average_class_scores,
    average_sem_probs,
    flip_detections,
    fuse_detections,
    parse_tta,
    sem_probs,
    view_batch,
)
from detkit.models.detectors.classifier import Classifier
from detkit.models.detectors.segmentor import Segmentor
from detkit.utils.checkpoint import CheckpointMismatchError

__all__ = ["Ensemble", "as_ensemble", "check_same_classes", "load_members", "model_kind"]


def model_kind(model: nn.Module) -> str:
    """``'classifier'``, ``'segmentor'`` or ``'detector'`` (boxes, scores, labels, optional masks)."""
    if isinstance(model, Classifier):
        return "classifier"
    return "segmentor" if isinstance(model, Segmentor) else "detector"


def predicts_masks(model: nn.Module) -> bool:
    """True for an instance-mask detector: a Mask R-CNN (``mask_head``) or a YOLO-seg head (``proto_logits``)."""
    return getattr(model, "mask_head", None) is not None or hasattr(getattr(model, "head", None), "proto_logits")


def check_same_classes(models: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
    """Raise ``CheckpointMismatchError`` naming the two models (``names``: e.g. their checkpoints) when two models
    differ in kind (masks or not included) or in class names (the same names in another order differ too: labels
    are positions)."""
    names = list(names) if names is not None else [f"model {i}" for i in range(len(models))]
    first, first_classes = models[0], list(models[0].class_names)
    for model, name in zip(models[1:], names[1:]):
        if model_kind(model) != model_kind(first):
            raise CheckpointMismatchError(
                f"{names[0]} is a {model_kind(first)} but {name} is a {model_kind(model)}; an ensemble merges "
                "models of one kind"
            )
        if predicts_masks(model) != predicts_masks(first):
            with_masks, without = (names[0], name) if predicts_masks(first) else (name, names[0])
            raise CheckpointMismatchError(
                f"{with_masks} predicts instance masks but {without} does not; an ensemble merges models with the "
                "same outputs: ensemble mask models together, or box models together"
            )
        classes = list(model.class_names)
        if classes != first_classes:
            diff = next((i for i, (a, b) in enumerate(zip(first_classes, classes)) if a != b), None)
            where = f"label {diff}: {first_classes[diff]!r} vs {classes[diff]!r}" if diff is not None else "the count"
            raise CheckpointMismatchError(
                f"{names[0]} has {len(first_classes)} classes and {name} has {len(classes)}, which differ ({where}); "
                "an ensemble merges models trained on the same classes in the same order"
            )


class Ensemble(nn.Module):
    """Models of the same classes, each run on every view of ``options``, their predictions merged.

    Args:
        models: one or more detkit models of one kind (detectors, segmentors or classifiers), same classes.
        options: the views and the merge (``TTAOptions``); None: each model once, merged by NMS.
        names: what to call each model in errors (e.g. its checkpoint path).

    ``predict(batch, score_thr=None)`` -> per image the ``detkit.predict`` dict of the first model's kind.
    One model with one view gives exactly that model's prediction.
    """

    def __init__(
        self, models: Sequence[nn.Module], options: TTAOptions | None = None, names: Sequence[str] | None = None
    ):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("Ensemble needs at least one model")
        check_same_classes(models, names)
        self.models = nn.ModuleList(models)
        self.options = options if options is not None else TTAOptions(scales=(1.0,), flip=False)
        self.kind = model_kind(models[0])
        first = models[0]
        self.cfg = getattr(first, "cfg", None)
        self.class_names = list(first.class_names)
        self.num_classes = getattr(first, "num_classes", len(self.class_names))
        self.cat_ids = getattr(first, "cat_ids", None)
        # the mode of the first model (a new Module is in training mode: predict_arrays and evaluate restore the
        # mode they found, which would leave the members training after an inference)
        self.training = bool(first.training)

    def _runs(self, batch: dict, run) -> list[list[Any]]:
        """``run(model, view batch, flipped)`` for every view and model -> per image the list of their outputs."""
        per_image: list[list[Any]] = [[] for _ in batch["image_sizes"]]
        for scale, flip in self.options.views():
            view = view_batch(batch, scale, flip)
            for model in self.models:
                for i, out in enumerate(run(model, view, flip)):
                    per_image[i].append(out)
        return per_image

    def _detect(self, batch: dict, score_thr: float | None) -> list[dict[str, Tensor]]:
        """Detections of every view and model, mapped to the original images and merged per image."""
        kwargs = {} if score_thr is None else {"score_thr": float(score_thr)}
        origs = [tuple(int(v) for v in s) for s in batch.get("orig_sizes") or batch["image_sizes"]]

        def run(model, view, flip):
            preds = [{k: v.cpu() for k, v in p.items()} for p in model.predict(view, **kwargs)]
            return [flip_detections(p, origs[i][1]) if flip else p for i, p in enumerate(preds)]

        per_image = self._runs(batch, run)
        if len(per_image[0]) == 1:  # one model, one view: its own prediction
            return [views[0] for views in per_image]
        return [fuse_detections(views, origs[i], self.options, score_thr) for i, views in enumerate(per_image)]

    @torch.no_grad()
    def predict(self, batch: dict, score_thr: float | None = None) -> list[dict[str, Tensor]]:
        """Per image the merged prediction in original-image pixels (``score_thr`` is for detectors)."""
        if self.kind == "detector":
            return self._detect(batch, score_thr)
        if self.kind == "segmentor":

            def probs(model, view, flip):
                return [p.flip(-1) if flip else p for p in sem_probs(model, view)]

            return [average_sem_probs(p) for p in self._runs(batch, probs)]
        topk = min(int(getattr(m, "topk", 5)) for m in self.models)
        return [average_class_scores(p, topk) for p in self._runs(batch, lambda model, view, _: model.predict(view))]

    def forward(self, batch: dict, **kwargs) -> list[dict[str, Tensor]]:
        """``predict(batch, **kwargs)`` (an ensemble does not train)."""
        return self.predict(batch, **kwargs)


def as_ensemble(model: nn.Module | Sequence[nn.Module], tta: Any = None) -> nn.Module:
    """``model`` as it should predict: an ``Ensemble`` for a list of models or with ``tta`` (True, a dict of
    ``TTAOptions`` or TTAOptions; an Ensemble given with ``tta`` takes those views), else ``model`` itself."""
    options = parse_tta(tta)
    if isinstance(model, Ensemble):
        return model if options is None else Ensemble(list(model.models), options)
    if isinstance(model, (list, tuple)):
        return Ensemble(list(model), options)
    return model if options is None else Ensemble([model], options)


def load_members(
    checkpoints: Sequence[str | os.PathLike],
    config: str | os.PathLike | dict | None = None,
    device: str | torch.device | None = None,
) -> list[nn.Module]:
    """The models of ``checkpoints`` (``init_model``), each built with the config it stores; ``config`` for one
    that stores none (tools/eval.py's and tools/infer.py's ``--ensemble``)."""
    from detkit.inference.api import init_model
    from detkit.utils.checkpoint import read_meta

    return [
        init_model(None if isinstance(read_meta(c).get("config"), dict) else config, c, device=device)
        for c in checkpoints
    ]
