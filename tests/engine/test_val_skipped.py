"""The evaluation counts its own skipped data.val images (deleted during the run, skip_bad_images): in the epoch
line, the evaluation table of log.txt and metrics.jsonl; data.train's count stays its own."""

from __future__ import annotations

import json

import pytest

from detkit.engine import Trainer
from detkit.engine.summary import epoch_line, metrics_table


@pytest.fixture
def real_data(tmp_path):
    """4 train and 3 val shapes images, each with objects, in a folder of the test's own (images get deleted)."""
    from detkit.data.synthetic import make_shapes

    root = tmp_path / "shapes"
    make_shapes(root, num_train=4, num_val=3, size=(64, 64), max_objects=2, empty_fraction=0.0, seed=2)
    return root


def _config(root) -> dict:
    split = {
        s: {"type": "CocoDataset", "ann_file": str(root / f"{s}.json"), "img_dir": str(root / s)}
        for s in ("train", "val")
    }
    return {
        "model": {"type": "ToyDetector", "num_classes": None},
        "data": {"batch_size": 2, "num_workers": 0, **split},
        "train": {"max_epochs": 2, "log_interval": 2},
        "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "base_batch_size": 2},
        "scheduler": {"type": "multistep", "milestones": [1], "warmup_iters": 2},
    }


def test_val_images_deleted_during_the_run_are_counted_by_the_evaluation(real_data, tmp_path):
    import detkit_toy  # noqa: F401  (registers ToyDetector)

    trainer = Trainer(_config(real_data), work_dir=tmp_path / "w", device="cpu")
    val = json.loads((real_data / "val.json").read_text())["images"]
    # val batches of 2 in order: [0, 1] loses one image, [2] is left out whole (a None batch)
    for image in val[1:]:
        (real_data / "val" / image["file_name"]).unlink()
    trainer.fit()
    log = (tmp_path / "w" / "log.txt").read_text().splitlines()
    epochs = [line for line in log if " INFO epoch " in line and "/2  loss" in line]
    assert len(epochs) == 2 and all("2 val sample(s) skipped" in e for e in epochs), epochs
    assert not any("bad sample(s) skipped" in e for e in epochs)  # data.train lost nothing
    assert sum("(2 data.val sample(s) skipped: not scored)" in line for line in log) == 2
    rows = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in rows] == [{"data.val": 2}, {"data.val": 2}]
    assert trainer.best["metric"] == "bbox/AP"  # the count is no metric
    cfg = _config(real_data)
    cfg["data"]["val"]["on_error"] = "skip"  # (built now, without the deleted images)
    again = Trainer(cfg, work_dir=tmp_path / "w", device="cpu", resume=True).fit()  # nothing to do
    assert "bbox/AP" in again and "skipped" not in again  # the last row's metrics, without its count


def test_a_full_val_adds_no_skipped_key(toy, tmp_path):
    Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "w", device="cpu").fit()
    row = json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[0])
    assert "skipped" not in row


def test_epoch_line_and_table_show_the_val_count_apart():
    line = epoch_line(2, 5, {"loss": 1.0}, {"bbox/AP": 0.5}, "bbox/AP", {}, 3.0, skipped=4, val_skipped=1)
    assert "4 bad sample(s) skipped" in line and "bbox/AP 0.5000  1 val sample(s) skipped" in line
    assert "val sample" not in epoch_line(2, 5, {"loss": 1.0}, {"bbox/AP": 0.5}, "bbox/AP", {}, 3.0)
    assert metrics_table(2, {"bbox/AP": 0.5}, skipped=3).endswith("\n  (3 data.val sample(s) skipped: not scored)")
    assert "skipped" not in metrics_table(2, {"bbox/AP": 0.5})
