"""Segmentor: losses, original-size predictions through resize/letterbox geometry, sliding windows, configs, tools."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import nn

import detkit.models  # noqa: F401  (registers the parts)
from detkit.config import load_config
from detkit.data.collate import collate
from detkit.data.transforms import build_transforms
from detkit.evaluation import SemSegEvaluator
from detkit.models.backbones.resnet import ResNet
from detkit.models.build import build_model
from detkit.models.detectors.segmentor import Segmentor

ROOT = Path(__file__).resolve().parents[2]
BACKBONE = {"type": "ResNet", "depth": 18, "norm": "BN", "frozen_stages": -1}
MODELS = {
    "semfpn": dict(
        backbone=BACKBONE,
        neck={"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 32, "extra": None},
        decode_head={"type": "SemanticFPNHead", "channels": 32, "dice_weight": 0.5},
    ),
    "deeplab": dict(
        backbone={**BACKBONE, "output_stride": 16},
        decode_head={"type": "DeepLabV3PlusHead", "channels": 32, "low_level_channels": 16},
        auxiliary_head={"type": "FCNHead", "channels": 16},
    ),
    "uper": dict(
        backbone=BACKBONE,
        decode_head={"type": "UPerHead", "channels": 32},
        auxiliary_head={"type": "FCNHead", "channels": 16},
    ),
}


def _model(name, **kw):
    torch.manual_seed(0)
    return Segmentor(num_classes=3, **MODELS[name], **kw)


def _batch(sizes=((64, 64), (48, 80)), seed=0):
    """Images whose labels follow their colour (learnable), with an ignored band."""
    rng = np.random.default_rng(seed)
    samples = []
    for i, (h, w) in enumerate(sizes):
        sem = np.zeros((h, w), np.uint8)
        sem[h // 4 : h // 2, w // 5 : w // 2] = 1
        sem[h // 2 :, w // 2 :] = 2
        sem[:4] = 255
        img = np.array([[30, 60, 90], [200, 40, 40], [40, 200, 40]], np.uint8)[np.minimum(sem, 2)] + rng.integers(
            0, 30, (h, w, 3)
        ).astype(np.uint8)
        samples.append({"image": img, "sem_seg": sem, "image_id": i, "orig_size": (h, w)})
    return collate(samples)


class PixelBackbone(nn.Module):
    """Identity 'backbone' (one stride-1 map) so that logits are a pure function of each pixel."""

    out_channels, strides = [3], [1]

    def forward(self, x):
        return [x]


class ColourHead(nn.Module):
    """Logits [B,2,H,W]: class 1 where the (normalised) red channel is positive. No parameters to learn."""

    num_classes = 2

    def forward(self, feats):
        r = feats[0][:, :1]
        return torch.cat([-r, r], dim=1) * 10

    def loss(self, logits, target):
        return {"sem/ce": F.cross_entropy(logits, target, ignore_index=255)}

    def predict(self, logits, size):
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _oracle(**kw):
    return Segmentor(
        backbone=PixelBackbone(),
        decode_head=ColourHead(),
        num_classes=2,
        preprocess={"pixel_mean": [127.5] * 3, "pixel_std": [50.0] * 3},
        **kw,
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_keys_learning_and_odd_size_predictions(name):
    model = _model(name).train()
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(6):
        losses = model(batch)
        total = sum(losses.values())
        first = total.item() if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert all(k.startswith("sem/") for k in losses) and "sem/ce" in losses
    assert ("sem/aux_ce" in losses) == (name != "semfpn") and ("sem/dice" in losses) == (name == "semfpn")
    assert total.item() < first
    model.eval()
    odd = _batch(sizes=((67, 93), (35, 41)))
    preds = model(odd)
    assert [tuple(p["sem_seg"].shape) for p in preds] == [(67, 93), (35, 41)]
    assert all(p["sem_seg"].dtype == torch.int64 and int(p["sem_seg"].max()) < 3 for p in preds)


@pytest.mark.parametrize(
    "pipeline",
    [
        [{"type": "ResizeShortestEdge", "short_sizes": [50], "max_size": None}],
        [{"type": "LetterBox", "size": [96, 96]}],
        [{"type": "ResizeShortestEdge", "short_sizes": [131], "max_size": None}],
    ],
)
def test_predictions_undo_resize_and_padding(pipeline):
    """A per-pixel model must reproduce the original label map after resize / letterbox / batch padding."""
    h, w = 67, 93
    sem = np.zeros((h, w), np.uint8)
    sem[10:40, 20:70] = 1
    sem[45:, 5:30] = 1
    img = np.where(sem[..., None] == 1, np.array([230, 0, 0], np.uint8), np.array([20, 90, 90], np.uint8))
    pipe = build_transforms(pipeline)
    small = {"image": np.full((30, 20, 3), 20, np.uint8), "image_id": 1, "orig_size": (30, 20)}
    batch = collate([pipe({"image": img.astype(np.uint8), "image_id": 0, "orig_size": (h, w)}), pipe(small)])
    pred = _oracle().eval().predict(batch)
    assert tuple(pred[0]["sem_seg"].shape) == (h, w) and tuple(pred[1]["sem_seg"].shape) == (30, 20)
    agree = (pred[0]["sem_seg"].numpy() == sem).mean()
    assert agree > 0.97, agree  # only pixels on the shape borders may differ after resampling
    assert int(pred[1]["sem_seg"].sum()) == 0


def test_sliding_window_equals_whole_image_when_one_window_covers_it():
    model = _model("uper").eval()
    batch = _batch(sizes=((67, 93), (35, 41)))
    whole = model.inference(model.preprocess(batch))
    slide = _model("uper", test_mode="slide", crop_size=(96, 96), stride=64).eval()
    slide.load_state_dict(model.state_dict())
    assert torch.equal(slide.inference(slide.preprocess(batch)), whole)
    assert all(torch.equal(a["sem_seg"], b["sem_seg"]) for a, b in zip(slide.predict(batch), model.predict(batch)))


def test_sliding_window_on_an_image_several_times_the_crop():
    batch = _batch(sizes=((200, 260),))
    oracle = _oracle().eval()
    slide = _oracle(test_mode="slide", crop_size=64, stride=48).eval()
    # a per-pixel model gives the same logits in every window: the average equals one whole pass
    assert torch.allclose(slide.inference(slide.preprocess(batch)), oracle.inference(oracle.preprocess(batch)))
    model = _model("semfpn", test_mode="slide", crop_size=64, stride=(40, 48)).eval()
    calls = []
    model.decode_head.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0][0].shape[-2:])))
    pred = model.predict(batch)
    assert tuple(pred[0]["sem_seg"].shape) == (200, 260)
    rows, cols = (224 - 64 + 39) // 40 + 1, (288 - 64 + 47) // 48 + 1  # input padded to 224 x 288
    assert len(calls) == rows * cols and all(c == (16, 16) for c in calls)  # stride-4 maps of 64 px windows
    with pytest.raises(
        ValueError, match=r"needs crop_size, the window size: set model.crop_size: \[h, w\] .*model.stride"
    ):
        _model("semfpn", test_mode="slide")
    with pytest.raises(ValueError, match=r"stride \(128, 128\) is larger than crop_size \(64, 64\)"):
        _model("semfpn", test_mode="slide", crop_size=64, stride=128)  # gaps: 0/0 logits (NaN) there


def test_ignored_pixels_count_neither_in_loss_nor_metric():
    model = _model("semfpn").eval()
    batch = _batch()
    base = model.loss(batch)
    changed = _batch()
    for t in changed["targets"]:
        t["sem_seg"][:4] = 255  # already ignored rows: relabel nothing, but change the image there
    changed["images"][:, :, :4] = 255 - changed["images"][:, :, :4]
    # the padded region and the ignored band may see other pixels; the loss reads labels only where valid:
    relabelled = model.loss(batch)
    assert torch.allclose(base["sem/ce"], relabelled["sem/ce"])
    preds = model.predict(batch)
    ev_a, ev_b = SemSegEvaluator(3), SemSegEvaluator(3)
    ev_a.process(batch, preds)
    flipped = [{"sem_seg": p["sem_seg"].clone()} for p in preds]
    for p in flipped:
        p["sem_seg"][:4] = (p["sem_seg"][:4] + 1) % 3  # change predictions only where ignored
    ev_b.process(batch, flipped)
    assert ev_a.compute() == ev_b.compute()


def test_bad_labels_and_missing_sem_seg_are_clear_errors():
    model = _model("semfpn")
    batch = _batch()
    batch["targets"][0]["sem_seg"][10, 10] = 7
    with pytest.raises(ValueError, match=r"label value\(s\) \[7\] outside 0..2"):
        model.loss(batch)
    batch["targets"][0]["sem_seg"][10, 10] = 255
    model.ignore_index = 0  # an MMSeg-style setting: the datasets' 255 is then a label out of range
    with pytest.raises(ValueError, match=r"value 255 with model.ignore_index=0: .*must stay 255"):
        model.loss(batch)
    batch["targets"][0].pop("sem_seg")
    with pytest.raises(ValueError, match="needs batch\\['targets'\\]\\[i\\]\\['sem_seg'\\]"):
        model.loss(batch)


@pytest.mark.parametrize(
    "given, key",
    [
        (dict(ignore_index=254), "model.ignore_index=254"),
        (
            dict(decode_head={"type": "SemanticFPNHead", "channels": 32, "ignore_index": 254}),
            "model.decode_head.ignore_index=254",
        ),
        (
            dict(auxiliary_head={"type": "FCNHead", "channels": 16, "ignore_index": 0}),
            "model.auxiliary_head.ignore_index=0",
        ),
    ],
)
def test_an_ignore_index_other_than_255_is_refused_when_built(given, key):
    """MMSeg's habit (decode_head.ignore_index=254) failed at iteration 0 with "Target 255 is out of bounds"
    (model.ignore_index: with a ValueError there), after the work dir was made: the constructor refuses both."""
    spec = {**MODELS["semfpn"], **given}
    with pytest.raises(ValueError, match=rf"^{key}: detkit's datasets mark .* must stay 255; map other values to 255"):
        Segmentor(num_classes=3, **spec)
    fixed = {k: ({**v, "ignore_index": 255} if isinstance(v, dict) else 255) for k, v in given.items()}
    assert Segmentor(num_classes=3, **{**spec, **fixed}).decode_head.criterion.ignore_index == 255


def test_resnet_output_stride_dilates_basic_and_bottleneck_blocks():
    x = torch.randn(1, 3, 67, 93)
    for depth in (18, 50):
        ref = ResNet(depth=depth, norm="BN")
        for os_, strides in ((16, [4, 8, 16, 16]), (8, [4, 8, 8, 8])):
            m = ResNet(depth=depth, norm="BN", output_stride=os_)
            assert m.strides == strides
            m.load_state_dict(ref.state_dict())  # same weights, same names
            outs = m.eval()(x)
            assert [tuple(o.shape[-2:]) for o in outs][-1] == (-(-67 // os_), -(-93 // os_))
    r50 = ResNet(depth=50, norm="BN", output_stride=8)
    assert r50.layer4[1].conv2.dilation == (4, 4) and r50.layer3[0].conv2.dilation == (1, 1)
    r18 = ResNet(depth=18, norm="BN", output_stride=8)
    assert r18.layer4[0].conv1.dilation == (2, 2) and r18.layer4[1].conv1.dilation == (4, 4)
    assert r18.layer3[0].conv1.stride == (1, 1) and r18.layer3[0].downsample[0].stride == (1, 1)
    with pytest.raises(ValueError, match="output_stride must be 32, 16 or 8"):
        ResNet(depth=18, output_stride=4)
    with pytest.raises(ValueError, match="contradicts"):
        ResNet(depth=18, output_stride=16, replace_stride_with_dilation=(False, True, True))


@pytest.mark.parametrize(
    "name", ["semfpn_r18_shapes", "deeplabv3plus_r18_shapes", "upernet_r18_shapes", "semfpn_r50_coco"]
)
def test_configs_build_a_segmentor(name):
    cfg = load_config(ROOT / "configs" / "seg" / f"{name}.yaml")
    names = ["background", "circle", "rectangle", "triangle", "star"]
    model = build_model(cfg, class_names=names)
    assert isinstance(model, Segmentor) and model.num_classes == 5
    assert cfg["train"]["best_metric"] == "sem/mIoU"


def _tiny_folder(root: Path, n: int) -> None:
    batch = _batch(sizes=[(48, 64)] * n)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / "sem" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(batch["images"][i, :, :48, :64].permute(1, 2, 0).numpy()).save(root / split / f"{i}.png")
            Image.fromarray(batch["targets"][i]["sem_seg"][:48, :64].numpy().astype(np.uint8)).save(
                root / "sem" / split / f"{i}.png"
            )
    (root / "classes.txt").write_text("background\nred\ngreen\n")


def test_train_and_eval_tools_run_a_segmentor(tmp_path):
    data = tmp_path / "data"
    _tiny_folder(data, 4)
    cfg = load_config(ROOT / "configs" / "seg" / "semfpn_r18_shapes.yaml")
    for split in ("train", "val"):
        cfg["data"][split].update(
            img_dir=str(data / split), mask_dir=str(data / "sem" / split), classes=str(data / "classes.txt")
        )
    cfg["data"]["train"]["pipeline"] = [{"type": "RandomCropCatMax", "crop_size": 32}]
    cfg["data"]["val"]["pipeline"] = []
    cfg["data"].update(batch_size=2, num_workers=0)
    cfg["model"]["neck"]["out_channels"] = 16
    cfg["model"]["decode_head"]["channels"] = 16
    cfg["train"].update(max_epochs=1, eval_interval=1)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = dict(cwd=ROOT, capture_output=True, text=True, timeout=600)
    r = subprocess.run(
        [sys.executable, "tools/train.py", str(path), "--work-dir", str(tmp_path / "w"), "--device", "cpu"], **run
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(
        [
            sys.executable,
            "tools/eval.py",
            str(path),
            str(tmp_path / "w" / "latest.pth"),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "m.json"),
        ],
        **run,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = yaml.safe_load((tmp_path / "m.json").read_text())
    assert set(metrics) == {"sem/mIoU", "sem/mAcc", "sem/aAcc"} and 0.0 <= metrics["sem/aAcc"] <= 1.0
    assert "background" in r.stdout and "green" in r.stdout  # the per-class table names the classes
