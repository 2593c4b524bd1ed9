"""Speed-ups that keep the state dict and the numerics: FrozenBN folding and fused conv + add + ReLU.

Nothing here changes a module's parameters, buffers or state dict; the optimisations are applied at call
time, so training, checkpoint loading and ``load_state_dict`` keep working:

- :func:`conv_params` folds a frozen norm (``FrozenBatchNorm2d``, or ``BatchNorm2d`` in eval mode)
  into the conv before it: ``bn(conv(x)) = conv(x, w * s) + (b - mean * s)`` with
  ``s = gamma / sqrt(var + eps)``. The folded tensors are cached on the conv and recomputed when any source
  tensor changes (in-place update, ``load_state_dict``, ``.to()``); when the conv weight needs a gradient
  they are recomputed differentiably on every call, so training gets the same gradients.
- :func:`conv_norm_act` runs conv (+ residual add) (+ ReLU) as one oneDNN primitive on the CPU when no
  gradient is needed (``torch.ops.mkldnn._convolution_pointwise``, the kernel ``torch.compile`` uses for the
  same fusion), and as ``F.conv2d`` + add + ReLU otherwise (GPU, autograd, older builds).
- :func:`resnet_block` is torchvision's BasicBlock / Bottleneck forward written with the two above.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet
from torchvision.ops import FrozenBatchNorm2d

from detkit.ops.layout import capturing_graph, channels_innermost, is_channels_last

_CACHE_ATTR = "_detkit_folded"


def _probe_pointwise() -> bool:
    """True when this build has oneDNN's fused conv op and it matches ``F.conv2d`` on a tiny input."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        # a private generator: importing detkit must not move the global RNG (seeded runs build models after it)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            x, w, b = (
                torch.randn(1, 3, 6, 6, generator=g),
                torch.randn(4, 3, 3, 3, generator=g),
                torch.randn(4, generator=g),
            )
            other = torch.randn(1, 4, 6, 6, generator=g)
            y = op.binary(x, other, w, b, [1, 1], [1, 1], [1, 1], 1, "add", None, "relu", [], "")
            ref = torch.relu(F.conv2d(x, w, b, 1, 1) + other)
            return bool(torch.allclose(y, ref, atol=1e-4, rtol=1e-4))
    except (RuntimeError, TypeError, AttributeError):
        return False


POINTWISE_AVAILABLE = _probe_pointwise()
# conv -> {input shape: (folded weight, packed weight)}; outside the module, as oneDNN's packed tensors have no
# storage: a model holding them could not be deep-copied or pickled (EMA copies, torch.save(model))
_PACKED: weakref.WeakKeyDictionary[nn.Conv2d, dict] = weakref.WeakKeyDictionary()
MAX_PACKED_SHAPES = 4  # input shapes whose packed weights a conv keeps (each about the weight's size)


def _probe_packed() -> bool:
    """True when oneDNN's weight prepacking works with its fused conv + SiLU ("swish") op on a tiny input."""
    if not POINTWISE_AVAILABLE or not hasattr(torch.ops.mkldnn, "_reorder_convolution_weight"):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            x = torch.randn(1, 3, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
            w, b = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g)
            packed = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [1, 1], [1, 1], 1, list(x.shape))
            y = torch.ops.mkldnn._convolution_pointwise(x, packed, b, [1, 1], [1, 1], [1, 1], 1, "swish", [], "")
            return bool(torch.allclose(y, F.silu(F.conv2d(x, w, b, 1, 1)), atol=1e-4, rtol=1e-4))
    except (RuntimeError, TypeError, AttributeError):
        return False


PACKED_AVAILABLE = _probe_packed()


def foldable(norm: nn.Module) -> bool:
    """Whether ``norm`` is a fixed per-channel affine: ``FrozenBatchNorm2d``, or a BatchNorm in eval mode."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not norm.training
        and norm.track_running_stats
        and norm.running_var is not None
    )


def _sources(conv: nn.Conv2d, norm: nn.Module | None) -> list[Tensor]:
    tensors = [conv.weight] + ([conv.bias] if conv.bias is not None else [])
    if norm is not None:
        tensors += [t for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var) if t is not None]
    return tensors


def _fold(conv: nn.Conv2d, norm: nn.Module) -> tuple[Tensor, Tensor]:
    w = conv.weight
    gamma = norm.weight if norm.weight is not None else torch.ones_like(norm.running_var)
    beta = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_var)
    scale = gamma * (norm.running_var + norm.eps).rsqrt()  # [C_out]
    bias = beta - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return w * scale.to(w.dtype).view(-1, 1, 1, 1), bias.to(w.dtype)


def conv_params(
    conv: nn.Conv2d, norm: nn.Module | None = None, channels_last: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Weight [C_out, C_in/g, k, k] and bias [C_out] of ``norm(conv(x))`` (or ``conv(x)``) as one conv.

    ``norm`` must be None or :func:`foldable`. When a gradient is needed (grad mode on and a source tensor
    requires grad) they are computed differentiably on every call. Otherwise they are cached on ``conv``,
    in channels_last when asked (what oneDNN wants for channels_last inputs), and recomputed as soon as a
    source tensor changes (in-place update, ``load_state_dict``, ``.to()``).
    """
    src = _sources(conv, norm)
    if torch.is_grad_enabled() and any(t.requires_grad for t in src):
        return _fold(conv, norm) if norm is not None else (conv.weight, conv.bias)
    key = [(t, t._version, t.data_ptr(), t.dtype, t.device) for t in src]
    cache = conv.__dict__.setdefault(_CACHE_ATTR, {})
    hit = cache.get(channels_last)
    if (
        hit is not None
        and len(hit[0]) == len(key)
        and all(a[0] is b[0] and a[1:] == b[1:] for a, b in zip(hit[0], key))
    ):
        return hit[1], hit[2]
    # normal tensors even under inference_mode, so a later autograd forward may reuse them
    with torch.inference_mode(False), torch.no_grad():
        w, b = _fold(conv, norm) if norm is not None else (conv.weight.detach(), conv.bias)
        if channels_last and w.dim() == 4:
            w = w.contiguous(memory_format=torch.channels_last)
    cache[channels_last] = (key, w, b)
    return w, b


def conv_silu_packed(x: Tensor, conv: nn.Conv2d, norm: nn.Module | None, silu: bool = True) -> Tensor | None:
    """``silu(norm(conv(x)))`` (or without the SiLU) as one oneDNN op with prepacked weights, or None where it
    does not apply (then run the plain ops).

    Applies to channels_last float32 CPU inputs without autograd (not while tracing, exporting or compiling),
    a zero-padded conv and a :func:`foldable` norm (or none). The folded weight is reordered once per input
    shape into oneDNN's blocked format (what ``torch.compile``'s freezing does) and cached per conv (outside it,
    in a weak-keyed table), for the last :data:`MAX_PACKED_SHAPES` shapes, renewed whenever :func:`conv_params`
    renews the folded weight.
    yolo_n's fused forward at 640x640 took 0.95 of the time of conv then SiLU (docs/benchmarks.md).
    """
    if not PACKED_AVAILABLE or x.device.type != "cpu" or x.dtype != torch.float32 or not channels_innermost(x):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in _sources(conv, norm))):
        return None
    if not _foldable_conv(conv, norm) or capturing_graph():
        return None
    weight, bias = conv_params(conv, norm, channels_last=True)
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    packed = _packed_weight(conv, weight, geometry, x.shape)
    x = x.contiguous(memory_format=torch.channels_last)  # a channel slice (C2f's bottleneck inputs): one copy
    return torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *geometry, "swish" if silu else "none", [], "")


def _packed_weight(conv: nn.Conv2d, weight: Tensor, geometry: tuple, shape: torch.Size) -> Tensor:
    """``weight`` (``conv``'s folded weight) in oneDNN's blocked format for inputs of ``shape``, cached per conv."""
    cache = _PACKED.setdefault(conv, {})
    key = tuple(shape)
    hit = cache.get(key)
    if hit is None or hit[0] is not weight:
        if hit is None and len(cache) >= MAX_PACKED_SHAPES:
            cache.pop(next(iter(cache)))
        with torch.inference_mode(False), torch.no_grad():
            hit = cache[key] = (weight, torch.ops.mkldnn._reorder_convolution_weight(weight, *geometry, list(key)))
    return hit[1]


def _foldable_conv(conv: nn.Conv2d, norm: nn.Module | None) -> bool:
    """Whether ``conv`` (zero padding given as numbers) and ``norm`` (None or :func:`foldable`) run as one conv."""
    return (norm is None or foldable(norm)) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


def _pointwise_ok(x: Tensor, weight: Tensor, bias: Tensor | None, add: Tensor | None) -> bool:
    if not POINTWISE_AVAILABLE or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4:
        return False
    if weight.dtype != torch.float32 or (add is not None and (add.dim() != 4 or add.dtype != torch.float32)):
        return False
    if torch.is_grad_enabled():  # oneDNN's fused op has no autograd formula
        return not any(t is not None and t.requires_grad for t in (x, weight, bias, add))
    return True


def conv_norm_act(
    x: Tensor, conv: nn.Conv2d, norm: nn.Module | None = None, relu: bool = False, add: Tensor | None = None
) -> Tensor:
    """``relu(norm(conv(x)) + add)`` with the norm folded into the conv when :func:`foldable`.

    Args:
        x: [B, C_in, H, W]; conv: a zero-padded ``nn.Conv2d``; norm: None, or the norm after the conv
            (applied as is when not foldable).
        add: optional [B, C_out, H', W'] added before the ReLU (a residual or a top-down FPN path).

    Returns:
        [B, C_out, H', W'] in ``x``'s memory format (channels_last stays channels_last). On the CPU without
        autograd the conv, add and ReLU run as one oneDNN op.
    """
    if isinstance(norm, nn.Identity):
        norm = None
    if not _foldable_conv(conv, norm):
        y = conv(x) if norm is None else norm(conv(x))
        y = y + add if add is not None else y
        return F.relu(y, inplace=True) if relu else y
    cl = is_channels_last(x)
    weight, bias = conv_params(conv, norm, channels_last=cl)
    if _pointwise_ok(x, weight, bias, add):
        op = torch.ops.mkldnn._convolution_pointwise
        geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        if not (cl or x.is_contiguous()):
            x = x.contiguous()
        if cl and PACKED_AVAILABLE:  # prepacked once per input shape (Faster / Mask R-CNN predict: 0.987)
            weight = _packed_weight(conv, weight, geometry, x.shape)
        if add is None:
            return op(x, weight, bias, *geometry, "relu" if relu else "none", [], "")
        add = add.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
        return op.binary(x, add, weight, bias, *geometry, "add", None, "relu" if relu else None, [], "")
    y = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    if add is not None:
        y = y + add
    return F.relu(y, inplace=True) if relu else y


def conv2d_act(x: Tensor, conv: nn.Conv2d, relu: bool = False, add: Tensor | None = None) -> Tensor:
    """``relu(conv(x) + add)``: :func:`conv_norm_act` without a norm."""
    return conv_norm_act(x, conv, None, relu=relu, add=add)


def resnet_block(block: nn.Module, x: Tensor) -> Tensor:
    """torchvision ``BasicBlock`` / ``Bottleneck`` forward with folded norms and fused add + ReLU.

    Other modules (or blocks with extra parts) run their own forward.
    """
    if isinstance(block, tv_resnet.Bottleneck):
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3)]
    elif isinstance(block, tv_resnet.BasicBlock):
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    else:
        return block(x)
    ds = block.downsample
    if ds is not None and not (isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[0], nn.Conv2d)):
        return block(x)
    identity = conv_norm_act(x, ds[0], ds[1]) if ds is not None else x
    out = x
    for conv, norm in convs[:-1]:
        out = conv_norm_act(out, conv, norm, relu=True)
    conv, norm = convs[-1]
    return conv_norm_act(out, conv, norm, relu=True, add=identity)


def set_fused_inference(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Turn on (or off) the fused inference path of every part of ``model`` that has one; returns ``model``.

    Parts with a ``fused_inference`` attribute (ResNet, FPN, RPNHead, RoIMaskHead) then use this module's
    functions whenever autograd is off; with autograd on they always run their plain modules.
    """
    for m in model.modules():
        if hasattr(m, "fused_inference"):
            m.fused_inference = bool(enabled)
    return model
