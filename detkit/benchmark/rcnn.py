"""Speed and memory of two-stage detectors, optionally against torchvision with identical weights.

Used by ``tools/benchmark.py --task infer|train`` (docs/benchmarks.md). With ``compare='torchvision'`` the
config must describe torchvision's R50-FPN v1 (Faster or Mask R-CNN): torchvision's model is built with
seeded random weights made realistic (FrozenBatchNorm2d with random statistics, a sharpened classifier, so
dozens of detections pass the 0.05 threshold), converted with ``detkit.weights.torchvision`` and loaded into
detkit's model; both then run in this process, interleaved (A B A B ...), and medians are compared.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from detkit.benchmark import harness
from detkit.benchmark.harness import RunSettings, measure, resolve_device, result_row
from detkit.benchmark.inputs import synthetic_image, synthetic_targets
from detkit.benchmark.train_step import sgd_step, time_training
from detkit.models.build import build_model
from detkit.weights.torchvision import COCO_CATEGORY_IDS, COCO_UNUSED_IDS, convert_state_dict


def _is_torchvision_r50_fpn(cfg: dict) -> str:
    """'faster' or 'mask' when ``cfg`` is torchvision's R50-FPN v1 layout, else a ValueError."""
    m = cfg.get("model", {})
    bb, neck = m.get("backbone") or {}, m.get("neck") or {}
    box = m.get("box_head") or {}
    if (
        m.get("type") != "TwoStageDetector"
        or bb.get("type") != "ResNet"
        or bb.get("depth") != 50
        or neck.get("type") != "FPN"
        or neck.get("out_channels", 256) != 256
        or box.get("head", "2fc") != "2fc"
    ):
        raise ValueError(
            "--compare torchvision needs torchvision's R50-FPN two-stage model, e.g. "
            "configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yaml or "
            "configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yaml"
        )
    return "mask" if m.get("mask_head") else "faster"


def random_frozen_bn(module: nn.Module, g: torch.Generator, eps: float = 1e-5) -> None:
    """Swap BatchNorm2d for FrozenBatchNorm2d with random, sane statistics (as pretrained backbones have)."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=eps)
            frozen.running_mean.normal_(0, 0.1, generator=g)
            frozen.running_var.uniform_(0.5, 1.5, generator=g)
            frozen.weight.uniform_(0.5, 1.5, generator=g)
            frozen.bias.normal_(0, 0.1, generator=g)
            setattr(module, name, frozen)
        else:
            random_frozen_bn(child, g, eps)


def torchvision_pair(cfg: dict, min_size: int, max_size: int, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(torchvision model, detkit model) with the same seeded random weights (see the module docstring).

    torchvision's model gets ``min_size``/``max_size`` (so it does not resize the benchmark images) and,
    as ``trainable_backbone_layers=3`` does for pretrained weights, a frozen stem and layer1 (detkit's
    ``frozen_stages=1``).
    """
    from torchvision.models.detection import fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn

    kind = _is_torchvision_r50_fpn(cfg)
    torch.manual_seed(seed)
    ctor = maskrcnn_resnet50_fpn if kind == "mask" else fasterrcnn_resnet50_fpn
    tv = ctor(weights=None, weights_backbone=None, num_classes=91, min_size=min_size, max_size=max_size)
    g = torch.Generator().manual_seed(seed + 1)
    eps = float(cfg["model"]["backbone"].get("norm_eps", 1e-5))
    with torch.no_grad():
        random_frozen_bn(tv.backbone.body, g, eps)
        cls = tv.roi_heads.box_predictor.cls_score
        cls.weight.normal_(0, 0.01, generator=g)  # sharper than init: dozens of detections above 0.05
        cls.bias.zero_()
        cls.weight[list(COCO_UNUSED_IDS)] = 0
        cls.bias[list(COCO_UNUSED_IDS)] = -1e4  # unused COCO ids never win (as in trained weights)
    for name, p in tv.backbone.body.named_parameters():
        if name.startswith(("conv1.", "bn1.", "layer1.")):
            p.requires_grad_(False)
    state, info = convert_state_dict(tv.state_dict())
    model_cfg = {**cfg["model"], "num_classes": info["num_classes"]}
    dk = build_model({"model": model_cfg}, class_names=info["class_names"])
    dk.load_state_dict(state, strict=True)
    return tv, dk


def compare_detections(ref: dict, out: dict, category_ids: Tensor | None = None, tol: float = 1.0) -> dict:
    """Match each reference (torchvision) detection to the closest output detection of the same class.

    ``category_ids`` maps the output's labels to the reference's. A pair counts as matched when no box
    coordinate differs by more than ``tol`` pixels. Returns ``n_ref``, ``n_out``, ``matched``, and over the
    matched pairs the largest box and score differences and (for masks) the smallest mask IoU; near the
    score threshold or an NMS tie, float rounding alone can add or drop a detection.
    """
    labels = out["labels"].cpu()
    labels = category_ids[labels] if category_ids is not None else labels
    rb, ob = ref["boxes"].float().cpu(), out["boxes"].float().cpu()
    rs, os_ = ref["scores"].float().cpu(), out["scores"].float().cpu()
    res = {"n_ref": len(rb), "n_out": len(ob), "matched": 0, "box_diff": 0.0, "score_diff": 0.0}
    if len(rb) == 0 or len(ob) == 0:
        return res
    cost = torch.cdist(rb, ob, p=1) + 1e6 * (ref["labels"].cpu()[:, None] != labels[None])
    j = (cost + 1e3 * (rs[:, None] - os_[None]).abs()).argmin(1)
    diff = (rb - ob[j]).abs().amax(1)
    ok = (diff <= tol) & (ref["labels"].cpu() == labels[j])
    res["matched"] = int(ok.sum())
    if ok.any():
        res["box_diff"] = float(diff[ok].max())
        res["score_diff"] = float((rs - os_[j]).abs()[ok].max())
        if "masks" in ref and "masks" in out:
            rm, om = _binary_masks(ref["masks"])[ok], _binary_masks(out["masks"])[j[ok]]
            inter = (rm & om).flatten(1).sum(1).float()
            union = (rm | om).flatten(1).sum(1).float()
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
            res["mask_iou_min"] = float(iou.min())
    return res


def _binary_masks(masks: Tensor) -> Tensor:
    """bool [N,H,W] from detkit's bool [N,H,W] or torchvision's float probabilities [N,1,H,W]."""
    masks = masks.cpu()
    masks = masks[:, 0] if masks.dim() == 4 else masks
    return masks if masks.dtype == torch.bool else masks > 0.5


def _model_name(cfg: dict) -> str:
    if cfg["model"].get("type") == "Segmentor":
        head = str((cfg["model"].get("decode_head") or {}).get("type", "seg")).removesuffix("Head").lower()
        depth = cfg["model"].get("backbone", {}).get("depth", "")
        return f"{head}_r{depth}" if depth else head
    if cfg["model"].get("type") == "OneStageDetector":  # any detector runs here without --compare
        return f"yolo_{cfg['model'].get('backbone', {}).get('scale', '')}"
    kind = "mask_rcnn" if cfg["model"].get("mask_head") else "faster_rcnn"
    depth = cfg["model"].get("backbone", {}).get("depth", "")
    return f"{kind}_r{depth}_fpn" if depth else kind


def bench_infer(
    cfg: dict, size: tuple[int, int] = (800, 1216), compare: str | None = None, settings: RunSettings | None = None
) -> dict:
    """Median latency (ms) and peak memory of ``predict`` on one ``size`` image, detkit vs torchvision.

    detkit runs as ``init_model`` + ``detkit.predict`` would (``optimize_for_inference()``, inference
    mode); torchvision runs its model on the float image, also under ``torch.inference_mode``. The row's
    ``check`` compares their detections (and detkit's plain path, ``fast_predict=False``).
    """
    settings = settings or RunSettings()
    dev = resolve_device(settings.device)
    h, w = int(size[0]), int(size[1])
    tv, dk = torchvision_pair(cfg, min(h, w), max(h, w)) if compare == "torchvision" else (None, build_model(cfg))
    dk = dk.to(dev).eval()
    if hasattr(dk, "optimize_for_inference"):  # detectors; a Segmentor has no fast path to switch on
        dk = dk.optimize_for_inference()
    img = synthetic_image(h, w).to(dev)
    batch = {"images": img[None], "image_sizes": [(h, w)], "orig_sizes": [(h, w)]}

    fns, run_dk, compiled = harness.predict_rows(dk, batch, settings, dev)
    if tv is not None:
        tv = tv.to(dev).eval()

        def run_tv():
            with torch.inference_mode():
                return tv([img.float() / 255])[0]

        fns["torchvision"] = run_tv
    times, mem = measure(fns, settings, dev)
    check = _infer_check(tv, img, dk, run_dk) if tv is not None else _plain_check(run_dk())
    settings.log(f"  check: {check}")
    return result_row("infer", _model_name(cfg), dev, f"1x{h}x{w}", times, mem, check, compiled)


def _plain_check(out: dict) -> str:
    """The check of a run without a peer: the number of detections (a Segmentor's: of classes in its map)."""
    if "boxes" in out:
        return f"{len(out['boxes'])} detections"
    return f"{len(out['sem_seg'].unique())} classes in the {tuple(out['sem_seg'].shape)} label map"


def _infer_check(tv: nn.Module, img: Tensor, dk: nn.Module, run_dk: Callable) -> str:
    """One line comparing detkit's detections with torchvision's.

    Three figures: detkit's fast path, detkit's plain path (``fast_predict=False``, same op order as
    torchvision), and torchvision itself with channels_last weights: float rounding alone, amplified by
    the random weights (their features reach ~1e3), as a yardstick for the fast path's differences.
    """
    ids = torch.tensor(COCO_CATEGORY_IDS)
    with torch.inference_mode():
        ref = tv([img.float() / 255])[0]
        tv_cl = copy.deepcopy(tv).to(memory_format=torch.channels_last)
        yardstick = compare_detections(ref, tv_cl([img.float() / 255])[0])
        del tv_cl
    fast = compare_detections(ref, run_dk(), ids)
    dk.optimize_for_inference(False)
    plain = compare_detections(ref, run_dk(), ids)
    dk.optimize_for_inference(True)

    def line(r: dict) -> str:
        t = (
            f"{r['n_ref']}/{r['n_out']} dets, {r['matched']} matched <=1px: max box {r['box_diff']:.2g} px, "
            f"score {r['score_diff']:.2g}"
        )
        return t + (f", mask IoU >= {r['mask_iou_min']:.3f}" if "mask_iou_min" in r else "")

    return f"fast: {line(fast)}; plain: {line(plain)}; torchvision channels_last: {line(yardstick)}"


def bench_train(
    cfg: dict, size: int = 512, batch: int = 2, compare: str | None = None, settings: RunSettings | None = None
) -> dict:
    """Median time (ms) and peak memory of one training step (forward, backward, SGD step).

    ``batch`` images of ``size`` x ``size`` with four gt boxes (and masks) each; torchvision's model is
    built with ``min_size = max_size = size`` so that it does not resize them. SGD with lr 1e-5, momentum
    0.9, weight decay 1e-4 over the parameters that require grad, for both.
    """
    settings = settings or RunSettings()
    dev = resolve_device(settings.device)
    mask = bool(cfg["model"].get("mask_head"))
    tv, dk = torchvision_pair(cfg, size, size) if compare == "torchvision" else (None, build_model(cfg))
    dk = dk.to(dev).train()
    images = torch.stack([synthetic_image(size, size, seed=2 + i) for i in range(batch)]).to(dev)
    targets = [
        {k: v.to(dev) for k, v in t.items()}
        for t in synthetic_targets(batch, size, with_masks=mask, num_classes=dk.num_classes)
    ]
    if cfg["model"].get("type") == "Segmentor":  # a label map per image, as SegFolderDataset gives
        g = torch.Generator().manual_seed(4)
        for t in targets:
            t["sem_seg"] = torch.randint(0, dk.num_classes, (size, size), generator=g).to(dev)
    dk_batch = {
        "images": images,
        "image_sizes": [(size, size)] * batch,
        "orig_sizes": [(size, size)] * batch,
        "targets": targets,
    }

    def dk_step(m: nn.Module, dtype: torch.dtype | None = None):
        return sgd_step(m, lambda: m.loss(dk_batch), dtype)

    peer = None
    if tv is not None:
        tv = tv.to(dev).train()
        ids = torch.tensor(COCO_CATEGORY_IDS, device=dev)
        tv_targets = [{**t, "labels": ids[t["labels"]]} for t in targets]
        tv_images = [im.float() / 255 for im in images]

        def tv_step(m: nn.Module, dtype: torch.dtype | None = None):
            return sgd_step(m, lambda: m(tv_images, tv_targets), dtype)

        peer = ("torchvision", tv, tv_step)
    times, mem, losses, compiled, amp = time_training(settings, dev, (dk, dk_step), peer)
    check = "; ".join(f"{k} first-step loss {v:.4g}" for k, v in losses.items())
    settings.log(f"  check: {check}")
    return result_row("train", _model_name(cfg), dev, f"{batch}x{size}x{size}", times, mem, check, compiled, amp)
