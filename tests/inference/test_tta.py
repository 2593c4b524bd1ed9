"""Test-time augmentation and ensembles: views mapped back exactly, merges (WBF / NMS), ensembles, class checks.

The models are tiny random-weight builds of the packaged configs; images are as large as the config's test
letterbox, so that the pipeline does not resize them and a mirrored view must map back exactly.
"""

import copy

import numpy as np
import pytest
import torch

import detkit
from detkit.config import load_config
from detkit.data.synthetic import render_image
from detkit.inference.ensemble import Ensemble, check_same_classes, load_members
from detkit.inference.tta import TTAOptions, flip_detections, fuse_detections, parse_tta, view_batch
from detkit.ops.geometry import boxes_to_original
from detkit.utils.checkpoint import CheckpointMismatchError

SMALL_YOLO = "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}"
LETTERBOX_128 = "data.val.pipeline=[{type: LetterBox, size: 128}]"


def tiny(config: str, overrides: list[str], names: list[str], seed: int = 0) -> torch.nn.Module:
    """A packaged config with ``overrides``, random weights from ``seed``, eval mode, ``cfg`` set."""
    torch.manual_seed(seed)
    cfg = load_config(config, overrides)
    model = detkit.build_model(cfg, class_names=names).eval()
    model.cfg = cfg
    return model


def spread_scores(model: torch.nn.Module, cls_bias: float = -1.0) -> torch.nn.Module:
    """He-initialised convs (the default init fades through the layers: every score equal, the top-k and
    NMS then pick among ties) and a class bias that gives scores near sigmoid(cls_bias)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
        head = getattr(model.head, "det", model.head)  # YOLOSegHead keeps the detection head as .det
        for branch in head.cls_branch:
            branch[-1].bias.fill_(cls_bias)
    return model


@pytest.fixture(scope="module")
def yolo():
    return spread_scores(
        tiny("yolo_n_shapes", [SMALL_YOLO, LETTERBOX_128, "model.head.score_thr=0.0"], ["a", "b", "c"])
    )


def shapes(size, seed=0):
    return render_image(np.random.default_rng(seed), size)[0]


def mirrored(image):
    return np.ascontiguousarray(image[:, ::-1])


def one_image_batch(model, image):
    """The collated batch of one image after the model's test pipeline (as ``detkit.predict`` makes it)."""
    from detkit.data.collate import collate
    from detkit.inference.runner import build_test_pipeline

    sample = {"image": image, "boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    sample.update(image_id=0, orig_size=image.shape[:2], scale_factor=(1.0, 1.0), pad_offset=(0, 0))
    pipeline = build_test_pipeline(model.cfg)
    return collate([pipeline(sample) if pipeline else sample])


def assert_same_detections(a, b, atol=1e-3):
    """The same detections in any order (a random model gives many equal scores): each of ``a`` has one
    of ``b`` with the same label, a box within ``atol`` pixels and the same score, and no two share one."""
    assert len(a["boxes"]) == len(b["boxes"]) > 0
    cost = (a["boxes"][:, None] - b["boxes"][None]).abs().amax(-1)  # [N,N] pixels
    cost = cost + (a["scores"][:, None] - b["scores"][None]).abs() * 1e4
    cost[a["labels"][:, None] != b["labels"][None]] = float("inf")
    best = cost.min(1)
    assert float(best.values.max()) <= atol
    assert len(set(best.indices.tolist())) == len(b["boxes"])
    return best.indices  # a[i] is b[indices[i]]


@pytest.mark.parametrize("size", [(128, 128), (96, 128), (128, 80)])
def test_mirrored_view_maps_boxes_back_exactly(yolo, size):
    """The mirrored view of an image, mapped back, is the prediction on the mirrored image, mirrored:
    with letterbox padding above / below (96x128) and left / right (128x80: the content is mirrored alone)."""
    image = shapes(size)
    view = view_batch(one_image_batch(yolo, image), 1.0, flip=True)
    back = flip_detections(yolo.predict(view)[0], size[1])
    assert_same_detections(back, flip_detections(detkit.predict(yolo, mirrored(image)), size[1]), atol=1e-4)
    # under TTA (both views merged) the prediction of the mirrored image is the mirrored prediction
    for merge in ("nms", "wbf"):
        views = {"scales": [1.0], "merge": merge}
        a = detkit.predict(yolo, mirrored(image), tta=views)
        b = flip_detections(detkit.predict(yolo, image, tta=views), size[1])
        assert_same_detections(a, b)


def test_tta_leaves_the_model_as_it_was(yolo):
    assert not yolo.training
    detkit.predict(yolo, shapes((128, 128)), tta=True)
    assert not yolo.training and not any(m.training for m in yolo.modules())


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("scale", [0.6, 1.5])
def test_scaled_view_geometry_maps_to_the_original(scale, flip):
    """A bright square in a letterboxed input, found in the view and mapped with the view's geometry,
    lands on the square of the original image (of the mirrored one for a mirrored view)."""
    orig_h, orig_w, sx = 60, 80, 1.5  # the pipeline enlarged 60x80 to 90x120, letterboxed into 128x128
    images = torch.zeros((1, 3, 128, 128), dtype=torch.uint8)
    images[:, :, 19:109, 4:124] = 50  # content: rows 19..108, cols 4..123
    images[:, :, 19 + 30 : 19 + 60, 4 + 15 : 4 + 45] = 255  # a square at (10, 20)-(30, 40) original pixels
    batch = {"images": images, "image_sizes": [(128, 128)], "orig_sizes": [(orig_h, orig_w)]}
    batch.update(scale_factors=[(sx, sx)], pad_offsets=[(4.0, 19.0)])
    view = view_batch(batch, scale, flip)
    h, w = view["image_sizes"][0]
    assert (h, w) == (round(128 * scale),) * 2 and view["images"].shape[-2:] == (h, w)
    rows, cols = torch.where(view["images"][0, 0] > 150)
    found = torch.tensor([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], dtype=torch.float32)
    mapped = boxes_to_original(found, view["scale_factors"][0], view["pad_offsets"][0], (orig_h, orig_w))[0]
    expected = torch.tensor([orig_w - 30.0, 20.0, orig_w - 10.0, 40.0] if flip else [10.0, 20.0, 30.0, 40.0])
    torch.testing.assert_close(mapped, expected, atol=1.0 / (sx * scale) + 0.5, rtol=0)


def handmade(boxes, scores, labels, size=(40, 60)):
    """A prediction with a filled box mask per detection."""
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.zeros((len(boxes), *size), dtype=torch.bool)
    for m, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
        m[y0:y1, x0:x1] = True
    return {"boxes": boxes, "scores": torch.tensor(scores), "labels": torch.tensor(labels), "masks": masks}


@pytest.mark.parametrize("merge", ["wbf", "nms"])
def test_identical_views_merge_to_the_single_view(merge):
    single = handmade([[2, 3, 20, 30], [30, 5, 55, 25], [31, 6, 54, 24]], [0.9, 0.6, 0.3], [0, 0, 1])
    merged = fuse_detections([single] * 3, (40, 60), TTAOptions(merge=merge))
    torch.testing.assert_close(merged["boxes"], single["boxes"], atol=1e-4, rtol=0)
    torch.testing.assert_close(merged["scores"], single["scores"], atol=1e-6, rtol=0)
    assert torch.equal(merged["labels"], single["labels"]) and torch.equal(merged["masks"], single["masks"])


def test_identical_views_of_a_model_give_its_prediction(yolo):
    """Two unchanged views merged by NMS: the model's prediction. (The threshold is above the IoU of any two
    of the model's detections: those of this random model, clipped to the image, overlap up to ~0.9.)"""
    image = shapes((96, 128), seed=1)
    views = {"scales": [1.0, 1.0], "flip": False, "merge": "nms", "iou_thr": 0.99}
    assert_same_detections(detkit.predict(yolo, image, tta=views), detkit.predict(yolo, image), atol=0)


def test_wbf_fuses_and_nms_keeps_the_best():
    """View 0: A (0.9) and B (0.6, found by no other view); view 1: A shifted 4 px (0.7), and a box of
    another class on A (never merged with it)."""
    size = (40, 60)
    v0 = handmade([[10, 10, 30, 30], [40, 5, 55, 20]], [0.9, 0.6], [0, 0], size)
    v1 = handmade([[14, 10, 34, 30], [10, 10, 30, 30]], [0.7, 0.5], [0, 1], size)
    nms = fuse_detections([v0, v1], size, TTAOptions(merge="nms"))
    assert nms["boxes"].tolist() == [[10, 10, 30, 30], [40, 5, 55, 20], [10, 10, 30, 30]]
    assert nms["scores"].tolist() == pytest.approx([0.9, 0.6, 0.5]) and nms["labels"].tolist() == [0, 0, 1]
    assert torch.equal(nms["masks"][0], v0["masks"][0])
    wbf = fuse_detections([v0, v1], size, TTAOptions(merge="wbf", iou_thr=0.55))  # A and its shift: IoU 2/3
    a = (0.9 * torch.tensor([10.0, 10, 30, 30]) + 0.7 * torch.tensor([14.0, 10, 34, 30])) / 1.6
    torch.testing.assert_close(wbf["boxes"][0], a, atol=1e-3, rtol=0)
    # scores: A the mean of its two; one view of two found B and the class-1 box: half their score
    assert wbf["scores"].tolist() == pytest.approx([0.8, 0.3, 0.25], abs=1e-6) and wbf["labels"].tolist() == [0, 0, 1]
    vote = wbf["masks"][0]  # columns 10..13 only in A (weight 0.9 / 1.6 >= 1/2), 30..33 only in the shifted box
    assert vote[10:30, 10:30].all() and not vote[10:30, 30:34].any() and vote.sum() == 20 * 20
    thr = fuse_detections([v0, v1], size, TTAOptions(merge="wbf", iou_thr=0.55), score_thr=0.28)
    assert thr["scores"].tolist() == pytest.approx([0.8, 0.3], abs=1e-6) and thr["masks"].shape == (2, *size)
    empty = fuse_detections([handmade([], [], [], size)] * 2, size, TTAOptions())
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, *size)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two checkpoint files of one tiny YOLO and one of a YOLO with other class names."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name, classes in (("a", ["a", "b", "c"]), ("other", ["a", "c", "b"])):
        model = spread_scores(tiny("yolo_n_shapes", [SMALL_YOLO, LETTERBOX_128, "model.head.score_thr=0.0"], classes))
        paths[name] = folder / f"{name}.pth"
        torch.save({"model": model.state_dict(), "meta": {"config": model.cfg, "class_names": classes}}, paths[name])
    return paths


def test_ensemble_of_one_checkpoint_twice_is_the_model(checkpoints):
    one, again = load_members([checkpoints["a"], checkpoints["a"]], device="cpu")
    image = shapes((96, 128), seed=2)
    merged = detkit.predict([one, again], image, tta={"scales": [1.0], "flip": False, "merge": "nms", "iou_thr": 0.99})
    assert_same_detections(merged, detkit.predict(one, image), atol=0)
    # with WBF every object is found by both: the same boxes and scores (up to float rounding)
    fused = detkit.predict(
        Ensemble([one, again], TTAOptions(scales=(1.0,), flip=False, merge="wbf", iou_thr=0.99)), image
    )
    assert_same_detections(fused, detkit.predict(one, image), atol=1e-3)


def test_ensemble_of_other_classes_is_an_error(checkpoints, yolo):
    models = load_members([checkpoints["a"], checkpoints["other"]], device="cpu")
    names = [f"checkpoint {checkpoints['a']}", f"checkpoint {checkpoints['other']}"]
    with pytest.raises(CheckpointMismatchError) as e:
        Ensemble(models, names=names)
    assert str(checkpoints["a"]) in str(e.value) and str(checkpoints["other"]) in str(e.value)
    assert "label 1: 'b' vs 'c'" in str(e.value)
    segmentor = tiny("semfpn_r18_shapes", TINY_SEG, ["a", "b", "c"])
    with pytest.raises(CheckpointMismatchError, match="model 0 is a detector but model 1 is a segmentor"):
        check_same_classes([yolo, segmentor])
    masks = copy.deepcopy(yolo)
    masks.mask_head = torch.nn.Identity()  # as a Mask R-CNN: predicts masks (the merge would drop them)
    with pytest.raises(CheckpointMismatchError, match="model 1 predicts instance masks but model 0 does not"):
        check_same_classes([yolo, masks])


def test_options_and_their_errors():
    assert TTAOptions().views()[0] == (1.0, False) and len(TTAOptions().views()) == 6
    assert (TTAOptions().merge, TTAOptions().iou_thr, TTAOptions(merge="wbf").iou_thr) == ("nms", 0.55, 0.7)
    assert parse_tta({"scales": "0.5, 1"}).scales == (0.5, 1.0) and parse_tta(False) is None
    for bad, match in (
        ({"scale": [1]}, "unknown tta option"),
        ({"scales": "a,b"}, "numbers separated by commas"),
        ({"scales": [0, 1]}, "factors > 0"),
        ({"merge": "mean"}, "merge must be one of"),
        ({"iou_thr": 0}, "iou_thr"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_tta(bad)
    with pytest.raises(ValueError, match="tta .* and tile do not combine"):
        detkit.predict(tiny("yolo_n_shapes", [SMALL_YOLO], ["a"]), shapes((64, 64)), tta=True, tile=32)


TINY_SEG = ["model.neck.out_channels=16", "model.decode_head.channels=16", "data.val.pipeline=[]"]


def test_segmentor_averages_probabilities_over_views():
    model = tiny("semfpn_r18_shapes", TINY_SEG, ["background", "a", "b"])
    image = shapes((64, 96), seed=3)
    one_view = detkit.predict(model, image, tta={"scales": [1.0], "flip": False})
    assert torch.equal(one_view["sem_seg"], detkit.predict(model, image)["sem_seg"])
    views = {"scales": [1.0], "flip": True}
    a = detkit.predict(model, mirrored(image), tta=views)["sem_seg"]
    b = detkit.predict(model, image, tta=views)["sem_seg"]
    assert torch.equal(a, b.flip(-1))
    scaled = detkit.predict(model, image, tta=True)["sem_seg"]
    assert scaled.shape == (64, 96) and scaled.dtype == torch.int64


def test_classifier_averages_probabilities_over_views():
    model = tiny("resnet18_shapes", ["data.val.pipeline=[]"], ["a", "b", "c", "d"])
    image = shapes((64, 64), seed=4)
    merged = detkit.predict(model, image, tta={"scales": [1.0]})
    expected = (detkit.predict(model, image)["scores"] + detkit.predict(model, mirrored(image))["scores"]) / 2
    torch.testing.assert_close(merged["scores"], expected, atol=1e-6, rtol=0)
    assert merged["labels"].tolist() == expected.topk(4).indices.tolist()
    assert float(detkit.predict(model, image, tta=True)["scores"].sum()) == pytest.approx(1.0, abs=1e-5)


def test_instance_masks_follow_the_mirrored_view():
    model = tiny("yolo_n_seg_shapes", [SMALL_YOLO, LETTERBOX_128, "model.head.det.score_thr=0.0"], ["a", "b"])
    model = spread_scores(model)
    image = shapes((96, 128), seed=5)
    views = {"scales": [1.0], "merge": "nms"}
    a = detkit.predict(model, mirrored(image), tta=views)
    b = detkit.predict(model, image, tta=views)
    match = assert_same_detections(a, flip_detections(b, 128))
    assert a["masks"].shape[1:] == (96, 128) and a["masks"].any()
    assert torch.equal(a["masks"], b["masks"][match].flip(-1))
    wbf = detkit.predict(model, image, tta={"merge": "wbf"})
    assert wbf["masks"].shape == (len(wbf["boxes"]), 96, 128) and wbf["masks"].dtype == torch.bool
