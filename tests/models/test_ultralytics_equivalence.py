"""detkit's YOLO against Ultralytics YOLOv8 with identical weights: same outputs, same losses.

Ultralytics is not a dependency (AGPL): `make test` installs it for the tests only (`make peers`) and fails
when it is missing (tests/conftest.py); a plain pytest run skips these tests where it is not installed.
"""

import pytest
import torch

from detkit.models.detectors.one_stage import OneStageDetector
from detkit.weights.ultralytics import ultralytics_layout_outputs, ultralytics_to_detkit

tasks = pytest.importorskip("ultralytics.nn.tasks")  # a failure under `make test` (tests/conftest.py)

NC = 5


def _pair(seg: bool):
    torch.manual_seed(0)
    ul = (
        tasks.SegmentationModel("yolov8n-seg.yaml", nc=NC, verbose=False)
        if seg
        else tasks.DetectionModel("yolov8n.yaml", nc=NC, verbose=False)
    )
    for m in ul.modules():  # random BN statistics: a check that is not trivially met
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    head = {"type": "YOLOSegHead", "proto_channels": 64} if seg else {"type": "YOLOHead"}
    dk = OneStageDetector(
        backbone={"type": "CSPDarknet", "scale": "n"}, neck={"type": "PAFPN"}, head=head, num_classes=NC
    )
    missing, unexpected = dk.load_state_dict(ultralytics_to_detkit(ul.state_dict()), strict=False)
    assert not missing and not unexpected
    return ul, dk


@pytest.mark.parametrize("seg", [False, True])
def test_same_decoded_outputs(seg):
    ul, dk = _pair(seg)
    ul.eval(), dk.eval()
    x = torch.rand(1, 3, 160, 224)
    with torch.no_grad():
        y = ul(x)
        ours = ultralytics_layout_outputs(dk, x)[0]  # [4 + C (+ K), A]
    ref = (y[0][0] if seg else y[0])[0]
    assert ours.shape == ref.shape
    assert torch.allclose(ours[:4], ref[:4], atol=1e-3)  # boxes xywh, pixels
    assert torch.allclose(ours[4 : 4 + NC], ref[4 : 4 + NC], atol=1e-6)  # class probabilities
    if seg:
        assert torch.allclose(ours[4 + NC :], ref[4 + NC :], atol=1e-5)  # mask coefficients
        with torch.no_grad():
            assert torch.allclose(dk.forward_raw(x)[2], y[0][1], atol=1e-5)  # prototypes


def test_same_losses():
    from ultralytics.cfg import get_cfg

    ul, dk = _pair(seg=False)
    ul.args = get_cfg()
    ul.train(), dk.train()
    h, w = 256, 320
    images = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    boxes = [torch.tensor([[10.0, 20, 120, 140], [150, 30, 300, 200]]), torch.tensor([[40.0, 40, 90, 100]])]
    labels = [torch.tensor([1, 3]), torch.tensor([4])]
    xywh = [
        torch.stack(
            [
                (b[:, 0] + b[:, 2]) / 2 / w,
                (b[:, 1] + b[:, 3]) / 2 / h,
                (b[:, 2] - b[:, 0]) / w,
                (b[:, 3] - b[:, 1]) / h,
            ],
            1,
        )
        for b in boxes
    ]
    ul_batch = {
        "img": images.float() / 255,
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.cat(labels).float()[:, None],
        "bboxes": torch.cat(xywh),
    }
    _, items = ul.loss(ul_batch)
    ref = items.tolist() if torch.is_tensor(items) else [float(v) for v in items.values()]
    ours = dk.loss(
        {
            "images": images,
            "image_sizes": [(h, w)] * 2,
            "targets": [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)],
        }
    )
    got = [ours["yolo/box"].item(), ours["yolo/cls"].item(), ours["yolo/dfl"].item()]
    assert got == pytest.approx(ref, rel=1e-4)
