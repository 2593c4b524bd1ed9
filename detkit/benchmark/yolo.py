"""Speed of detkit's YOLO against Ultralytics YOLOv8 with identical weights (``tools/benchmark.py --compare ultralytics``).

Ultralytics is never a dependency: install it for the benchmark only (``pip install --no-deps ultralytics
ultralytics-thop``). Its model is built from its own yaml (nothing downloaded), given random BN statistics,
converted with ``detkit.weights.ultralytics`` and loaded into detkit's model; both are fused
(conv + BN) for inference, run in this process in turns, and medians are compared.

Rows: ``forward`` (network + box decoding, a float [1,3,S,S] input), ``end2end`` (a uint8 HWC image of
``S x S``: letterbox, normalise, forward, NMS at score 0.25 / IoU 0.7 / 300 detections, boxes back to the
image) and ``train`` (forward, loss, backward and an SGD step at ``batch`` x S x S).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from detkit.benchmark.rcnn import _median_ms, _train_step, peak_memory, resolve_device, time_interleaved
from detkit.models.build import build_model
from detkit.weights.ultralytics import ultralytics_to_detkit


def _ultralytics():
    try:
        from ultralytics.nn import tasks
    except ImportError as e:
        raise RuntimeError(
            "--compare ultralytics needs Ultralytics installed for the benchmark only: "
            "pip install --no-deps ultralytics ultralytics-thop"
        ) from e
    return tasks


def ultralytics_pair(
    cfg: dict, num_classes: int = 80, seed: int = 0, cls_bias: float = -1.3
) -> tuple[nn.Module, nn.Module]:
    """YOLOv8 (Ultralytics) and detkit's model of ``cfg`` with the same random weights.

    BN statistics are randomised and the class logits' bias set to ``cls_bias`` so that a realistic
    number of candidates (about 1% of anchor x class pairs) pass a 0.25 score threshold.
    """
    tasks = _ultralytics()
    model_cfg = cfg["model"]
    scale = model_cfg.get("backbone", {}).get("scale", "n")
    seg = "Seg" in str(model_cfg.get("head", {}).get("type", ""))
    torch.manual_seed(seed)
    name = f"yolov8{scale}{'-seg' if seg else ''}.yaml"
    ul = (tasks.SegmentationModel if seg else tasks.DetectionModel)(name, nc=num_classes, verbose=False)
    g = torch.Generator().manual_seed(seed)
    for m in ul.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    for branch in ul.model[-1].cv3:
        nn.init.constant_(branch[-1].bias, cls_bias)
    cfg = {**cfg, "model": {**model_cfg, "num_classes": num_classes}}
    dk = build_model(cfg)
    missing, unexpected = dk.load_state_dict(ultralytics_to_detkit(ul.state_dict()), strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"YOLOv8{scale} does not fit the config's model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return ul, dk


def _row(task: str, scale: str, device, shape: str, times: dict, mem: dict, check: str) -> dict:
    ms = {k: _median_ms(v) for k, v in times.items()}
    return {
        "task": task,
        "model": f"yolo_{scale}",
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "input": shape,
        "iters": len(times["detkit"]),
        "detkit_ms": ms["detkit"],
        "peer_ms": ms["ultralytics"],
        "ratio": ms["detkit"] / ms["ultralytics"],
        "detkit_mem_mb": mem["detkit"][0],
        "peer_mem_mb": mem["ultralytics"][0],
        "mem_method": mem["detkit"][1],
        "mem_ratio": (mem["detkit"][0] / mem["ultralytics"][0] if mem["detkit"][0] and mem["ultralytics"][0] else None),
        "check": check,
    }


def bench_infer(
    cfg: dict, size: int = 640, iters: int = 10, warmup: int = 2, device: str | None = None, log=print
) -> list[dict]:
    """``forward`` and ``end2end`` rows: fused detkit vs fused Ultralytics on one ``size`` x ``size`` image."""
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import nms, ops

    import detkit

    dev = resolve_device(device)
    ul, dk = ultralytics_pair(cfg)
    ul = (
        ul.to(dev).eval().fuse(verbose=False) if "verbose" in ul.fuse.__code__.co_varnames else ul.to(dev).eval().fuse()
    )
    dk = dk.to(dev).eval().optimize_for_inference()
    dk.cfg = {"data": {"val": {"pipeline": [{"type": "LetterBox", "size": size}]}}}
    scale = cfg["model"].get("backbone", {}).get("scale", "n")
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(dev)
    head = dk.head.det if hasattr(dk.head, "det") else dk.head

    def dk_forward():
        with torch.inference_mode():
            raw = dk.forward_raw(x)
            bins, logits, points, strides = head.flatten(raw[0] if isinstance(raw, tuple) else raw)
            return head.decode(bins, points, strides), logits.sigmoid()

    def ul_forward():
        with torch.inference_mode():
            return ul(x)

    rows = []
    times = time_interleaved({"detkit": dk_forward, "ultralytics": ul_forward}, iters, warmup, dev)
    mem = {"detkit": peak_memory(dk_forward, dev), "ultralytics": peak_memory(ul_forward, dev)}
    rows.append(_row("forward", scale, dev, f"1x3x{size}x{size}", times, mem, "decoded outputs"))

    img = np.random.default_rng(2).integers(0, 256, (size, size, 3), dtype=np.uint8)
    letterbox = LetterBox((size, size), auto=False)

    def dk_e2e():
        return detkit.predict(dk, img, score_thr=0.25)

    def ul_e2e():
        with torch.inference_mode():
            im = letterbox(image=img[:, :, ::-1])[:, :, ::-1]  # Ultralytics letterboxes BGR arrays
            t = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None].to(dev).float() / 255
            out = ul(t)
            det = nms.non_max_suppression(
                out[0] if isinstance(out, (tuple, list)) else out, 0.25, 0.7, max_per_img=300
            )[0]
            det[:, :4] = ops.scale_boxes(t.shape[2:], det[:, :4], img.shape[:2])
            return det

    times = time_interleaved({"detkit": dk_e2e, "ultralytics": ul_e2e}, iters, warmup, dev)
    mem = {"detkit": peak_memory(dk_e2e, dev), "ultralytics": peak_memory(ul_e2e, dev)}
    n_dk, n_ul = len(dk_e2e()["boxes"]), len(ul_e2e())
    check = f"detections detkit {n_dk}, ultralytics {n_ul}"
    log(f"  check: {check}")
    rows.append(_row("end2end", scale, dev, f"{size}x{size}x3 uint8", times, mem, check))
    return rows


def bench_train(
    cfg: dict, size: int = 640, batch: int = 8, iters: int = 5, warmup: int = 1, device: str | None = None, log=print
) -> list[dict]:
    """``train`` row: forward + loss + backward + SGD step at ``batch`` x ``size``^2, four boxes per image."""
    from ultralytics.cfg import get_cfg

    from detkit.benchmark.rcnn import synthetic_targets

    dev = resolve_device(device)
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

    def ul_loss():
        ul_batch["img"] = images.float() / 255  # the trainer's preprocess_batch
        loss, _ = ul.loss(ul_batch)
        return {"loss": loss.sum()}

    fns = {"detkit": _train_step(dk, lambda: dk.loss(dk_batch)), "ultralytics": _train_step(ul, ul_loss)}
    first = {k: fn() for k, fn in fns.items()}
    times = time_interleaved(fns, iters, max(0, warmup - 1), dev)
    mem = {k: peak_memory(fn, dev) for k, fn in fns.items()}
    check = (
        f"first-step loss detkit {first['detkit']:.4g} (batch mean), ultralytics {first['ultralytics']:.4g} (x batch)"
    )
    log(f"  check: {check}")
    return [_row("train", scale, dev, f"{batch}x3x{size}x{size}", times, mem, check)]
