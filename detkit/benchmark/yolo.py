"""Speed of detkit's YOLO against Ultralytics YOLOv8 with identical weights (``tools/benchmark.py --compare ultralytics``).

Ultralytics is never a dependency: install it for the benchmark only (``pip install --no-deps ultralytics
ultralytics-thop``). Its model is built from its own yaml (nothing downloaded), given random BN statistics,
converted with ``detkit.weights.ultralytics`` and loaded into detkit's model; both are fused
(conv + BN) for inference, run in this process in turns, and medians are compared.

Rows: ``forward`` (network + box decoding, a float [1,3,S,S] input), ``end2end`` (a uint8 HWC image of
``S x S``: letterbox, normalise, forward, NMS at score 0.25 / IoU 0.7 / 300 detections, boxes back to the
image) and ``train`` (forward, loss, backward and an SGD step at ``batch`` x S x S).

Both NMS steps do the same work: one candidate per (anchor, class) above the threshold (detkit's
``YOLOHead.select``; Ultralytics' ``multi_label=True``, as its validation runs), class-aware. They differ in
one respect: detkit clips boxes to the image before NMS (as torchvision does), Ultralytics after it; with
boxes much larger than the image (a random head's ~15 strides) that makes clipped boxes coincide and
detkit keep fewer. The pair's box branch is therefore biased to boxes of about three strides, as a trained
model predicts, and the ``end2end`` check counts the detections both keep (same class, IoU >= 0.99).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from detkit.benchmark import harness
from detkit.benchmark.harness import RunSettings, measure, resolve_device, result_row
from detkit.benchmark.inputs import synthetic_targets
from detkit.benchmark.train_step import sgd_step, time_training
from detkit.models.build import build_model
from detkit.weights.ultralytics import ultralytics_layout_outputs, ultralytics_to_detkit


def _ultralytics():
    try:
        from ultralytics.nn import tasks
    except ImportError as e:
        raise RuntimeError(
            "--compare ultralytics needs Ultralytics installed for the benchmark only: "
            "pip install --no-deps ultralytics ultralytics-thop"
        ) from e
    return tasks


def is_yolo(cfg: dict) -> None:
    """A ValueError (a user's mistake: exit 2) unless ``cfg`` is a YOLO config, before anything is built."""
    if "YOLO" not in str(((cfg.get("model") or {}).get("head") or {}).get("type", "")):
        raise ValueError("--compare ultralytics needs a YOLO config, e.g. configs/yolo/yolo_n_coco.yaml")


def randomize_bn_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm running means in [-0.5, 0.5) and variances in [0.5, 1.5), as trained layers have (in place)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def ultralytics_pair(
    cfg: dict, num_classes: int = 80, seed: int = 0, cls_bias: float = -1.3, bin_bias_slope: float = 0.5
) -> tuple[nn.Module, nn.Module]:
    """YOLOv8 (Ultralytics) and detkit's model of ``cfg`` with the same random weights.

    BN statistics are randomised and the class logits' bias set to ``cls_bias`` so that a realistic
    number of candidates (about 1% of anchor x class pairs) pass a 0.25 score threshold; the DFL bins' bias
    falls by ``bin_bias_slope`` per bin, so that box sides lie about 1.5 strides from their anchor (random
    bins put them ~7.5 strides away: boxes far larger than the image at small sizes).
    """
    is_yolo(cfg)
    tasks = _ultralytics()
    model_cfg = cfg["model"]
    scale = model_cfg.get("backbone", {}).get("scale", "n")
    seg = "Seg" in str(model_cfg.get("head", {}).get("type", ""))
    torch.manual_seed(seed)
    name = f"yolov8{scale}{'-seg' if seg else ''}.yaml"
    ul = (tasks.SegmentationModel if seg else tasks.DetectionModel)(name, nc=num_classes, verbose=False)
    randomize_bn_stats(ul, seed)
    head = ul.model[-1]
    with torch.no_grad():
        for branch in head.cv3:
            branch[-1].bias.fill_(cls_bias)
        for branch in head.cv2:  # [4 sides x reg_max bins]
            branch[-1].bias.copy_((-bin_bias_slope * torch.arange(head.reg_max, dtype=torch.float32)).repeat(4))
    cfg = {**cfg, "model": {**model_cfg, "num_classes": num_classes}}
    dk = build_model(cfg)
    missing, unexpected = dk.load_state_dict(ultralytics_to_detkit(ul.state_dict()), strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"YOLOv8{scale} does not fit the config's model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return ul, dk


def bench_infer(cfg: dict, size: int = 640, settings: RunSettings | None = None) -> list[dict]:
    """``forward`` and ``end2end`` rows: fused detkit vs fused Ultralytics on one ``size`` x ``size`` image."""
    settings = settings or RunSettings()
    dev = resolve_device(settings.device)
    ul, dk = ultralytics_pair(cfg)
    ul = (
        ul.to(dev).eval().fuse(verbose=False) if "verbose" in ul.fuse.__code__.co_varnames else ul.to(dev).eval().fuse()
    )
    dk = dk.to(dev).eval().optimize_for_inference()
    dk.cfg = {"data": {"val": {"pipeline": [{"type": "LetterBox", "size": size}]}}}
    name = f"yolo_{cfg['model'].get('backbone', {}).get('scale', 'n')}"
    dkc = harness.compiled_copy(dk, settings, inference=True)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(dev)
    img = np.random.default_rng(2).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return [_forward_row(name, dk, dkc, ul, x, settings, dev), _end2end_row(name, dk, dkc, ul, img, settings, dev)]


def _forward_row(
    name: str, dk: nn.Module, dkc: nn.Module | None, ul: nn.Module, x: Tensor, settings: RunSettings, dev: torch.device
) -> dict:
    """The ``forward`` row: detkit's outputs in YOLOv8's layout [1, 4 + C (+ P), A] against Ultralytics' for
    ``x`` [1,3,H,W] (``dkc``: detkit's compiled copy, or None)."""

    def forward_of(model: nn.Module):
        def run():
            with torch.inference_mode():
                return ultralytics_layout_outputs(model, x)

        return run

    def ul_forward():
        with torch.inference_mode():
            return ul(x)

    dk_forward = forward_of(dk)
    fns = {"detkit": dk_forward, "ultralytics": ul_forward}
    compiled = harness.add_compiled(fns, dkc, forward_of, dk_forward, dev)
    times, mem = measure(fns, settings, dev)
    ours, ref = dk_forward(), ul_forward()
    ref = ref[0] if isinstance(ref, (tuple, list)) else ref  # eval mode: (outputs, raw maps)
    ref = ref[0] if isinstance(ref, (tuple, list)) else ref  # segment: (detections, prototypes)
    diff = (ours - ref).abs()
    check = f"outputs: max box diff {float(diff[:, :4].max()):.2g} px, score diff {float(diff[:, 4:].max()):.2g}"
    settings.log(f"  check: {check}")
    return result_row("forward", name, dev, f"1x3x{x.shape[2]}x{x.shape[3]}", times, mem, check, compiled)


def _ultralytics_end2end(ul: nn.Module, img: np.ndarray, dev: torch.device) -> Callable[[], Tensor]:
    """Ultralytics' prediction of the RGB ``img`` [H,W,3] (square): letterbox, forward, NMS at 0.25 / 0.7 and
    boxes scaled back, as its predictor does; returns detections [K,6+]."""
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import nms, ops

    letterbox = LetterBox(img.shape[:2], auto=False)

    def run() -> Tensor:
        with torch.inference_mode():
            im = letterbox(image=img[:, :, ::-1])[:, :, ::-1]  # Ultralytics letterboxes BGR arrays
            t = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None].to(dev).float() / 255
            out = ul(t)
            pred = out[0] if isinstance(out, (tuple, list)) else out
            nc = ul.model[-1].nc  # a segment head: the mask coefficients follow the classes
            det = nms.non_max_suppression(pred, 0.25, 0.7, max_det=300, multi_label=True, nc=nc)[0]
            det[:, :4] = ops.scale_boxes(t.shape[2:], det[:, :4], img.shape[:2])
            return det

    return run


def _end2end_row(
    name: str,
    dk: nn.Module,
    dkc: nn.Module | None,
    ul: nn.Module,
    img: np.ndarray,
    settings: RunSettings,
    dev: torch.device,
) -> dict:
    """The ``end2end`` row: ``detkit.predict`` on the uint8 ``img`` [H,W,3] against Ultralytics' prediction."""
    import detkit

    def e2e_of(model: nn.Module):
        return lambda: detkit.predict(model, img, score_thr=0.25)

    dk_e2e, ul_e2e = e2e_of(dk), _ultralytics_end2end(ul, img, dev)
    fns = {"detkit": dk_e2e, "ultralytics": ul_e2e}
    compiled = harness.add_compiled(fns, dkc, e2e_of, dk_e2e, dev)  # compiled already: this call times one run
    times, mem = measure(fns, settings, dev)
    check = _detections_check(dk_e2e(), ul_e2e())
    settings.log(f"  check: {check}")
    shape = f"{img.shape[0]}x{img.shape[1]}x3 uint8"
    return result_row("end2end", name, dev, shape, times, mem, check, compiled)


def _detections_check(dk_det: dict, ul_det: torch.Tensor) -> str:
    """Counts of both sides' detections and of detkit's that Ultralytics also has (same class, IoU >= 0.99)."""
    from torchvision.ops import box_iou

    boxes, labels = dk_det["boxes"].float().cpu(), dk_det["labels"].cpu()
    ul_det = ul_det.float().cpu()
    same = (box_iou(boxes, ul_det[:, :4]) >= 0.99) & (labels[:, None] == ul_det[:, 5].long()[None])
    matched = int(same.any(1).sum()) if len(boxes) and len(ul_det) else 0
    return f"detections detkit {len(boxes)}, ultralytics {len(ul_det)}, matched {matched}"


def bench_train(cfg: dict, size: int = 640, batch: int = 8, settings: RunSettings | None = None) -> list[dict]:
    """``train`` row: forward + loss + backward + SGD step at ``batch`` x ``size``^2, four boxes per image."""
    is_yolo(cfg)
    from ultralytics.cfg import get_cfg

    settings = settings or RunSettings()
    dev = resolve_device(settings.device)
    ul, dk = ultralytics_pair(cfg)
    ul.args = get_cfg()
    ul, dk = ul.to(dev).train(), dk.to(dev).train()
    scale = cfg["model"].get("backbone", {}).get("scale", "n")
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g).to(dev)
    targets = [{k: v.to(dev) for k, v in t.items() if k in ("boxes", "labels")} for t in synthetic_targets(batch, size)]
    dk_batch = {"images": images, "image_sizes": [(size, size)] * batch, "targets": targets}
    boxes = torch.cat([t["boxes"] for t in targets])
    xywh = (
        torch.stack(
            [
                (boxes[:, 0] + boxes[:, 2]) / 2,
                (boxes[:, 1] + boxes[:, 3]) / 2,
                boxes[:, 2] - boxes[:, 0],
                boxes[:, 3] - boxes[:, 1],
            ],
            1,
        )
        / size
    )
    ul_batch = {
        "img": None,
        "bboxes": xywh,
        "batch_idx": torch.cat([torch.full((len(t["labels"]),), float(i), device=dev) for i, t in enumerate(targets)]),
        "cls": torch.cat([t["labels"] for t in targets]).float()[:, None],
    }

    def ul_step(m: nn.Module, dtype: torch.dtype | None = None):
        def loss():
            ul_batch["img"] = images.float() / 255  # the trainer's preprocess_batch
            return {"loss": m.loss(ul_batch)[0].sum()}

        return sgd_step(m, loss, dtype)

    def dk_step(m: nn.Module, dtype: torch.dtype | None = None):
        return sgd_step(m, lambda: m.loss(dk_batch), dtype)

    times, mem, first, compiled, amp = time_training(settings, dev, (dk, dk_step), ("ultralytics", ul, ul_step))
    check = (
        f"first-step loss detkit {first['detkit']:.4g} (batch mean), ultralytics {first['ultralytics']:.4g} (x batch)"
    )
    settings.log(f"  check: {check}")
    shape = f"{batch}x3x{size}x{size}"
    return [result_row("train", f"yolo_{scale}", dev, shape, times, mem, check, compiled, amp)]
