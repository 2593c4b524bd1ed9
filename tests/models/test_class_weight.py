"""class_weight of ClsHead, RoIBoxHead and YOLOHead: ones change nothing, a class's weight scales its terms."""

import pytest
import torch

from detkit.config import load_config
from detkit.models import build_model
from detkit.models.heads.cls import ClsHead
from detkit.models.heads.roi_box import RoIBoxHead
from detkit.models.heads.yolo import YOLOHead


def test_cls_head():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 2, 1, 0])
    plain = ClsHead(3, 8, label_smoothing=0.1).loss(logits, targets)["cls/ce"]
    ones = ClsHead(3, 8, label_smoothing=0.1, class_weight=[1, 1, 1]).loss(logits, targets)["cls/ce"]
    torch.testing.assert_close(ones, plain)
    per = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    weighted = ClsHead(3, 8, class_weight=[1, 0, 2]).loss(logits, targets)["cls/ce"]
    torch.testing.assert_close(weighted, (per * torch.tensor([1.0, 0, 2])[targets]).mean())
    soft = torch.nn.functional.one_hot(targets, 3).float()
    torch.testing.assert_close(ClsHead(3, 8, class_weight=[1, 0, 2]).loss(logits, soft)["cls/ce"], weighted)
    with pytest.raises(ValueError, match=r"ClsHead.class_weight must be 3 numbers >= 0"):
        ClsHead(3, 8, class_weight=[1, 2])


def test_roi_box_head():
    head = RoIBoxHead(num_classes=2, in_channels=4, representation_size=8)
    g = torch.Generator().manual_seed(1)
    raw = (torch.randn(5, 3, generator=g), torch.randn(5, 8, generator=g))
    labels, targets = torch.tensor([0, 1, 2, 2, 0]), torch.randn(5, 4, generator=g)  # 2 = background
    plain = head.loss(raw, labels, targets)
    head.class_weight = torch.tensor([1.0, 1.0])
    torch.testing.assert_close(head.loss(raw, labels, targets)["roi/cls"], plain["roi/cls"])
    head.class_weight = torch.tensor([0.0, 3.0])  # class 0 dropped, class 1 tripled, background 1
    per = torch.nn.functional.cross_entropy(raw[0], labels, reduction="none")
    expected = (per * torch.tensor([0.0, 3.0, 1.0, 1.0, 0.0])).mean()
    torch.testing.assert_close(head.loss(raw, labels, targets)["roi/cls"], expected)
    torch.testing.assert_close(head.loss(raw, labels, targets)["roi/box"], plain["roi/box"])


def test_yolo_head_from_a_config():
    cfg = load_config("configs/yolo/yolo_n_shapes.yaml", ["model.head.class_weight=[1, 1, 1, 1]"])
    model = build_model(cfg, class_names=["circle", "rectangle", "triangle", "star"])
    assert isinstance(model.head, YOLOHead) and model.head.class_weight.tolist() == [1, 1, 1, 1]
    assert "class_weight" not in model.state_dict()  # not a checkpoint tensor: the config holds it
    torch.manual_seed(0)
    images = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([3])}]
    raw = model.forward_raw(model.preprocess({"images": images, "image_sizes": [(64, 64)]}))
    ones = model.head.loss(raw, targets)
    model.head.class_weight = None
    plain = model.head.loss(raw, targets)
    torch.testing.assert_close(ones["yolo/cls"], plain["yolo/cls"])
    model.head.class_weight = torch.zeros(4)
    assert float(model.head.loss(raw, targets)["yolo/cls"].detach()) == 0.0
    torch.testing.assert_close(model.head.loss(raw, targets)["yolo/box"], plain["yolo/box"])


class _Shapes:
    """A detection set without images: circles 8, rectangles 4, triangles 4, stars 1."""

    class_names = ["circle", "rectangle", "triangle", "star"]
    anns = [[0, 0, 1, 2], [0, 0, 1, 2], [0, 0, 1, 2], [0, 0, 1, 2, 3]]

    def __len__(self):
        return len(self.anns)

    def get_ann_info(self, i):
        return {"labels": torch.tensor(self.anns[i]).numpy()}


def test_balanced_is_resolved_from_the_training_set_before_the_model(caplog):
    from detkit.engine.parts import resolve_class_weights

    cfg = load_config("configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml", ["model.box_head.class_weight=balanced"])
    with caplog.at_level("INFO", logger="detkit"):
        resolve_class_weights(cfg["model"], _Shapes(), _Shapes.class_names)
    expected = [round(17 / (4 * n), 4) for n in (8, 4, 4, 1)]  # n / (C n_c)
    assert cfg["model"]["box_head"]["class_weight"] == expected  # in place: config.yaml gets the numbers
    text = caplog.text
    assert "class weights (model.box_head.class_weight: balanced), objects per class in data.train" in text
    assert "star                   1   0.059   4.250" in text
    model = build_model(cfg, class_names=_Shapes.class_names)
    torch.testing.assert_close(model.box_head.class_weight, torch.tensor(expected))


def test_a_mode_needs_the_training_set_and_a_typo_names_the_choices():
    from detkit.config import ConfigError
    from detkit.engine.parts import resolve_class_weights
    from detkit.engine.preflight import PreflightError

    with pytest.raises(
        ConfigError, match=r"model.head.class_weight must be .* one of: 'balanced', 'sqrt'.*'balanaced'"
    ):
        load_config("configs/yolo/yolo_n_shapes.yaml", ["model.head.class_weight=balanaced"])
    cfg = load_config("configs/yolo/yolo_n_shapes.yaml", ["model.head.class_weight=sqrt"])
    with pytest.raises(ValueError, match=r"YOLOHead.class_weight 'sqrt' is computed from the training set"):
        build_model(cfg, class_names=_Shapes.class_names)
    seg = load_config("configs/seg/semfpn_r18_shapes.yaml", ["model.decode_head.class_weight=balanced"])
    with pytest.raises(PreflightError, match=r"model.decode_head.class_weight: 'balanced' .* weighs pixels"):
        resolve_class_weights(seg["model"], _Shapes(), ["background", *_Shapes.class_names])
