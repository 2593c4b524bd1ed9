"""A model step over the *global* batch of a distributed run: loss normalisers and per-image random draws.

DDP averages the gradients of the processes. A loss that each process divides by a count of its own share
(sampled anchors, RoIs, positive assignments, mask pixels) is then not the loss of one process over the
whole batch: the counts differ between processes. :func:`global_mean_losses` rescales each process's loss
to ``sum / (global count / world size)`` (one all-reduce of every count of the step, as DETR does for its
box count), so that the average over the processes is ``sum over all images / global count``, the
one-process loss. :func:`draw_generators` gives each image its own ``torch.Generator`` seeded by the data
(the trainer's ``(seed, iteration, image index in the global batch)``), so random subsets do not depend on
which process handles an image.

Batch keys read here (the trainer sets them; absent elsewhere, and then nothing changes):
``sync_loss_counts`` (bool) and ``draw_seeds`` (one int per image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_mean_losses(
    losses: dict[str, Tensor], counts: Mapping[str, Tensor | float], sync: bool
) -> dict[str, Tensor]:
    """Rescale per-process mean losses to means over the global batch of all processes.

    Args:
        losses: per key a scalar ``sum_k / max(counts[k], 1)`` over this process's images.
        counts: per key (a subset of ``losses``) the count its loss is divided by, before the clamp to 1.
            Every process must give counts for the same keys (the heads record them on every path).
        sync: False (one process, evaluation, a caller that does not run the same step on every process):
            ``losses`` are returned unchanged.

    Returns:
        ``losses`` with ``losses[k] * max(count_k, 1) / (max(sum over processes of count_k, 1) / world)``:
        the DDP average of these equals ``sum over processes of sum_k / max(global count_k, 1)``. One
        all-reduce (of a float64 vector, one entry per key) per call.
    """
    world = _world_size()
    if not sync or world == 1 or not counts:
        return losses
    keys = sorted(counts)
    device = losses[keys[0]].device
    local = torch.stack([torch.as_tensor(counts[k], dtype=torch.float64, device=device).detach() for k in keys])
    total = local.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    scale = local.clamp(min=1.0) * world / total.clamp(min=1.0)  # [K]
    out = dict(losses)
    for k, s in zip(keys, scale):
        out[k] = losses[k] * s.to(losses[k].dtype)
    return out


def draw_generators(seeds: Sequence[int] | None, device: torch.device | str) -> list[torch.Generator] | None:
    """One ``torch.Generator`` on ``device`` per image, seeded by ``seeds`` (None when no seeds are given).

    Every random draw of a model step for image ``i`` takes ``generators[i]``, in a fixed order (RPN anchors,
    then RoIs), so an image's draws depend on its seed alone, not on the process or the batch around it.
    """
    if seeds is None:
        return None
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def canonical_box_order(boxes: Tensor) -> Tensor:
    """Indices int64 [N] that sort ``boxes`` [N,4] lexicographically by (x1, y1, x2, y2).

    A random subset drawn by position (``sample_pos_neg``) from boxes in this order depends on the set of
    boxes alone. Proposals come sorted by score, and equal scores (frequent where a float64 model's scores
    are rounded to float32, or in zero padding) are ordered by the sort inside NMS, which sees the whole
    batch: without this the same image could sample other RoIs in a batch of 2 than in a batch of 4.
    """
    order = torch.arange(boxes.shape[0], device=boxes.device)
    for col in (3, 2, 1, 0):  # stable sorts from the last key to the first
        order = order[boxes[order, col].sort(stable=True).indices]
    return order


def at_least_float32(t: Tensor) -> Tensor:
    """``t`` in float32, or unchanged when float64: the precision of a loss (float32 under AMP, float64 kept).

    A float64 model (the distributed-equality tests) keeps its losses in float64: rounded to float32, the
    rescale of :func:`global_mean_losses` would differ from one process's division in the last bit, which
    AdamW turns into ~1e-6 on weights whose gradient nearly cancels.
    """
    return t if t.dtype == torch.float64 else t.float()
