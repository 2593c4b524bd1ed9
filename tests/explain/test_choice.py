"""Choosing what explain explains (``target_class``, ``target_box``): a classifier's map of the class asked for,
a detector's detections of that class only, the detection of highest IoU with a box; the threshold used in the
result; the mistakes (an unknown class, an index out of range, a box that overlaps nothing, a box on a
classifier) as ``ExplainError`` naming the fix."""

import pytest
import torch
from torchvision.ops import box_iou

import detkit
from detkit.explain import ExplainError, NoOverlapError
from detkit.explain.choice import class_index, config_score_thr


def _differ(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_classifier_map_of_the_class_asked_for(classifier, image):
    """The least likely class, by name (any case) or index, gets its own map, not the top class's."""
    top = detkit.explain(classifier, image, method="gradcam", max_dets=1)
    least = int(torch.argmin(top["scores"]))
    assert least != int(top["heatmap_labels"][0])
    by_name = detkit.explain(classifier, image, method="gradcam", target_class=classifier.class_names[least].upper())
    by_index = detkit.explain(classifier, image, method="gradcam", max_dets=3, target_class=least)
    assert by_name["heatmap_labels"].tolist() == [least] == by_index["heatmap_labels"].tolist()
    assert by_name["heatmaps"].shape[0] == 1 and torch.equal(by_name["heatmaps"], by_index["heatmaps"])
    assert _differ(by_name["heatmaps"][0], top["heatmaps"][0]) > 0.1  # class A's map is not class B's


def test_detector_detections_of_the_class_asked_for(yolo, image):
    plain = detkit.predict(yolo, image, score_thr=0.0)
    order = torch.argsort(plain["scores"], descending=True, stable=True)
    wanted = (int(plain["labels"][order[0]]) + 1) % 3  # not the best detection's class
    result = detkit.explain(yolo, image, method="hirescam", score_thr=0.0, max_dets=3, target_class=str(wanted))
    expected = order[plain["labels"][order] == wanted][:3]
    assert result["heatmap_dets"].tolist() == expected.tolist() and len(expected) == 3
    assert result["heatmap_labels"].tolist() == [wanted] * 3
    assert result["score_thr"] == 0.0


def test_box_picks_the_detection_of_highest_iou(yolo, image):
    """A box near a detection far from the best one: that detection is explained, with its IoU, and its map is
    not the best detection's."""
    plain = detkit.predict(yolo, image, score_thr=0.0)
    order = torch.argsort(plain["scores"], descending=True, stable=True)
    boxes = plain["boxes"][order]
    far = int(torch.nonzero(box_iou(boxes[:1], boxes)[0] < 0.3)[0])  # the best one away from the top detection
    asked = boxes[far] + torch.tensor([2.0, 1.0, 1.0, -2.0])
    ious = box_iou(asked[None], boxes)[0]
    expected = int(order[int(torch.argmax(ious))])
    result = detkit.explain(yolo, image, method="hirescam", score_thr=0.0, target_box=asked.tolist())
    assert result["heatmap_dets"].tolist() == [expected] and expected != int(order[0])
    assert result["target_iou"] == pytest.approx(float(ious.max())) and result["target_iou"] > 0.5
    best = detkit.explain(yolo, image, method="hirescam", score_thr=0.0, max_dets=1)
    assert _differ(result["heatmaps"][0], best["heatmaps"][0]) > 0.1


def test_threshold_used_is_in_the_result(faster_rcnn, yolo, classifier, image):
    assert config_score_thr(yolo) == 0.001 and config_score_thr(faster_rcnn) == 0.05
    assert config_score_thr(classifier) is None
    assert detkit.explain(yolo, image, max_dets=1)["score_thr"] == 0.001


def test_mistakes_name_the_fix(yolo, classifier, image):
    names = ["circle", "square", "triangle"]
    assert class_index("SQUARE", names) == 1 and class_index("2", names) == 2 and class_index(0, names) == 0
    with pytest.raises(
        ExplainError,
        match=r"^the model has no class 'cirle' \(nearest: circle\); its classes: 0 circle, 1 square, 2 tri",
    ):
        class_index("cirle", names)
    with pytest.raises(
        ExplainError, match=r"^class 'CAR' names 2 classes of the model \(3 Car, 4 car\): give the exact"
    ):
        class_index("CAR", [*names, "Car", "car"])
    assert class_index("car", [*names, "Car", "car"]) == 4  # of names in other cases, the exact one
    with pytest.raises(TypeError, match="explain: target_class must be a class name or index, got float"):
        class_index(1.5, names)
    with pytest.raises(ExplainError, match=r"index 3 is not a class of the model \(3 classes: 0 a, 1 b, 2 c\)"):
        detkit.explain(yolo, image, target_class=3)
    with pytest.raises(ExplainError, match="a target box needs a detector; this is a Classifier"):
        detkit.explain(classifier, image, target_box=[0, 0, 10, 10])
    with pytest.raises(ExplainError, match="x2 > x1 and y2 > y1, got 10,0,5,10"):
        detkit.explain(yolo, image, target_box=[10, 0, 5, 10])
    h, w = image.shape[:2]
    outside = [w + 10, h + 10, w + 50, h + 50]
    with pytest.raises(
        NoOverlapError,
        match=rf"overlaps none of the \d+ detection\(s\) scoring > score_thr 0 in this {w}x{h} image",
    ):
        detkit.explain(yolo, image, score_thr=0.0, target_box=outside)


def test_segmentor_segment_of_the_class_asked_for(segmentor, image):
    """A class present in the predicted map gets its map; one absent gets none (not the largest segment's)."""
    present = torch.unique(detkit.predict(segmentor, image)["sem_seg"]).tolist()
    absent = [c for c in range(len(segmentor.class_names)) if c not in present][0]
    one = detkit.explain(segmentor, image, method="eigencam", target_class=segmentor.class_names[present[-1]])
    assert one["heatmap_labels"].tolist() == [present[-1]] and one["heatmaps"].shape[0] == 1
    none = detkit.explain(segmentor, image, method="eigencam", target_class=absent)
    assert none["heatmap_labels"].tolist() == [] and none["heatmaps"].shape[0] == 0
