"""Preprocessor: channels_last modes and partial specs over a detector's defaults."""

import copy

import pytest
import torch

from detkit.config import load_config
from detkit.models import build_model
from detkit.models.preprocess import Preprocessor


def _images(b: int = 2, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def test_cpu_train_is_channels_last_under_autograd_only():
    imgs = _images()
    plain = Preprocessor(channels_last=False)(imgs)
    pre = Preprocessor(channels_last="cpu_train")
    train = pre(imgs)
    with torch.no_grad():
        infer = pre(imgs)
    assert train.is_contiguous(memory_format=torch.channels_last) and not train.is_contiguous()
    assert infer.is_contiguous() and plain.is_contiguous()
    assert torch.equal(train, plain) and torch.equal(infer, plain)
    with torch.no_grad():
        assert Preprocessor(channels_last=True)(imgs).is_contiguous(memory_format=torch.channels_last)


def test_bad_channels_last_value_names_the_choices():
    with pytest.raises(ValueError, match="true, false or 'cpu_train'"):
        Preprocessor(channels_last="cpu-train")


def test_partial_spec_keeps_the_detector_defaults():
    # YOLO's default preprocess is pixels / 255; naming one key must not fall back to the ImageNet mean / std
    cfg = load_config("configs/yolo/yolo_n_shapes.yaml", ["model.num_classes=2", "model.preprocess.size_divisor=64"])
    pre = build_model(cfg).preprocess
    assert pre.size_divisor == 64 and pre.channels_last == "cpu_train"
    assert torch.equal(pre.mean.flatten(), torch.zeros(3)) and torch.equal(pre.std.flatten(), torch.ones(3))


def _first_conv_outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    conv = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda mod, inp, out: seen.append(out))
    return seen


def test_yolo_training_step_in_channels_last_equals_nchw_and_predict_is_unchanged():
    """``cpu_train``: the step's maps are channels_last, losses and gradients equal NCHW's up to rounding."""
    torch.manual_seed(0)
    cfg = load_config("configs/yolo/yolo_n_shapes.yaml", ["model.num_classes=3"])
    cl = build_model(cfg).train()
    nchw = copy.deepcopy(cl)
    nchw.preprocess.channels_last = False
    seen_cl, seen_nchw = _first_conv_outputs(cl), _first_conv_outputs(nchw)
    imgs = _images(2, 96)
    boxes = torch.tensor([[10.0, 12.0, 50.0, 60.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([1])}, {"boxes": boxes + 20, "labels": torch.tensor([2])}]
    batch = {"images": imgs, "image_sizes": [(96, 96)] * 2, "targets": targets}
    losses = []
    for model in (cl, nchw):
        loss = sum(model.loss(batch).values())
        loss.backward()
        losses.append(loss.detach())
    assert seen_cl[0].is_contiguous(memory_format=torch.channels_last) and not seen_cl[0].is_contiguous()
    assert seen_nchw[0].is_contiguous()
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(cl.named_parameters(), nchw.parameters(), strict=True):
        assert p.is_contiguous(), name  # the weights keep their layout: checkpoints and predict are unchanged
        assert (p.grad - q.grad).norm() <= 1e-3 * q.grad.norm() + 1e-8, name  # float rounding (~1e-4 here)
    cl.eval(), nchw.eval()
    with torch.no_grad():
        a, b = cl.predict(batch), nchw.predict(batch)
    assert seen_cl[-1].is_contiguous()  # inference runs NCHW
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in ("boxes", "scores", "labels"))


def test_two_stage_channels_last_true_puts_the_dense_parts_in_channels_last():
    torch.manual_seed(0)
    cfg = load_config(
        "configs/mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml",
        ["model.num_classes=2", "model.preprocess.channels_last=true"],
    )
    model = build_model(cfg).train()

    def layouts(part: torch.nn.Module) -> set[bool]:
        return {p.is_contiguous() for p in part.parameters() if p.dim() == 4 and p.shape[-1] > 1}

    for part in (model.backbone, model.neck, model.rpn_head):
        assert layouts(part) == {False}  # 3x3 / 7x7 conv weights channels_last
    assert layouts(model.mask_head) == {True}  # RoI heads keep NCHW weights (torchvision's RoIAlign gives NCHW on GPUs)
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[:, 8:40, 10:50] = 1
    t = {"boxes": torch.tensor([[10.0, 8.0, 50.0, 40.0]]), "labels": torch.tensor([1]), "masks": masks}
    losses = model.loss({"images": _images(2, 64), "image_sizes": [(64, 64)] * 2, "targets": [t, t]})
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and "roi/mask" in losses


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    "mean,std",
    [((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)), ((0, 0, 0), (255, 255, 255)), ((0, 0, 0), (50, 60, 70))],
)
def test_normalize_in_place_equals_the_formula_and_leaves_the_input_alone(layout, mean, std):
    pre = Preprocessor(mean, std)  # ImageNet's; YOLO's pixels / 255 (sub and div skipped); a zero mean only
    imgs = _images(2, 48).float()
    before = imgs.clone()
    sizes = torch.tensor([[48, 40], [30, 48]])
    out = pre.normalize(imgs, sizes, layout=layout)
    ref = (imgs / 255.0 - pre.mean) / pre.std  # torchvision's order, out of place
    ref[0, :, :, 40:] = 0
    ref[1, :, 30:] = 0
    assert torch.equal(out, ref) and out.is_contiguous(memory_format=layout)
    assert torch.equal(imgs, before)  # a float batch of the caller is copied, never normalised in place
