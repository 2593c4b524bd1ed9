"""The pointing game's parts: the randomised copy (seeded, the model and the random state untouched) and the hits."""

import numpy as np
import pytest
import torch

from detkit.explain import ExplainError, pointing_game, pointing_hits, randomized_copy


def test_randomized_copy(yolo):
    before = {k: v.clone() for k, v in yolo.state_dict().items()}
    state = torch.random.get_rng_state()
    a, b = randomized_copy(yolo, seed=3), randomized_copy(yolo, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in yolo.state_dict().items())
    conv = "backbone.stem.conv.weight"
    assert not torch.equal(a.state_dict()[conv], before[conv])
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(randomized_copy(yolo, seed=4).state_dict()[conv], a.state_dict()[conv])


def test_pointing_hits(yolo, image):
    h, w = image.shape[:2]
    boxes = np.array([[0, 0, w, h], [10, 20, 60, 70]], np.float32)  # the first holds every pixel
    hits = pointing_hits(yolo, image, boxes, [0, 2], method="hirescam")
    assert hits.dtype == bool and hits.shape == (2,) and hits[0]
    game = pointing_game(yolo, [(image, boxes, [0, 2]), (image, boxes[:1], [1])], method="hirescam")
    assert game["total"] == 3 and game["hits"] == int(hits.sum()) + 1 and game["share"] == game["hits"] / 3


def test_pointing_needs_a_detector(classifier, image):
    with pytest.raises(ExplainError, match="needs a detector"):
        pointing_hits(classifier, image, [[0, 0, 10, 10]], [0])
