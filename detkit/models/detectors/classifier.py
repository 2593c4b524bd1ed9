"""Image classifier: backbone (+ neck) + classification head, with optional mixup / cutmix in training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.models.batch_mix import BatchMix
from detkit.models.detectors.parts import build_part, build_preprocess, default_class_names, neck_defaults
from detkit.models.preprocess import not_a_batch
from detkit.registry import BACKBONES, DETECTORS, HEADS, NECKS

# no padding is needed by a pooled classifier: images keep their size (collate may still pad a mixed batch)
_CLS_PREPROCESS = dict(size_divisor=1)


def _check_head_classes(head: nn.Module, num_classes: int) -> None:
    """A head built for another number of classes than the classifier's is a mistake of the config."""
    if getattr(head, "num_classes", num_classes) == num_classes:
        return
    raise ValueError(
        f"head.num_classes={head.num_classes} but the classifier has num_classes={num_classes}; drop it "
        "from the head config"
    )


@DETECTORS.register
class Classifier(nn.Module):
    """``head(neck(backbone(x)))`` for whole-image classification; parts as modules or registry spec dicts.

    Args:
        backbone, head, neck: the parts (``neck`` may be None, the default). The head gets ``num_classes``
            and ``in_channels`` (the backbone's, or the neck's, ``out_channels``) when its spec lacks them.
        num_classes: C; class_names: C names (default ``class_0 ...``).
        preprocess: ``Preprocessor`` keyword arguments (default: ImageNet mean / std, no padding divisor).
        topk: how many class indices ``predict`` returns per image (default ``min(5, C)``).
        mixup_alpha, cutmix_alpha, mix_prob, mix_seed: batch mixing in ``loss`` (:class:`BatchMix`; both
            alphas 0, the default, turn it off). It is seeded by ``(mix_seed, the batch's image ids)``.

    Batch (docs/contracts.md): each target carries ``labels`` int64 [1], the image's class.
    ``loss(batch)`` -> ``{"cls/ce": scalar}``; ``predict(batch)`` -> per image ``{"scores": float32 [C]
    probabilities, "labels": int64 [k] the top-k classes, most likely first}``.
    """

    def __init__(
        self,
        backbone: nn.Module | dict,
        head: nn.Module | dict,
        neck: nn.Module | dict | None = None,
        num_classes: int = 1000,
        class_names: Sequence[str] | None = None,
        preprocess: nn.Module | dict | None = None,
        topk: int | None = None,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
        mix_seed: int = 0,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.class_names = default_class_names(self.num_classes, class_names)
        self.preprocess = build_preprocess(preprocess, _CLS_PREPROCESS)
        self.backbone = build_part(BACKBONES, backbone)
        self.neck = build_part(NECKS, neck, **neck_defaults(neck, self.backbone))
        top = self.neck if self.neck is not None else self.backbone
        self.head = build_part(HEADS, head, num_classes=self.num_classes, in_channels=top.out_channels)
        _check_head_classes(self.head, self.num_classes)
        if topk is not None and int(topk) < 1:
            raise ValueError(f"Classifier topk must be >= 1, got {topk}")
        self.topk = min(5, self.num_classes) if topk is None else min(int(topk), self.num_classes)
        self.mix = BatchMix(self.num_classes, mixup_alpha, cutmix_alpha, mix_prob, mix_seed)

    def forward_raw(self, images: Tensor) -> Tensor:
        """Logits [B,C] of normalised images [B,3,H,W]: the export-friendly forward."""
        feats = self.backbone(images)
        return self.head(self.neck(feats) if self.neck is not None else feats)

    def _labels(self, batch: dict, device: torch.device) -> Tensor:
        """Each target's class as int64 [B]; a target without exactly one label is an error naming the image."""
        labels = []
        for i, t in enumerate(batch["targets"]):
            lab = torch.as_tensor(t.get("labels", ())).reshape(-1)
            if lab.numel() != 1:
                image_id = (batch.get("image_ids") or [None] * (i + 1))[i]
                raise ValueError(
                    f"Classifier: target {i} of the batch (image id {image_id}) has {lab.numel()} labels; a "
                    "classification sample carries exactly one, labels int64 [1] (ImageFolderDataset, "
                    "CocoCropsDataset). Its pipeline must not filter boxes: leave 'boxes' out of the sample"
                )
            labels.append(lab)
        return torch.cat(labels).to(device=device, dtype=torch.int64)

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """Training loss of a batch: ``{"cls/ce"}``; mixed images and soft targets when mixing is on."""
        images = self.preprocess(batch)  # [B,3,H,W]
        targets = self._labels(batch, images.device)  # [B]
        if self.mix.enabled:
            ids = batch.get("image_ids") or list(range(len(targets)))
            images, targets = self.mix(images, targets, ids)  # targets -> [B,C]
        return self.head.loss(self.forward_raw(images), targets)

    @torch.no_grad()
    def predict(self, batch: dict, topk: int | None = None) -> list[dict[str, Tensor]]:
        """Per image class probabilities ``scores`` float32 [C] and the ``topk`` best ``labels`` int64 [k]."""
        logits = self.forward_raw(self.preprocess(batch))  # [B,C]
        return self.head.predict(logits, self.topk if topk is None else topk)

    def forward(self, batch: dict, **kwargs) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """``loss(batch)`` in training mode, ``predict(batch, **kwargs)`` in eval mode."""
        if not isinstance(batch, dict):  # torchvision's model([image]) / model(tensor)
            raise TypeError(not_a_batch(batch))
        return self.loss(batch) if self.training else self.predict(batch, **kwargs)
