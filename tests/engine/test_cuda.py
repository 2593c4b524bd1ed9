"""The CUDA paths against the CPU ones: the same numbers on a GPU (skipped without one; CI has none).

Run on a lent GPU by ``docs/cuda_checks.sh`` (docs/benchmarks.md, "On a GPU"). TF32 is off in these tests so that
the GPU's float32 is compared with the CPU's, not TF32's 10-bit mantissa products.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def float32_matmuls():
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def _yolo(num_classes: int = 5, seg: bool = False):
    from detkit.models.detectors.one_stage import OneStageDetector

    torch.manual_seed(0)
    head = {"type": "YOLOSegHead", "proto_channels": 32} if seg else {"type": "YOLOHead"}
    model = OneStageDetector(
        backbone={"type": "CSPDarknet", "scale": "n"}, neck={"type": "PAFPN"}, head=head, num_classes=num_classes
    )
    for m in model.modules():  # random BN statistics: a check that is not trivially met
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    det = model.head.det if seg else model.head
    with torch.no_grad():  # spread class scores (a new head's are all ~0.01) and boxes of a few strides
        for branch in det.cls_branch:
            branch[-1].weight.normal_(0, 1.0)
            branch[-1].bias.fill_(-1.3)
        for branch in det.box_branch:
            branch[-1].bias.copy_((-0.5 * torch.arange(det.reg_max, dtype=torch.float32)).repeat(4))
    return model


def _batch(device: str, size: int = 256, n: int = 2) -> dict:
    from detkit.benchmark.inputs import synthetic_image, synthetic_targets

    images = torch.stack([synthetic_image(size, size, seed=i) for i in range(n)]).to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in synthetic_targets(n, size, num_classes=5)]
    return {"images": images, "image_sizes": [(size, size)] * n, "targets": targets}


def test_one_hot_bce_on_cuda_equals_the_dense_loss():
    from detkit.models.losses.bce import bce_with_logits_one_hot

    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(4, 3000, 80, generator=g) * 4).cuda()
    labels = torch.randint(0, 80, (4, 3000), generator=g).cuda()
    targets = (torch.rand(4, 3000, generator=g) * (torch.rand(4, 3000, generator=g) < 0.2)).cuda()
    weight = torch.linspace(0.5, 2.0, 80).cuda()
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    dense = torch.zeros_like(logits).scatter_(-1, labels[..., None], targets[..., None])
    ours = bce_with_logits_one_hot(x1, labels, targets, weight)
    ref = F.binary_cross_entropy_with_logits(x2, dense, weight=weight, reduction="sum")
    assert ours.device.type == "cuda" and ours.item() == pytest.approx(ref.item(), rel=1e-5)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.float16):  # float32 logits stay float32 under fp16 autocast
        under = bce_with_logits_one_hot(logits, labels, targets, weight)
    assert under.dtype == torch.float32 and under.item() == ours.item()


def test_task_aligned_assign_on_cuda_equals_the_cpu():
    from detkit.ops.points import anchor_points
    from detkit.ops.tal import task_aligned_assign

    points, _ = anchor_points([(32, 32), (16, 16)], [8, 16])
    g = torch.Generator().manual_seed(1)
    a = points.shape[0]
    logits = torch.randn(2, a, 5, generator=g) * 2
    xy = points[None].expand(2, a, 2)
    pred = torch.cat([xy - 20 * torch.rand(2, a, 2, generator=g), xy + 20 * torch.rand(2, a, 2, generator=g)], -1)
    gt = torch.tensor(
        [[[10.0, 10, 120, 90], [100, 130, 250, 250], [0, 0, 0, 0]], [[50, 60, 200, 220], [0] * 4, [0] * 4]]
    )
    labels = torch.tensor([[1, 4, 0], [2, 0, 0]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    args = (logits, pred, points, labels, gt, valid)
    cpu = task_aligned_assign(*args, logits=True)
    gpu = task_aligned_assign(*(t.cuda() for t in args), logits=True)
    assert cpu.fg.any()
    assert torch.equal(gpu.fg.cpu(), cpu.fg) and torch.equal(gpu.gt_index.cpu()[cpu.fg], cpu.gt_index[cpu.fg])
    torch.testing.assert_close(gpu.score.cpu(), cpu.score, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gpu.boxes.cpu()[cpu.fg], cpu.boxes[cpu.fg])


@pytest.mark.parametrize("seg", [False, True])
def test_yolo_loss_and_gradients_on_cuda_equal_the_cpu(seg):
    cpu = _yolo(seg=seg).train()
    gpu = copy.deepcopy(cpu).cuda()
    batch = _batch("cpu")
    if seg:
        for t in batch["targets"]:
            t["masks"] = torch.zeros(len(t["boxes"]), 256, 256, dtype=torch.uint8)
            for j, (x0, y0, x1, y1) in enumerate(t["boxes"].round().int().tolist()):
                t["masks"][j, y0:y1, x0:x1] = 1
    gbatch = {
        **batch,
        "images": batch["images"].cuda(),
        "targets": [{k: v.cuda() for k, v in t.items()} for t in batch["targets"]],
    }
    lc, lg = cpu.loss(batch), gpu.loss(gbatch)
    assert set(lc) == set(lg)
    for k in lc:
        assert lg[k].item() == pytest.approx(lc[k].item(), rel=1e-3, abs=1e-5), k
    sum(lc.values()).backward()
    sum(lg.values()).backward()
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        if p.grad is not None:
            scale = p.grad.abs().max().clamp(min=1e-6)
            assert float((q.grad.cpu() - p.grad).abs().max() / scale) < 1e-2, name


def test_yolo_prediction_on_cuda_equals_the_cpu():
    """The fused inference path (channels_last prepacked oneDNN convs on the CPU, cuDNN on the GPU)."""
    import detkit
    from detkit.weights.ultralytics import ultralytics_layout_outputs

    cpu = _yolo().eval()
    cpu.cfg = {"data": {"val": {"pipeline": [{"type": "LetterBox", "size": 320}]}}}
    gpu = copy.deepcopy(cpu).cuda()
    for model in (cpu, gpu):
        model.optimize_for_inference()
    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        dense_cpu, dense_gpu = ultralytics_layout_outputs(cpu, x)[0], ultralytics_layout_outputs(gpu, x.cuda())[0]
    torch.testing.assert_close(dense_gpu[:4].cpu(), dense_cpu[:4], rtol=0, atol=1e-2)  # boxes, pixels
    torch.testing.assert_close(dense_gpu[4:].cpu(), dense_cpu[4:], rtol=0, atol=1e-4)  # class scores
    img = np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    a, b = detkit.predict(cpu, img, score_thr=0.6), detkit.predict(gpu, img, score_thr=0.6)
    assert 5 <= len(a["boxes"]) < 300 and abs(len(a["boxes"]) - len(b["boxes"])) <= 2
    # boxes clipped to the image can have no area (IoU undefined): match by distance and class instead
    dist = torch.cdist(a["boxes"].float().cpu(), b["boxes"].float().cpu(), p=1)
    dist[a["labels"].cpu()[:, None] != b["labels"].cpu()[None]] = float("inf")
    assert (dist.min(1).values < 0.05).float().mean() > 0.95


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_amp_training_on_cuda_starts_where_fp32_does(dtype):
    model = _yolo().cuda().train()
    twin = copy.deepcopy(model)
    batch = _batch("cuda")
    fp32 = sum(model.loss(batch).values()).item()
    with torch.autocast("cuda", dtype=dtype):
        losses = twin.loss(batch)
        total = sum(v.float() for v in losses.values())
    assert torch.isfinite(total) and total.item() == pytest.approx(fp32, rel=0.05) and total.item() != fp32
    total.backward()  # unscaled: finite gradients from the half-precision graph (the trainer scales fp16's)
    grads = [p.grad for p in twin.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_two_stage_training_step_and_prediction_on_cuda():
    from pathlib import Path

    from detkit.config import load_config
    from detkit.models import build_model

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs/_base_/models/mask_rcnn_r50_fpn.yaml")
    cfg["model"]["num_classes"] = 5
    model = build_model(cfg).cuda().train()
    batch = _batch("cuda", size=320)
    for t in batch["targets"]:
        t["masks"] = torch.zeros(len(t["boxes"]), 320, 320, dtype=torch.uint8, device="cuda")
        for j, (x0, y0, x1, y1) in enumerate(t["boxes"].round().int().tolist()):
            t["masks"][j, y0:y1, x0:x1] = 1
    with torch.autocast("cuda", dtype=torch.float16):
        losses = model.loss(batch)
    total = sum(v.float() for v in losses.values())
    assert "roi/mask" in losses and torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        out = model.predict({k: v for k, v in batch.items() if k != "targets"})
    assert len(out) == 2 and all(torch.isfinite(o["boxes"]).all() and len(o["boxes"]) == len(o["masks"]) for o in out)


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_fusing_views_on_cuda_equals_the_cpu(merge):
    """detkit.inference.fuse_detections (TTA, ensembles) takes views on a GPU; results come back on the CPU."""
    from detkit.inference.tiling import merge_detections
    from detkit.inference.tta import TTAOptions, fuse_detections

    g = torch.Generator().manual_seed(0)
    views = []
    for _ in range(3):
        xy = torch.rand(20, 2, generator=g) * 200
        boxes = torch.cat([xy, xy + 10 + torch.rand(20, 2, generator=g) * 60], 1)
        views.append(
            {"boxes": boxes, "scores": torch.rand(20, generator=g), "labels": torch.randint(0, 3, (20,), generator=g)}
        )
    options = TTAOptions(merge=merge)
    cpu = fuse_detections(views, (300, 300), options)
    gpu = fuse_detections([{k: v.cuda() for k, v in p.items()} for p in views], (300, 300), options)
    assert all(v.device.type == "cpu" for v in gpu.values()) and set(cpu) == set(gpu)
    for k in cpu:
        torch.testing.assert_close(gpu[k], cpu[k])
    b, s, lab = (views[0][k].cuda() for k in ("boxes", "scores", "labels"))
    cut = torch.zeros(20, dtype=torch.bool, device="cuda")
    cut[:5] = True
    keep, _ = merge_detections(b, s, lab, cut)
    keep_cpu, _ = merge_detections(b.cpu(), s.cpu(), lab.cpu(), cut.cpu())
    assert keep.device.type == "cuda" and torch.equal(keep.cpu(), keep_cpu)
