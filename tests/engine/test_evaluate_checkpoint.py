"""evaluate_checkpoint: class names of the checkpoint against data.val's, weights against the config's model."""

from __future__ import annotations

import pytest
import torch

from detkit.engine.evaluate import evaluate_checkpoint
from detkit.evaluation.checks import CategoryMismatchWarning
from detkit.models import build_model
from detkit.utils.checkpoint import CheckpointMismatchError


def _save(path, cfg, class_names, drop=()):
    model = build_model(cfg, class_names=["toy0", "toy1"])
    state = {k: v for k, v in model.state_dict().items() if k not in drop}
    torch.save({"model": state, "meta": {"class_names": class_names}}, path)
    return path


def test_same_names_in_another_order_warn_before_evaluating(toy, tmp_path, recwarn):
    cfg = toy.toy_config()
    ckpt = _save(tmp_path / "swapped.pth", cfg, ["toy1", "toy0"])
    metrics, _ = evaluate_checkpoint(cfg, ckpt, device="cpu")
    assert "bbox/AP" in metrics
    (warning,) = [w for w in recwarn if issubclass(w.category, CategoryMismatchWarning)]
    text = str(warning.message)
    assert f"checkpoint {ckpt}" in text and "another order" in text and "label 0: toy1 vs toy0" in text
    recwarn.clear()
    evaluate_checkpoint(cfg, _save(tmp_path / "same.pth", cfg, ["toy0", "toy1"]), device="cpu")
    assert not [w for w in recwarn if issubclass(w.category, CategoryMismatchWarning)]


def test_other_class_count_or_weights_that_do_not_fit_are_errors(toy, tmp_path):
    cfg = toy.toy_config()
    with pytest.raises(CheckpointMismatchError, match=r"has 3 classes .* data.val \(ToyDataset\) has 2"):
        evaluate_checkpoint(cfg, _save(tmp_path / "three.pth", cfg, ["a", "b", "c"]), device="cpu")
    with pytest.raises(CheckpointMismatchError, match=r"does not fit the model: .* 1 missing \(head.weight\)"):
        evaluate_checkpoint(
            cfg, _save(tmp_path / "part.pth", cfg, ["toy0", "toy1"], drop={"head.weight"}), device="cpu"
        )


def test_weights_that_do_not_fit_raise_without_the_class_order_warning(toy, tmp_path, recwarn):
    cfg = toy.toy_config()
    ckpt = _save(tmp_path / "other.pth", cfg, ["toy1", "toy0"], drop={"head.weight"})
    with pytest.raises(CheckpointMismatchError, match="does not fit the model"):
        evaluate_checkpoint(cfg, ckpt, device="cpu")
    assert not [w for w in recwarn if issubclass(w.category, CategoryMismatchWarning)]


def test_the_backbone_start_weights_are_not_read_again(tmp_path):
    """eval of a run's checkpoint with its config.yaml: the init_checkpoint it trained from may have moved."""
    from detkit.config import load_config
    from detkit.data.synthetic import make_shapes

    make_shapes(tmp_path / "d", num_train=1, num_val=2, size=(64, 64), seed=0)
    small = "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}"
    sets = [small, "data.val.pipeline=[{type: LetterBox, size: 64}]", "model.num_classes=4"]
    sets += [f"data.val.ann_file={tmp_path / 'd/val.json'}", f"data.val.img_dir={tmp_path / 'd/val'}"]
    cfg = load_config("yolo_n_shapes", sets)
    names = ["circle", "rectangle", "triangle", "star"]
    ckpt = tmp_path / "best.pth"
    torch.save({"model": build_model(cfg, class_names=names).state_dict(), "meta": {"class_names": names}}, ckpt)
    cfg["model"]["backbone"]["init_checkpoint"] = str(tmp_path / "moved_away.pth")
    metrics, _ = evaluate_checkpoint(cfg, ckpt, device="cpu")
    assert "bbox/AP" in metrics and cfg["model"]["backbone"]["init_checkpoint"].endswith("moved_away.pth")
