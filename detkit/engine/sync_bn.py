"""BatchNorm over the global batch under DDP (``train.sync_bn``): torch's SyncBatchNorm on GPUs, ours on CPUs.

torch's ``nn.SyncBatchNorm`` works on GPUs only (its statistics kernels, and DDP refuses it in a CPU module),
so a CPU run under torchrun (gloo: tests, debugging) could not match a one-process run of a BatchNorm model.
:class:`SyncBatchNorm` is the CPU counterpart: in training under an initialised process group it takes each channel's mean and
variance over this process's share (``torch.var_mean``), combines them over the processes with one
all-reduce with autograd (whose backward all-reduces the gradients, as torch's SyncBN backward does;
the combination in float64) and normalises with the global mean and
variance in one fused multiply-add; otherwise it is plain BatchNorm. :func:`convert_sync_batchnorm` picks the class for the device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: every process's loss reaches every input."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(_BatchNorm):
    """BatchNorm (any ``[N,C,...]`` input) whose training statistics cover every process's batch (CPU, gloo).

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``; evaluation uses the running statistics.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"SyncBatchNorm expects an input [N,C,...], got shape {tuple(input.shape)}")

    def forward(self, input: Tensor) -> Tensor:
        synced = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not synced:
            return super().forward(input)
        dims = [d for d in range(input.dim()) if d != 1]
        var, mean = torch.var_mean(input, dim=dims, unbiased=False)  # [C] each, over this process's share
        n = input.new_full((1,), input.numel() / input.shape[1], dtype=torch.float64)  # values per channel here
        mean, var = mean.double(), var.double()
        # one all-reduce of [sum of x, sum of x^2, count]: each share's sum of x^2 is n * (var + mean^2) from its
        # own (stable) variance, and the float64 difference below loses ~1e-16 x mean^2 / var, not float32's
        total = _SumOverProcesses.apply(torch.cat([n * mean, n * (var + mean * mean), n]))  # [2C+1]
        count = total[-1]
        global_mean = total[: mean.numel()] / count
        global_var = (total[mean.numel() : -1] / count - global_mean * global_mean).clamp(min=0)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(global_mean.detach(), global_var.detach() * count / (count - 1).clamp(min=1))
        scale = torch.rsqrt(global_var + self.eps)  # [C]
        if self.affine:
            scale = scale * self.weight
        shift = (self.bias if self.affine else 0.0) - global_mean * scale
        shape = [1, -1] + [1] * (input.dim() - 2)
        # one fused x * scale + shift, in the input's dtype
        return torch.addcmul(shift.to(input.dtype).view(shape), input, scale.to(input.dtype).view(shape))

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var.to(self.running_var.dtype), alpha=factor)


def has_batch_statistics(model: nn.Module) -> bool:
    """True when a BatchNorm of ``model`` normalises with batch statistics in training mode (not frozen)."""
    was_training = model.training
    model.train()  # a backbone's train() keeps its frozen stages' norms in eval mode
    found = any(isinstance(m, _BatchNorm) and m.training for m in model.modules())
    model.train(was_training)
    return found


def convert_sync_batchnorm(module: nn.Module, device: torch.device | str = "cpu") -> nn.Module:
    """Synchronised BatchNorm for a model on ``device``: torch's ``nn.SyncBatchNorm`` on a GPU, else ours.

    Every BatchNorm of ``module`` is replaced by one sharing its parameters and buffers.
    """
    if torch.device(device).type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, (SyncBatchNorm, nn.SyncBatchNorm)):
        out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child, device))
    return out


def use_sync_bn(setting: bool | str, model: nn.Module, world_size: int) -> bool:
    """``train.sync_bn``: ``auto`` converts under DDP when the model has BatchNorm with batch statistics."""
    if world_size <= 1 or setting is False:
        return False
    return setting is True or has_batch_statistics(model)
