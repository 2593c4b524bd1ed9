"""YOLO parts: CSPDarknet scales, PAFPN, YOLOHead / YOLOSegHead contracts, OneStageDetector end to end."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from detkit.config import load_config
from detkit.models import build_model
from detkit.models.backbones.cspdarknet import CSPDarknet
from detkit.models.detectors.one_stage import OneStageDetector
from detkit.models.heads.yolo import YOLOHead
from detkit.models.losses.dfl import distribution_focal_loss
from detkit.models.necks.pafpn import PAFPN

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "scale,neck_blocks,reference", [("n", 1, 3.2e6), ("s", 1, 11.2e6), ("m", 2, 25.9e6), ("l", 3, 43.7e6)]
)
def test_scales_match_yolov8_parameter_counts(scale, neck_blocks, reference):
    model = OneStageDetector(
        backbone={"type": "CSPDarknet", "scale": scale},
        neck={"type": "PAFPN", "num_blocks": neck_blocks},
        head={"type": "YOLOHead"},
        num_classes=80,
    )
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - reference) / reference < 0.15, (scale, n)


def test_coco_configs_build_at_their_scale():
    for scale, reference in (("n", 3.2e6), ("s", 11.2e6)):
        cfg = load_config(ROOT / f"configs/yolo/yolo_{scale}_coco.yaml")
        n = sum(p.numel() for p in build_model(cfg).parameters())
        assert abs(n - reference) / reference < 0.15


def test_backbone_and_neck_shapes():
    bb = CSPDarknet(scale="n")
    feats = bb(torch.randn(1, 3, 96, 64))
    assert bb.strides == [8, 16, 32] and [f.shape[1] for f in feats] == bb.out_channels == [64, 128, 256]
    assert [tuple(f.shape[-2:]) for f in feats] == [(12, 8), (6, 4), (3, 2)]
    neck = PAFPN(bb.out_channels, num_blocks=1)
    outs = neck(feats)
    assert [o.shape[1:] for o in outs] == [f.shape[1:] for f in feats]
    with pytest.raises(ValueError, match="scale"):
        CSPDarknet(scale="q")


def test_dfl_matches_the_two_bin_cross_entropy():
    logits = torch.randn(5, 16)
    target = torch.tensor([0.0, 3.25, 7.5, 14.0, 14.99])
    ref = []
    for row, t in zip(logits, target):
        lo = int(t)
        logp = F.log_softmax(row, -1)
        ref.append(-(logp[lo] * (lo + 1 - t) + logp[min(lo + 1, 15)] * (t - lo)))
    assert torch.allclose(distribution_focal_loss(logits, target), torch.stack(ref), atol=1e-6)


def _batch(h=96, w=128, n_img=2, masks=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 60, (n_img, 3, h, w), dtype=torch.uint8, generator=g)
    targets = []
    for i in range(n_img):
        if i == n_img - 1 and n_img > 1:  # the last image has no objects
            t = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
            if masks:
                t["masks"] = torch.zeros(0, h, w, dtype=torch.uint8)
        else:
            boxes = torch.tensor([[10.0, 12.0, 50.0, 60.0], [60.0, 30.0, 110.0, 80.0]])
            m = torch.zeros(2, h, w, dtype=torch.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                images[i, k, y1:y2, x1:x2] = 230
                m[k, y1:y2, x1:x2] = 1
            t = {"boxes": boxes, "labels": torch.tensor([0, 2])}
            if masks:
                t["masks"] = m
        targets.append(t)
    return {"images": images, "image_sizes": [(h, w)] * n_img, "targets": targets}


def _model(seg=False):
    head = {"type": "YOLOSegHead", "num_protos": 8, "proto_channels": 16} if seg else {"type": "YOLOHead"}
    torch.manual_seed(0)
    return OneStageDetector(
        backbone={"type": "CSPDarknet", "depth_multiple": 0.33, "width_multiple": 0.125},
        neck={"type": "PAFPN"},
        head=head,
        num_classes=3,
    )


@pytest.mark.parametrize("seg", [False, True])
def test_loss_keys_and_a_few_steps_lower_it(seg):
    model = _model(seg).train()
    batch = _batch(masks=seg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(25):
        losses = model.loss(batch)
        total = sum(losses.values())
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        total.backward()
        opt.step()
    keys = {"yolo/box", "yolo/cls", "yolo/dfl"} | ({"yolo/mask"} if seg else set())
    assert set(losses) == keys and all(torch.isfinite(v) for v in losses.values())
    assert total.item() < 0.6 * sum(first.values())


def test_all_empty_batch_gives_finite_losses_with_gradients():
    model = _model().train()
    batch = _batch()
    batch["targets"] = [batch["targets"][1], batch["targets"][1]]
    losses = model.loss(batch)
    sum(losses.values()).backward()
    assert losses["yolo/box"].item() == 0 and losses["yolo/cls"].item() > 0
    assert model.head.cls_branch[0][-1].bias.grad is not None


def test_head_forward_is_tensors_only_and_predict_contract():
    model = _model().eval()
    raw = model.forward_raw(torch.randn(2, 3, 64, 96))
    assert isinstance(raw, list) and all(isinstance(r, torch.Tensor) for r in raw)
    assert [tuple(r.shape) for r in raw] == [(2, 64 + 3, 8, 12), (2, 67, 4, 6), (2, 67, 2, 3)]
    dets = model.head.predict(raw, [(64, 96), (50, 70)], score_thr=0.0, nms_thr=1.0, max_per_img=7)
    for d, (h, w) in zip(dets, [(64, 96), (50, 70)]):
        assert d["boxes"].shape == (7, 4) and d["labels"].dtype == torch.int64
        assert d["boxes"][:, 2].max() <= w and d["boxes"][:, 3].max() <= h and d["boxes"].min() >= 0
        assert (d["scores"][:-1] >= d["scores"][1:]).all()


def test_predict_maps_letterboxed_boxes_and_masks_to_the_original_image():
    model = _model(seg=True).eval()
    batch = _batch(h=64, w=64, n_img=1, masks=True)
    batch.update(orig_sizes=[(33, 31)], scale_factors=[(2.0, 1.5)], pad_offsets=[(1.0, 7.0)])
    out = model.predict(batch, score_thr=0.0, max_per_img=5)[0]
    assert out["masks"].shape == (len(out["boxes"]), 33, 31) and out["masks"].dtype == torch.bool
    assert out["boxes"][:, 2].max() <= 31 and out["boxes"][:, 3].max() <= 33


def test_seg_predict_with_images_without_detections():
    model = _model(seg=True).eval()
    batch = _batch(h=64, w=96, n_img=2, masks=True)
    for out in model.predict(batch, score_thr=1.0):  # nothing passes: empty masks, not an error
        assert out["boxes"].shape == (0, 4) and out["masks"].shape == (0, 64, 96)
    dets = model.head.predict(
        model.forward_raw(model.preprocess(batch)), [(64, 96), (40, 96)], score_thr=0.0, max_per_img=5
    )
    for d, h in zip(dets, (64, 40)):  # per image: its own detections and masks, boxes inside the image
        assert d["masks"].shape == (len(d["boxes"]), 64, 96) and len(d["boxes"]) == 5
        assert d["boxes"][:, 3].max() <= h and set(d) == {"boxes", "scores", "labels", "index", "masks"}


def test_decode_inverts_the_distance_targets():
    head = YOLOHead(num_classes=2, in_channels=[8], strides=[8], reg_max=16)
    points = torch.tensor([[12.0, 20.0]])
    strides = torch.tensor([[8.0]])
    # bins concentrated on side distances (in strides) 1, 2, 3, 4
    bins = torch.full((1, 1, 4, 16), -30.0)
    for side, d in enumerate((1, 2, 3, 4)):
        bins[0, 0, side, d] = 30.0
    boxes = head.decode(bins.view(1, 1, 64), points, strides)
    assert torch.allclose(boxes, torch.tensor([[[4.0, 4.0, 36.0, 52.0]]]), atol=1e-3)


def test_fused_inference_matches_the_plain_model():
    model = _model(seg=True).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    batch = _batch(h=64, w=96, n_img=1, masks=True)
    ref = model.predict(batch, score_thr=0.0, max_per_img=20)[0]
    raw_ref = model.forward_raw(torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.optimize_for_inference()
    out = model.predict(batch, score_thr=0.0, max_per_img=20)[0]
    raw = model.forward_raw(torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)))
    for a, b in zip(raw_ref[0], raw[0]):
        assert torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(ref["scores"], out["scores"], atol=1e-4)
    assert torch.allclose(ref["boxes"], out["boxes"], atol=1e-2)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # nothing changed
    model.train()
    losses = model.loss(batch)  # training runs the plain modules (autograd), fast path or not
    sum(losses.values()).backward()
    assert model.backbone.stem.conv.weight.grad is not None


def test_decode_equals_the_softmax_over_the_last_dim():
    from detkit.benchmark.hotspots import reference_decode

    head = YOLOHead(num_classes=3, in_channels=[8, 16], strides=[8, 16], reg_max=16)
    g = torch.Generator().manual_seed(0)
    raw = [torch.randn(2, 64 + 3, 6, 5, generator=g) * 4, torch.randn(2, 64 + 3, 3, 3, generator=g) * 4]
    bins, _, points, strides = head.flatten(raw)  # bins: a strided view of the maps
    ref = reference_decode(head, bins, points, strides)
    assert torch.allclose(head.decode(bins, points, strides), ref, rtol=1e-6, atol=1e-4)
    assert torch.allclose(head.decode(bins.contiguous(), points, strides), ref, rtol=1e-6, atol=1e-4)
    assert head.decode(bins.half(), points, strides).dtype == torch.float32  # AMP: decoded in float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # train.amp=bf16 on a CPU: the matmul stays float32
        amp = head.decode(bins.bfloat16(), points, strides)
    assert amp.dtype == torch.float32
    assert torch.allclose(amp, head.decode(bins.bfloat16().float(), points, strides), rtol=1e-6, atol=1e-4)
    # channels_last maps (CPU training steps): contiguous [B,A,4R] bins, the softmax over each side's rows
    cl_bins, _, _, _ = head.flatten([r.contiguous(memory_format=torch.channels_last) for r in raw])
    assert cl_bins.is_contiguous() and torch.equal(cl_bins, bins)
    assert torch.allclose(head.decode(cl_bins, points, strides), ref, rtol=1e-6, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cl_amp = head.decode(cl_bins.bfloat16(), points, strides)
    assert cl_amp.dtype == torch.float32
    assert torch.allclose(cl_amp, head.decode(cl_bins.bfloat16().float(), points, strides), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("seg, bound", [(False, 18), (True, 19)])
def test_a_training_step_waits_for_the_host_a_bounded_number_of_times(seg, bound):
    """On a GPU each scalar read, nonzero or boolean-mask index / index_put stalls the launch queue
    (docs/benchmarks.md, "On a GPU"): this step makes 18, most inside torchvision's CIoU loss (its
    ``_loss_inter_union`` masks the overlaps, forward and backward); 27 when the loss gathered its foreground
    with boolean masks. The segmentation loss's per-image gathers add one nonzero in all (6 per image before)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    waits = []

    class HostWaits(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name in ("index", "index_put", "index_put_", "_index_put_impl_"):
                if any(t is not None and t.dtype == torch.bool for t in args[1]):
                    waits.append(name)
            elif name in ("_local_scalar_dense", "nonzero", "_unique2", "masked_select"):
                waits.append(name)
            return func(*args, **(kwargs or {}))

    model = _model(seg).train()
    batch = _batch(n_img=3, masks=seg)
    sum(model.loss(batch).values()).backward()  # caches (anchor points) filled
    with HostWaits():
        sum(model.loss(batch).values()).backward()
    assert len(waits) <= bound, sorted(waits)
