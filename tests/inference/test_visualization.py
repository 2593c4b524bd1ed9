"""detkit.visualization: stable class colours, boxes/labels/masks, semantic maps with a legend; inputs untouched."""

import numpy as np
import torch

from detkit.visualization import (
    class_color,
    colorize_sem_seg,
    draw_instances,
    draw_prediction,
    draw_sample,
    draw_sem_seg,
)


def test_colours_are_stable_and_distinct():
    assert class_color(3) == class_color(3)
    assert len({class_color(i) for i in range(20)}) == 20


def test_draw_instances_and_prediction():
    img = np.zeros((60, 80, 3), np.uint8)
    masks = torch.zeros((2, 60, 80), dtype=torch.bool)
    masks[0, 10:30, 10:30] = True
    pred = {
        "boxes": torch.tensor([[10.0, 10, 30, 30], [40.0, 5, 70, 50]]),
        "scores": torch.tensor([0.9, 0.1]),
        "labels": torch.tensor([1, 2]),
        "masks": masks,
    }
    out = draw_prediction(img, pred, ["a", "b", "c"], score_thr=0.5)
    assert out.shape == img.shape and img.max() == 0  # a copy: the input is not modified
    assert out[20, 20].any()  # the mask overlay
    assert not out[30:45, 60].any()  # the low-score detection is not drawn
    colour = np.array(class_color(1))
    assert (np.abs(out[10:31, 10].astype(int) - colour).sum(1) < 60).mean() > 0.5  # box edge in the class colour
    assert draw_instances(img, pred["boxes"], pred["labels"]).any()


def test_semantic_maps():
    seg = np.full((40, 50), 255)
    seg[:, :20] = 0
    seg[:, 20:35] = 3
    colour = colorize_sem_seg(seg)
    assert (colour[:, 40] == 0).all() and (colour[0, 25] == class_color(3)).all()
    img = np.full((40, 50, 3), 100, np.uint8)
    plain = draw_sem_seg(img, seg)
    assert (plain[:, 45] == 100).all()  # ignore pixels stay as they are
    legend = draw_sem_seg(img, seg, class_names=["bg", "x", "y", "z"])
    assert (legend[:10] != plain[:10]).any()  # the legend is drawn top-left
    sample = {"image": img, "boxes": np.array([[5, 5, 20, 20]], np.float32), "labels": np.array([0]), "sem_seg": seg}
    assert draw_sample(sample, ["bg", "x", "y", "z"]).shape == img.shape
