"""TimmBackbone: optional timm feature extractor; weights only from local files."""

import sys

import pytest
import torch

from detkit.models.backbones.timm import TimmBackbone


def test_missing_timm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(ImportError, match=r"pip install detkit\[timm\]"):
        TimmBackbone("resnet18")


def test_features_channels_and_strides():
    pytest.importorskip("timm")
    model = TimmBackbone("resnet18", out_indices=(1, 2, 3, 4)).eval()
    assert model.out_channels == [64, 128, 256, 512] and model.strides == [4, 8, 16, 32]
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]


def test_local_checkpoint_and_no_downloads(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    full = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(full.state_dict(), path)
    model = TimmBackbone("resnet18", pretrained=True, checkpoint_path=str(path), out_indices=(2, 3))
    assert torch.equal(model.body.layer3[0].conv1.weight, full.layer3[0].conv1.weight)
    assert model.strides == [8, 16]
    with pytest.raises(ValueError, match="needs checkpoint_path"):
        TimmBackbone("resnet18", pretrained=True)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        TimmBackbone("resnet18", checkpoint_path=str(tmp_path / "nope.pth"))


def test_checkpoint_path_that_is_no_weights_file_names_the_key(tmp_path):
    pytest.importorskip("timm")
    from detkit.utils.checkpoint import CheckpointError

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.backbone\.checkpoint_path .*empty\.pth is empty"):
        TimmBackbone("resnet18", checkpoint_path=str(empty))


def test_safetensors_checkpoint_is_read_by_timm(tmp_path):
    timm = pytest.importorskip("timm")
    save_file = pytest.importorskip("safetensors.torch").save_file
    torch.manual_seed(0)
    full = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file(full.state_dict(), str(path))
    model = TimmBackbone("resnet18", pretrained=True, checkpoint_path=str(path), out_indices=(3,))
    assert torch.equal(model.body.layer3[0].conv1.weight, full.layer3[0].conv1.weight)


def test_unknown_model_name_is_a_value_error_naming_the_key_and_nearest_models():
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"model\.backbone\.model_name: unknown timm model 'resnt34'.*resnet34"):
        TimmBackbone("resnt34")
    with pytest.raises(ValueError, match="no timm model has a similar name"):
        TimmBackbone("zzqqxxvv")


def test_out_indices_out_of_range_is_a_value_error_giving_the_valid_range():
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"model\.backbone\.out_indices .*\[5, 6\].*5 feature levels .*0 to 4"):
        TimmBackbone("resnet18", out_indices=[1, 2, 3, 4, 5, 6])
    assert TimmBackbone("resnet18", out_indices=[-1]).strides == [32]  # negative indices stay valid
