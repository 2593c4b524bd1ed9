"""``classes``: names (any case) or indices resolved against the model's class names, unknown ones named with the
nearest; the filter keeps the chosen labels' detections only."""

import pytest
import torch

from detkit.track.classes import keep_classes, resolve_classes

NAMES = ["circle", "rectangle", "triangle", "star", "Car", "car"]


@pytest.mark.parametrize(
    "given, expected",
    [
        (None, None),
        ("CIRCLE", [0]),
        (["star", 1, "2"], [1, 2, 3]),  # names, indices, and indices as the command line gives them
        (["car"], [4, 5]),  # every class of that name, whatever its case
        ((i for i in [3, 3]), [3]),
    ],
)
def test_names_and_indices_resolve_to_sorted_labels(given, expected):
    assert resolve_classes(given, NAMES) == expected


@pytest.mark.parametrize(
    "given, message",
    [
        (["circel"], "classes: the model has no class 'circel' (nearest: circle)"),
        (["tri", "star"], "classes: the model has no class 'tri' (it has 0 circle, 1 rectangle, 2 triangle, "),
        (["6"], "classes: index 6 is not a class of the model (6 classes: 0 circle,"),
        ([-1], "classes: index -1 is not a class of the model"),
    ],
)
def test_an_unknown_class_is_one_line_with_the_nearest(given, message):
    with pytest.raises(ValueError) as e:
        resolve_classes(given, NAMES)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_keep_classes_filters_every_field_alike():
    det = {
        "boxes": torch.arange(12.0).view(3, 4),
        "scores": torch.tensor([0.9, 0.8, 0.7]),
        "labels": torch.tensor([2, 0, 2]),
    }
    kept = keep_classes(det, [2])
    assert kept["labels"].tolist() == [2, 2] and kept["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert kept["boxes"][:, 0].tolist() == [0.0, 8.0]
    assert keep_classes(det, None) is det
