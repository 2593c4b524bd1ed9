"""tools/eval_tiling.py: box recall of a detector's tiled inference; another kind of model is one line, exit 2."""

import torch

import detkit
from detkit.cli.eval_tiling import main
from detkit.config import load_config


def test_a_segmentor_is_refused_with_what_to_use(tmp_path, capsys):
    cfg = load_config("semfpn_r18_shapes", ["model.num_classes=3"])
    names = ["background", "a", "b"]
    ckpt = tmp_path / "seg.pth"
    torch.save({"model": detkit.build_model(cfg).state_dict(), "meta": {"config": cfg, "class_names": names}}, ckpt)
    assert main(["-", str(ckpt), "--size", "256,256", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "eval-tiling measures box recall of a detector" in err and "holds a Segmentor" in err and "\n" not in err


def test_a_classifier_is_refused_without_pointing_to_tiled_inference(tmp_path, capsys):
    """infer --tile refuses a classifier: eval-tiling must not send the user there."""
    cfg = load_config("resnet18_shapes")
    names = ["a", "b"]
    ckpt = tmp_path / "cls.pth"
    model = detkit.build_model(cfg, class_names=names)
    torch.save({"model": model.state_dict(), "meta": {"config": cfg, "class_names": names}}, ckpt)
    assert main(["-", str(ckpt), "--size", "256,256", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a Classifier" in err and "tiling is for detectors" in err and "\n" not in err, err
    assert "infer --tile" not in err, err
