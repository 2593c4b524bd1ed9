"""Mixup / CutMix of a classification batch (torchvision's ``transforms.v2.MixUp`` / ``CutMix``), seeded per batch.

The mixing runs inside ``Classifier.loss`` on the normalised batch, on the model's device: normalisation is
affine with weights that sum to one, so mixing normalised images equals normalising mixed ones. Each batch
draws from its own seed, ``(seed, image ids of the batch)``: the draws do not depend on the global RNG state,
the number of workers or processes, or whether the run was resumed (the same batch mixes the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2


class BatchMix:
    """Mixup and/or CutMix of images [B,3,H,W] and labels, as in torchvision's reference classification recipes.

    Args:
        num_classes: C (labels become probabilities [B,C]).
        mixup_alpha, cutmix_alpha: Beta(alpha, alpha) parameter of each; 0 turns one off. With both on, each
            batch uses one of them, chosen with even odds (torchvision's ``RandomChoice``, as its references do).
        prob: probability that a batch is mixed at all (else its labels are only one-hot encoded).
        seed: base seed of the per-batch draws.

    Pairs are consecutive images (``roll(1)``, torchvision's rule): the batch must be shuffled, which the
    training loader does.
    """

    def __init__(
        self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0, seed: int = 0
    ):
        if mixup_alpha < 0 or cutmix_alpha < 0 or not 0.0 <= prob <= 1.0:
            raise ValueError(
                f"mixup_alpha and cutmix_alpha must be >= 0 and prob in [0, 1], got {mixup_alpha}, {cutmix_alpha}, "
                f"{prob}"
            )
        ops = [v2.MixUp(alpha=mixup_alpha, num_classes=num_classes)] if mixup_alpha > 0 else []
        ops += [v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes)] if cutmix_alpha > 0 else []
        self.op = None if not ops else ops[0] if len(ops) == 1 else v2.RandomChoice(ops)
        self.num_classes, self.prob, self.seed = int(num_classes), float(prob), int(seed)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)

    @property
    def enabled(self) -> bool:
        return self.op is not None and self.prob > 0

    def batch_seed(self, image_ids: Sequence[int]) -> int:
        """The seed of one batch's draws: a hash of ``(seed, image ids in order)``."""
        entropy = [self.seed % 2**63, *(int(i) % 2**63 for i in image_ids)]
        return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] % 2**63)

    def __call__(self, images: Tensor, labels: Tensor, image_ids: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Mix ``images`` float [B,3,H,W] and ``labels`` int64 [B]; returns images and probabilities float [B,C]."""
        soft = torch.nn.functional.one_hot(labels, self.num_classes).to(torch.float32)  # [B,C]
        if not self.enabled or images.shape[0] < 2:
            return images, soft
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global CPU RNG: fork it
            # the CPU generator alone: torch.manual_seed would also reseed every GPU's, which the fork leaves set
            torch.default_generator.manual_seed(self.batch_seed(image_ids))
            if float(torch.rand(())) >= self.prob:
                return images, soft
            return self.op(images, soft)

    def __repr__(self) -> str:
        return f"BatchMix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, prob={self.prob})"
