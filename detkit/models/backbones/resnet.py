"""ResNet / ResNeXt backbone with torchvision's module names, so torchvision ImageNet weights load directly."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet
from torchvision.ops import FrozenBatchNorm2d

from detkit.models.backbones.init_weights import InitReport, load_backbone_weights, read_backbone_state
from detkit.models.fuse import conv_norm_act, resnet_block
from detkit.registry import BACKBONES
from detkit.utils.checkpoint import CheckpointMismatchError

_ARCH = {
    18: (tv_resnet.BasicBlock, [2, 2, 2, 2]),
    34: (tv_resnet.BasicBlock, [3, 4, 6, 3]),
    50: (tv_resnet.Bottleneck, [3, 4, 6, 3]),
    101: (tv_resnet.Bottleneck, [3, 4, 23, 3]),
    152: (tv_resnet.Bottleneck, [3, 8, 36, 3]),
}
_STEM = ("conv1", "bn1")


def _norm_layer(norm: str, eps: float, gn_groups: int):
    if norm == "FrozenBN":
        return partial(FrozenBatchNorm2d, eps=eps)
    if norm == "BN":
        return partial(nn.BatchNorm2d, eps=eps)
    if norm == "SyncBN":
        return partial(nn.SyncBatchNorm, eps=eps)
    if norm == "GN":
        return lambda c: nn.GroupNorm(gn_groups, c, eps=eps)
    raise ValueError(f"ResNet norm must be one of FrozenBN, BN, SyncBN, GN; got {norm!r}")


@BACKBONES.register
class ResNet(nn.Module):
    """ResNet-18/34/50/101/152 (ResNeXt / wide through ``groups`` and ``width_per_group``).

    Args:
        depth: 18, 34, 50, 101 or 152.
        norm: ``FrozenBN`` (torchvision detection default), ``BN``, ``SyncBN`` or ``GN``.
        norm_eps: epsilon of the norm layers. torchvision's COCO-trained R-CNN v1 weights need 0.0
            (torchvision calls ``overwrite_eps(model, 0.0)`` for them); ImageNet weights use 1e-5.
        frozen_stages: freeze the stem and ``layer1..layer{frozen_stages}`` (no gradients; BN/GN layers
            there stay in eval mode). 1 equals torchvision's ``trainable_layers=3``; 0 or -1 freeze nothing.
        out_indices: which of ``layer1..layer4`` (0..3) to return; deeper stages are not built.
        groups, width_per_group: ResNeXt cardinality / width (e.g. 32, 4 for ResNeXt-50 32x4d).
        replace_stride_with_dilation: 3 bools for layer2..layer4 (output stride 8 / 16 for segmentation).
        output_stride: 32, 16 or 8, shorthand for ``replace_stride_with_dilation`` (16: layer4 dilated 2;
            8: layer3 dilated 2, layer4 dilated 4); None: use ``replace_stride_with_dilation``. ResNet-18/34
            support dilation too (torchvision's ``BasicBlock`` refuses it; here its 3x3 convs are dilated
            as torchvision dilates a ``Bottleneck``'s: the first block at the previous rate, the others at
            the new one). Weights are unchanged, so ImageNet checkpoints still load.
        init_checkpoint: local path of a torchvision ImageNet state dict (or a ``{'model': ...}`` /
            ``{'state_dict': ...}`` checkpoint; ``fc.*`` is ignored) or of a detkit checkpoint with a ResNet
            backbone, e.g. a classifier's ``best.pth`` (see :meth:`load_checkpoint`).
        zero_init_residual: zero the last norm weight of each residual block (torchvision's option).
        gn_groups: groups of GroupNorm when ``norm='GN'``.

    Attributes:
        out_channels (list[int]), strides (list[int]): per returned level (e.g. [4, 8, 16, 32]).

    State dict: exactly torchvision's ``resnet{depth}`` names without ``fc``: ``conv1.weight``,
    ``bn1.{weight,bias,running_mean,running_var}``, ``layer{i}.{j}.conv{k}.weight``,
    ``layer{i}.{j}.bn{k}.*``, ``layer{i}.0.downsample.{0,1}.*``.

    ``forward(x: Tensor[B,3,H,W]) -> list[Tensor[B,C_i,H/s_i,W/s_i]]``.

    ``fused_inference`` (attribute, default False; detectors turn it on): without autograd, frozen norms
    are folded into the convs at call time and conv + residual add + ReLU run as one op. The state dict is
    unchanged (contrast :meth:`fuse_frozen_bn`, which rewrites the modules).
    """

    def __init__(
        self,
        depth: int = 50,
        norm: str = "FrozenBN",
        norm_eps: float = 1e-5,
        frozen_stages: int = 1,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
        init_checkpoint: str | None = None,
        zero_init_residual: bool = False,
        gn_groups: int = 32,
        output_stride: int | None = None,
    ):
        super().__init__()
        replace_stride_with_dilation = _dilation_flags(output_stride, replace_stride_with_dilation)
        if depth not in _ARCH:
            raise ValueError(f"ResNet depth must be one of {sorted(_ARCH)}, got {depth}")
        out_indices = sorted(int(i) for i in out_indices)
        if not out_indices or out_indices[0] < 0 or out_indices[-1] > 3:
            raise ValueError(f"ResNet out_indices must be a non-empty subset of 0..3, got {out_indices}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"ResNet frozen_stages must be in -1..4, got {frozen_stages}")
        block, layers = _ARCH[depth]
        basic = block is tv_resnet.BasicBlock  # torchvision refuses dilated BasicBlocks: dilate them below
        tv_dilation = [False] * 3 if basic else list(replace_stride_with_dilation)
        net = tv_resnet.ResNet(
            block,
            layers,
            zero_init_residual=zero_init_residual,
            groups=groups,
            width_per_group=width_per_group,
            replace_stride_with_dilation=tv_dilation,
            norm_layer=_norm_layer(norm, norm_eps, gn_groups),
        )
        if basic:
            _dilate_basic_layers(net, replace_stride_with_dilation)
        self.depth = depth
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.num_stages = out_indices[-1] + 1
        self.fused_inference = False  # see forward(); detectors turn it on for predict
        for i in range(self.num_stages):
            self.add_module(f"layer{i + 1}", getattr(net, f"layer{i + 1}"))
        stride, strides = 4, []
        for i, dil in enumerate((False, *replace_stride_with_dilation)):
            stride *= 1 if (i == 0 or dil) else 2
            strides.append(stride)
        width = block.expansion * 64
        self.out_channels = [width * 2**i for i in out_indices]
        self.strides = [strides[i] for i in out_indices]
        self.init_report: InitReport | None = None  # what init_checkpoint loaded
        if init_checkpoint:
            self.load_checkpoint(init_checkpoint)
        self._freeze()

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 1:
            return []
        mods = [self.conv1, self.bn1]
        return mods + [getattr(self, f"layer{i}") for i in range(1, min(self.frozen_stages, self.num_stages) + 1)]

    def _freeze(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        """Set the training mode; frozen stages keep their norm layers in eval mode."""
        super().train(mode)
        for m in self._frozen_modules():
            m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps of ``out_indices``, increasing stride.

        With ``fused_inference`` and no autograd, frozen norms are folded into their convs and conv + add +
        ReLU fused (``detkit.models.fuse``): the same arithmetic up to float rounding, same state dict.
        """
        fused = self.fused_inference and not torch.is_grad_enabled()
        if fused:
            x = conv_norm_act(x, self.conv1, self.bn1, relu=True)
        else:
            x = self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for i in range(self.num_stages):
            layer = getattr(self, f"layer{i + 1}")
            if fused:
                for block in layer:
                    x = resnet_block(block, x)
            else:
                x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def load_checkpoint(self, path: str) -> InitReport:
        """Load backbone weights from ``path``; a mismatched architecture is an error. Returns (and keeps as
        ``init_report``) what was loaded, dropped, missing and unexpected (also logged).

        ``path``: a torchvision-layout ResNet state dict (plain, under ``model`` / ``state_dict``, ``module.`` /
        ``backbone.body.`` prefixed; ``fc.*`` ignored) or a detkit checkpoint of any model with a ResNet
        backbone, e.g. a ``Classifier``'s ``best.pth`` (its ``backbone.*`` tensors; the head is dropped).
        A file that is not a torch file (missing, empty, YAML, random bytes, ...) is a ``CheckpointError``
        naming ``model.backbone.init_checkpoint`` and the fix (``CheckpointNotFoundError``, a
        ``FileNotFoundError``, when it does not exist).
        """
        raw, report = read_backbone_state(path, "ResNet")
        state = raw if report is not None else _unwrap_state_dict(raw, path)
        own = self.state_dict()
        # skip fc and the stages this backbone does not build (out_indices stop earlier)
        built = set(_STEM) | {f"layer{i + 1}" for i in range(self.num_stages)}
        skipped = [k for k in state if k.split(".")[0] not in built and (k.startswith("fc.") or k.startswith("layer"))]
        state = {k: v for k, v in state.items() if k not in skipped}
        bad_keys = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in bad_keys]
        if bad or not any(k in own for k in state):
            detail = "; ".join(bad[:5]) if bad else f"no key matches (first keys: {list(state)[:3]})"
            raise CheckpointMismatchError(
                f"checkpoint '{path}' does not fit ResNet-{self.depth} (groups={self.layer1[0].conv2.groups}): "
                f"{detail}. Give a torchvision resnet{self.depth} state dict, a detkit checkpoint with this "
                "backbone, or change model.backbone.depth"
            )
        self.init_report = load_backbone_weights(self, state, path, report)
        return self.init_report

    @torch.no_grad()
    def fuse_frozen_bn(self) -> ResNet:
        """Fold every ``FrozenBatchNorm2d`` into the conv before it (inference speed-up; same outputs within 1e-4).

        The convs gain a bias and the norm layers become ``nn.Identity``, so the state dict changes:
        call it after loading weights, for inference only.
        """
        pairs = [(self, "conv1", "bn1")]
        for _name, mod in self.named_modules():
            if isinstance(mod, (tv_resnet.BasicBlock, tv_resnet.Bottleneck)):
                pairs += [(mod, f"conv{k}", f"bn{k}") for k in (1, 2, 3) if hasattr(mod, f"bn{k}")]
                if mod.downsample is not None:
                    pairs.append((mod.downsample, "0", "1"))
        for parent, conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            if not isinstance(bn, FrozenBatchNorm2d):
                continue
            scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
            bias = bn.bias - bn.running_mean * scale
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                conv.groups,
                bias=True,
            ).to(conv.weight)
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            fused.bias.copy_(bias if conv.bias is None else conv.bias * scale + bias)
            fused.weight.requires_grad_(conv.weight.requires_grad)
            fused.bias.requires_grad_(conv.weight.requires_grad)
            setattr(parent, conv_name, fused)
            setattr(parent, bn_name, nn.Identity())
        return self


def _dilation_flags(output_stride: int | None, flags: Sequence[bool]) -> tuple[bool, bool, bool]:
    """``replace_stride_with_dilation`` for ``output_stride`` (32/16/8), or ``flags`` when it is None."""
    flags = tuple(bool(f) for f in flags)
    if len(flags) != 3:
        raise ValueError(f"ResNet replace_stride_with_dilation needs 3 bools (layer2..layer4), got {flags}")
    if output_stride is None:
        return flags
    table = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}
    if int(output_stride) not in table:
        raise ValueError(f"ResNet output_stride must be 32, 16 or 8, got {output_stride}")
    wanted = table[int(output_stride)]
    if any(flags) and flags != wanted:
        raise ValueError(
            f"ResNet output_stride={output_stride} contradicts replace_stride_with_dilation="
            f"{list(flags)}; give only one of them"
        )
    return wanted


def _dilate_basic_layers(net: tv_resnet.ResNet, flags: Sequence[bool]) -> None:
    """Turn the stride of layer2..4 into dilation for BasicBlocks, following torchvision's ``_make_layer``."""
    dilation = 1
    for i, dilate in enumerate(flags):
        layer = getattr(net, f"layer{i + 2}")
        previous = dilation
        if dilate:
            dilation *= 2
            layer[0].conv1.stride = (1, 1)
            if layer[0].downsample is not None:
                layer[0].downsample[0].stride = (1, 1)
        for j, blk in enumerate(layer):
            rate = previous if j == 0 else dilation
            for conv in (blk.conv1, blk.conv2):
                conv.dilation, conv.padding = (rate, rate), (rate, rate)


def _unwrap_state_dict(ckpt, path: str) -> dict[str, Tensor]:
    """The ResNet tensors of a checkpoint: plain, ``{'model'|'state_dict': ...}``, ``module.``/``backbone.body.`` prefixed."""
    if isinstance(ckpt, dict):
        for key in ("model", "state_dict"):
            if key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(isinstance(v, Tensor) for v in ckpt.values()):
        raise ValueError(
            f"checkpoint '{path}' is not a state dict (a dict of tensors, or one under 'model' / 'state_dict')"
        )
    state = dict(ckpt)
    for prefix in ("module.", "backbone.body.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if not any(k.startswith("conv1.") for k in state):
        body = {k[len("backbone.body.") :]: v for k, v in state.items() if k.startswith("backbone.body.")}
        state = body or state
    return state
