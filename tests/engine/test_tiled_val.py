"""Tiled validation: a TiledDataset data.val is scored on whole images predicted tile by tile, as
``detkit.predict(tile=...)`` + pycocotools score them; the untiled-validation warning of a tiled training."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import detkit
from detkit.data.build import build_dataloader, build_dataset
from detkit.engine.evaluate import evaluate, tiled_split
from detkit.evaluation import build_evaluator

TILE = {"size": (96, 96), "overlap": 0.25}


class BlobDetector(nn.Module):
    """Finds bright rectangles (connected components) in each image of a batch: boxes in input pixels."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.zeros(1))

    def predict(self, batch: dict, score_thr: float | None = None) -> list[dict]:
        out = []
        for img, (h, w) in zip(batch["images"], batch["image_sizes"]):
            mask = (img[0, : int(h), : int(w)].cpu().numpy() > 128).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + bw, y + bh] for x, y, bw, bh, _ in stats[1:n]]
            areas = [float(a) for *_, a in stats[1:n]]
            out.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.tensor([0.5 + a / 1e5 for a in areas], dtype=torch.float32),
                    "labels": torch.zeros(len(boxes), dtype=torch.int64),
                }
            )
        return out


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Two 200x300 black images with white rectangles, several across the 96 px tiles' edges."""
    root = tmp_path_factory.mktemp("blobs")
    (root / "img").mkdir()
    rects = [[(10, 10, 40, 30), (80, 60, 130, 110), (150, 20, 260, 70)], [(60, 60, 150, 150), (200, 150, 290, 190)]]
    images, anns = [], []
    for i, boxes in enumerate(rects, start=1):
        img = np.zeros((200, 300, 3), np.uint8)
        for x0, y0, x1, y1 in boxes:
            img[y0:y1, x0:x1] = 255
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
        cv2.imwrite(str(root / "img" / f"{i}.png"), img)
        images.append({"id": i, "file_name": f"{i}.png", "height": 200, "width": 300})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "blob"}]}
    (root / "val.json").write_text(json.dumps(gt))
    return root


def _pycocotools_ap(gt_file, results) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        e = COCOeval(gt, gt.loadRes(results), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return float(e.stats[0])


def test_tiled_validation_scores_what_tiled_inference_and_pycocotools_score(blobs):
    plain = {"type": "CocoDataset", "ann_file": str(blobs / "val.json"), "img_dir": str(blobs / "img")}
    spec = tiled_split(plain, TILE["size"], TILE["overlap"])
    assert spec["type"] == "TiledDataset" and spec["dataset"] == plain and spec["tile_size"] == [96, 96]
    cfg = {"model": {}, "data": {"batch_size": 2, "num_workers": 0, "val": spec}}
    model = BlobDetector(cfg)
    val_set = build_dataset(spec)
    loader = build_dataloader(cfg, "val", dataset=val_set)
    evaluator = build_evaluator(cfg, val_set)  # the source's ground truth: the whole images
    counts: dict[str, int] = {}
    metrics = evaluate(model, loader, evaluator, torch.device("cpu"), progress=False, counts=counts)
    assert counts == {"skipped": 0}

    results = []
    for image_id in (1, 2):
        pred = detkit.predict(model, str(blobs / "img" / f"{image_id}.png"), tile=TILE)
        for (x0, y0, x1, y1), s in zip(pred["boxes"].tolist(), pred["scores"].tolist()):
            results.append({"image_id": image_id, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s})
    expected = _pycocotools_ap(blobs / "val.json", results)
    assert expected > 0.9  # the cut rectangles were merged back whole
    assert metrics["bbox/AP"] == pytest.approx(expected, abs=1e-9)
    assert sorted(evaluator.last_image_ids) == [1, 2]


def test_untiled_validation_of_a_tiled_training_is_a_warning(blobs, caplog):
    from detkit.engine.preflight_data import untiled_val_warning

    plain = {"type": "CocoDataset", "ann_file": str(blobs / "val.json"), "img_dir": str(blobs / "img")}
    train = build_dataset({"type": "TiledDataset", "tile_size": 64, "overlap": 0.2, "dataset": plain})
    shrunk = build_dataset({**plain, "pipeline": [{"type": "LetterBox", "size": 64}]})
    with caplog.at_level(logging.WARNING, logger="detkit"):
        message = untiled_val_warning(train, shrunk)
    assert message is not None and "\n" not in message
    assert "64x64 tiles" in message and "300x200" in message and "shrunk 4.7x" in message
    assert "TiledDataset" in message and "data.val" in message
    tiled = build_dataset(tiled_split({**plain, "pipeline": [{"type": "LetterBox", "size": 64}]}, (64, 64), 0.2))
    assert untiled_val_warning(train, tiled) is None  # tiled validation: nothing to say
    assert untiled_val_warning(build_dataset(plain), shrunk) is None  # no tiled training


def test_training_start_warns_once_and_accepts_a_tiled_val(blobs, caplog, monkeypatch):
    """build_data (the trainer's data step): untiled validation of a tiled training is one WARNING line; a tiled
    data.val builds (its evaluator scores the source json) and says nothing."""
    from detkit.data.datasets.coco import CocoDataset
    from detkit.engine.parts import build_data

    plain = {"type": "CocoDataset", "ann_file": str(blobs / "val.json"), "img_dir": str(blobs / "img")}
    letterbox = [{"type": "LetterBox", "size": 64}]
    train = {"type": "TiledDataset", "tile_size": 64, "overlap": 0.2, "dataset": plain}
    cfg = {
        "seed": 0,
        "model": {"type": "OneStageDetector", "head": {"type": "YOLOHead"}},
        "data": {"batch_size": 2, "num_workers": 0, "train": train, "val": {**plain, "pipeline": letterbox}},
    }
    read, getitem = [], CocoDataset.__getitem__  # the samples built, to check data.val's first is built once
    monkeypatch.setattr(CocoDataset, "__getitem__", lambda self, i: read.append((self, i)) or getitem(self, i))
    with caplog.at_level(logging.WARNING, logger="detkit"):
        data = build_data(cfg)
    tiled = [r for r in caplog.records if "TiledDataset of 64x64 tiles" in r.getMessage()]
    assert len(tiled) == 1 and "--tile 64,64" in tiled[0].getMessage()
    assert [i for ds, i in read if ds is data.val_set] == [0]  # (check_val_sample's, measured by the warning)
    caplog.clear()
    cfg["data"]["val"] = tiled_split(cfg["data"]["val"], (64, 64), 0.2)
    with caplog.at_level(logging.WARNING, logger="detkit"):
        data = build_data(cfg)
    assert not [r for r in caplog.records if "tiles" in r.getMessage()]
    assert data.evaluator.coco_gt.dataset["images"][0]["width"] == 300  # whole images are the ground truth


def test_tiled_evaluation_counts_the_source_images_left_out(blobs, tmp_path):
    """A TiledDataset data.val whose source image went missing after it was built: evaluate's counts say so."""
    import shutil

    root = tmp_path / "blobs"
    shutil.copytree(blobs, root)
    plain = {"type": "CocoDataset", "ann_file": str(root / "val.json"), "img_dir": str(root / "img")}
    cfg = {"model": {}, "data": {"batch_size": 2, "num_workers": 0, "val": tiled_split(plain, TILE["size"], 0.25)}}
    val_set = build_dataset(cfg["data"]["val"])
    loader = build_dataloader(cfg, "val", dataset=val_set)
    (root / "img" / "2.png").unlink()
    counts: dict[str, int] = {}
    metrics = evaluate(BlobDetector(cfg), loader, build_evaluator(cfg, val_set), torch.device("cpu"), counts=counts)
    assert counts == {"skipped": 1} and metrics["bbox/AP"] > 0.9  # image 1 alone, scored alone
