"""Speed and memory of image classifiers, optionally against torchvision's classifier with the same weights.

Used by ``tools/benchmark.py --task infer|train`` for ``Classifier`` configs (docs/benchmarks.md). With
``compare='torchvision'`` the config must be a ResNet classifier (``ResNet`` backbone with ``BN``, a ``ClsHead``
on the last map): torchvision's ``resnet{depth}`` is built with seeded random weights (BatchNorm statistics
randomised, as trained networks have), its state dict renamed (``backbone.*``, ``fc`` -> ``head.fc``) and loaded
strictly into detkit's model. Both get the same uint8 images and normalise them in the timed call (detkit in
``model.preprocess``, torchvision by the same arithmetic before its forward); they run interleaved (A B A B ...).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from detkit.benchmark import harness
from detkit.benchmark.harness import RunSettings, measure, resolve_device, result_row
from detkit.benchmark.inputs import synthetic_image
from detkit.benchmark.train_step import sgd_step, time_training
from detkit.models.build import build_model

__all__ = ["bench_infer", "bench_train", "torchvision_classifier_pair"]


def _check_resnet_classifier(cfg: dict) -> int:
    """The ResNet depth of a config that torchvision's resnet{depth} can stand for; else a ValueError."""
    m = cfg.get("model", {})
    bb, head = m.get("backbone") or {}, m.get("head") or {}
    indices = list(bb.get("out_indices", (0, 1, 2, 3)))
    if (
        m.get("type") != "Classifier"
        or bb.get("type") != "ResNet"
        or bb.get("norm", "FrozenBN") not in ("BN", "FrozenBN")
        or bb.get("groups", 1) != 1
        or head.get("type") != "ClsHead"
        or indices[-1:] != [3]
        or head.get("in_index", -1) not in (-1, len(indices) - 1)
        or m.get("neck")
    ):
        raise ValueError(
            "--compare torchvision needs a ResNet classifier (backbone ResNet with BN, no neck, ClsHead on the "
            "last map), e.g. configs/cls/resnet50_imagenet.yaml or configs/cls/resnet18_shapes.yaml"
        )
    return int(bb.get("depth", 50))


def torchvision_classifier_pair(cfg: dict, num_classes: int = 1000, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(torchvision resnet{depth}, detkit Classifier) with the same seeded random weights, both in eval mode."""
    from torchvision import models

    depth = _check_resnet_classifier(cfg)
    torch.manual_seed(seed)
    tv = getattr(models, f"resnet{depth}")(weights=None, num_classes=num_classes)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in tv.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.normal_(0, 0.1, generator=g)
    state = {(f"head.{k}" if k.startswith("fc.") else f"backbone.{k}"): v for k, v in tv.state_dict().items()}
    dk = build_model({"model": {**cfg["model"], "num_classes": num_classes}})
    dk.load_state_dict(state, strict=True)
    return tv.eval(), dk.eval()


def _normalize(dk: nn.Module, images: Tensor) -> Tensor:
    """torchvision's input: the uint8 images normalised as detkit's preprocess does (ImageNet mean / std)."""
    return (images.float() / 255 - dk.preprocess.mean) / dk.preprocess.std


def _batch(images: Tensor, labels: Tensor | None = None) -> dict:
    h, w = images.shape[-2:]
    batch = {"images": images, "image_sizes": [(h, w)] * len(images), "orig_sizes": [(h, w)] * len(images)}
    if labels is not None:
        batch["targets"] = [{"labels": lab.reshape(1)} for lab in labels]
        batch["image_ids"] = list(range(len(images)))
    return batch


def bench_infer(
    cfg: dict, size: tuple[int, int] = (224, 224), compare: str | None = None, settings: RunSettings | None = None
) -> dict:
    """Median latency (ms) and peak memory of ``predict`` on one ``size`` image (probabilities and top-k), detkit
    vs torchvision (forward + softmax + top-k on the same image); the check compares their probabilities."""
    settings = settings or RunSettings()
    dev = resolve_device(settings.device)
    h, w = int(size[0]), int(size[1])
    tv, dk = torchvision_classifier_pair(cfg) if compare == "torchvision" else (None, build_model(cfg).eval())
    dk = dk.to(dev)
    batch = _batch(synthetic_image(h, w)[None].to(dev))
    k = dk.topk

    fns, run_dk, compiled = harness.predict_rows(dk, batch, settings, dev)
    if tv is not None:
        tv = tv.to(dev)

        def run_tv():
            with torch.inference_mode():
                probs = tv(_normalize(dk, batch["images"])).softmax(1)[0]
                return {"scores": probs, "labels": probs.topk(k).indices}

        fns["torchvision"] = run_tv
    times, mem = measure(fns, settings, dev)
    ours = run_dk()
    check = f"top-{k} {ours['labels'].tolist()}"
    if tv is not None:
        ref = fns["torchvision"]()
        diff = float((ours["scores"] - ref["scores"]).abs().max())
        check = f"top-{k} equal: {torch.equal(ours['labels'], ref['labels'])}, max probability diff {diff:.2g}"
    settings.log(f"  check: {check}")
    return result_row("infer", _name(cfg), dev, f"1x{h}x{w}", times, mem, check, compiled)


def bench_train(
    cfg: dict, size: int = 224, batch: int = 32, compare: str | None = None, settings: RunSettings | None = None
) -> dict:
    """Median time (ms) and peak memory of one training step (forward, cross entropy with the head's label
    smoothing, backward, SGD step) on ``batch`` images of ``size`` x ``size``, BatchNorm in training mode."""
    settings = settings or RunSettings()
    dev = resolve_device(settings.device)
    tv, dk = torchvision_classifier_pair(cfg) if compare == "torchvision" else (None, build_model(cfg))
    dk = dk.to(dev).train()
    g = torch.Generator().manual_seed(4)
    images = torch.stack([synthetic_image(size, size, seed=2 + i) for i in range(batch)]).to(dev)
    labels = torch.randint(0, dk.num_classes, (batch,), generator=g).to(dev)
    dk_batch = _batch(images, labels)
    ce = nn.CrossEntropyLoss(label_smoothing=dk.head.label_smoothing)

    def dk_step(m: nn.Module, dtype: torch.dtype | None = None):
        return sgd_step(m, lambda: m.loss(dk_batch), dtype)

    def tv_step(m: nn.Module, dtype: torch.dtype | None = None):
        return sgd_step(m, lambda: {"ce": ce(m(_normalize(dk, images)), labels)}, dtype)

    peer = ("torchvision", tv.to(dev).train(), tv_step) if tv is not None else None
    times, mem, losses, compiled, amp = time_training(settings, dev, (dk, dk_step), peer)
    check = "; ".join(f"{k} first-step loss {v:.6g}" for k, v in losses.items())
    settings.log(f"  check: {check}")
    return result_row("train", _name(cfg), dev, f"{batch}x{size}x{size}", times, mem, check, compiled, amp)


def _name(cfg: dict) -> str:
    bb = cfg["model"].get("backbone") or {}
    arch = f"resnet{bb.get('depth', '')}" if bb.get("type") == "ResNet" else bb.get("type", "classifier").lower()
    return f"{arch}_cls"
