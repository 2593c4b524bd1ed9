"""What the data leaves out is said: a warning with the dataset's skipped counts at the start, and each
epoch's line counts the samples that came as None (on_error: skip, skip_bad_images)."""

from __future__ import annotations

from types import SimpleNamespace

from detkit_toy import ToyDataset

from detkit.data.validate import SkippedRecords
from detkit.engine import Trainer
from detkit.engine.summary import epoch_line, skipped_note
from detkit.registry import DATASETS


@DATASETS.register
class ToySkippingDataset(ToyDataset):
    """ToyDataset whose samples ``bad`` are None (a bad image left out), ``dropped`` records counted at build."""

    def __init__(self, bad: tuple = (), dropped: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.bad = set(bad)
        self.skipped = SkippedRecords()
        if dropped:
            self.skipped.add("annotation", "bad_bbox", dropped)

    def __getitem__(self, i: int):
        return None if i in self.bad else super().__getitem__(i)


def test_skipped_note_and_epoch_line():
    counts = SkippedRecords()
    counts.add("image", "missing_file", 2)
    counts.add("annotation", "bad_bbox")
    note = skipped_note({"data.train": SimpleNamespace(skipped=counts), "data.val": None})
    assert note.startswith("data.train left out 3 record(s) (annotation:bad_bbox 1, image:missing_file 2)")
    assert "data.val" not in note and "on_error" in note
    assert skipped_note({"data.train": SimpleNamespace(skipped=SkippedRecords()), "data.val": object()}) is None
    line = epoch_line(2, 5, {"loss": 1.0}, {}, None, {}, 3.0, skipped=4)
    assert "4 bad sample(s) skipped" in line
    assert "skipped" not in epoch_line(2, 5, {"loss": 1.0}, {}, None, {}, 3.0)


def test_training_reports_what_the_data_left_out(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=2)
    # 8 samples in batches of 2: three None samples per epoch, whatever the order (a batch may be all None)
    cfg["data"]["train"] = {"type": "ToySkippingDataset", "num_samples": 8, "bad": [0, 1, 5], "dropped": 2}
    Trainer(cfg, work_dir=tmp_path / "w", device="cpu").fit()
    log = (tmp_path / "w" / "log.txt").read_text().splitlines()
    warnings = [line.split(" WARNING ", 1)[1] for line in log if " WARNING " in line]
    assert warnings == [
        "data.train left out 2 record(s) (annotation:bad_bbox 2) (on_error: skip / skip_bad_images); "
        "detkit check --config CONFIG lists them"
    ]
    epochs = [line for line in log if " INFO epoch " in line and "/2  loss" in line]
    assert len(epochs) == 2 and all("3 bad sample(s) skipped" in e for e in epochs), epochs
