"""TrackDrawer: boxes in the colour of their id, trails along the past centres, ids and classes written."""

import numpy as np
import torch

from detkit.track import TrackDrawer
from detkit.visualization import class_color


def frame(tid, box):
    return {
        "ids": torch.tensor([tid]),
        "boxes": torch.tensor([box], dtype=torch.float32),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
    }


def test_box_in_the_id_colour_and_a_trail_between_centres():
    drawer = TrackDrawer(["a", "b"], trail=10)
    image = np.zeros((120, 160, 3), np.uint8)
    drawer.draw(image, frame(3, [10, 40, 30, 60]))
    out = drawer.draw(image, frame(3, [110, 40, 130, 60]))
    colour = np.array(class_color(3))

    def near(pixels):  # the id's colour, give or take OpenCV's anti-aliasing
        return (np.abs(pixels.astype(int) - colour) < 30).all(axis=-1)

    assert near(out[60, 112:129]).all()  # the box's bottom edge
    assert near(out[50, 40:100]).all()  # the trail from centre (20, 50) to (120, 50)
    assert not near(out[30, 40:100]).any()
    assert image.sum() == 0  # the input is not drawn on
    fresh = TrackDrawer(["a", "b"], trail=0).draw(image, frame(3, [110, 40, 130, 60]))
    assert not near(fresh[50, 40:100]).any()  # no trail
