"""detkit.utils.checkpoint: every file that is not a checkpoint is named as what it is, with the fix."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from detkit.utils.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    file_kind,
    load_checkpoint,
    load_model_state,
    read_meta,
)


class Unsafe:
    """A class a weights-only load refuses (it would have to run code to rebuild it)."""


@pytest.fixture
def files(tmp_path):
    good = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "meta": {"class_names": ["a", "b"], "epoch": 3}}
    torch.save(good, tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    torch.save(good, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pth")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"x": 1}}, tmp_path / "mmdet.pth")
    torch.save({"model": {"w": torch.zeros(1)}, "obj": Unsafe()}, tmp_path / "objects.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    (tmp_path / "pickle.pth").write_bytes(pickle.dumps({"w": np.zeros(2)}, protocol=4))
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pth").write_text("hello\n")
    (tmp_path / "config.pth").write_text("_base_: [a.yaml]\nmodel:\n  num_classes: 3\n")
    (tmp_path / "preds.pth").write_text('[{"image_id": 1}]')
    (tmp_path / "random.pth").write_bytes(bytes(range(7, 256)) * 8)
    (tmp_path / "image.pth").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("a/readme.txt", "not a checkpoint")
    (tmp_path / "folder").mkdir()
    torch.save(good, tmp_path / "folder" / "best.pth")
    return tmp_path


@pytest.mark.parametrize(
    "name,kind",
    [
        ("good.pth", "torch-zip"),
        ("legacy.pth", "pickle"),
        ("pickle.pth", "python-pickle"),
        ("empty.pth", "empty"),
        ("truncated.pth", "truncated-zip"),
        ("text.pth", "text"),
        ("config.pth", "yaml"),
        ("preds.pth", "json"),
        ("random.pth", "binary"),
        ("image.pth", "image"),
        ("other.zip", "zip"),
        ("folder", "folder"),
        ("missing.pth", "missing"),
    ],
)
def test_file_kind(files, name, kind):
    assert file_kind(files / name) == kind


@pytest.mark.parametrize(
    "name,message",
    [
        ("empty.pth", "is empty (0 bytes)"),
        ("truncated.pth", "truncated or corrupt"),
        ("text.pth", "is a text file"),
        ("config.pth", "YAML file (a config?), not a checkpoint; did you swap the arguments"),
        ("preds.pth", "is a JSON file"),
        ("random.pth", "unknown binary content"),
        ("image.pth", "is an image"),
        ("other.zip", "zip archive but not a PyTorch checkpoint"),
        ("pickle.pth", "plain Python pickle"),
        ("objects.pth", "holds Python objects, not only tensors (Unsupported global"),
        ("list.pth", "holds a list, not a model state dict"),
        ("folder", "is a folder; give a .pth file in it"),
    ],
)
def test_not_a_checkpoint_is_named(files, name, message):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(files / name)
    text = str(err.value)
    assert message in text and str(files / name) in text and "\n" not in text


def test_missing_is_also_a_file_not_found_error(files):
    with pytest.raises(FileNotFoundError, match="checkpoint not found") as err:
        load_checkpoint(files / "missing.pth")
    assert isinstance(err.value, CheckpointNotFoundError) and isinstance(err.value, CheckpointError)


def test_checkpoints_in_every_layout(files):
    good = load_checkpoint(files / "good.pth")
    assert torch.equal(good["model"]["w"], torch.arange(6.0).reshape(2, 3)) and good["meta"]["epoch"] == 3
    assert torch.equal(load_checkpoint(files / "legacy.pth")["model"]["w"], good["model"]["w"])
    assert load_checkpoint(files / "bare.pth")["meta"] == {}
    mmdet = load_checkpoint(files / "mmdet.pth")
    assert set(mmdet["model"]) == {"w"} and mmdet["meta"] == {"x": 1}
    assert read_meta(files / "good.pth") == {"class_names": ["a", "b"], "epoch": 3}
    with pytest.raises(CheckpointError, match=r"folder; give a .pth file in it.*\(it holds best\.pth\)"):
        load_checkpoint(files / "folder")


def test_load_model_state_names_what_does_not_fit():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    other = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5))
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_state(other, state, "run/best.pth", hint="use the config it was trained with")
    text = str(err.value)
    assert "run/best.pth does not fit the model: 2 of 4 tensors fit" in text
    assert "1.weight: checkpoint [2, 3], model [5, 3]" in text and text.endswith("use the config it was trained with")
    del state["0.bias"]
    state["extra"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r"1 missing \(0\.bias\).*1 unexpected \(extra\)"):
        load_model_state(model, state, "x.pth")
    state = dict(model.state_dict())
    load_model_state(other[:1], {k: v for k, v in state.items() if k.startswith("0.")}, "x.pth")  # a full fit loads
    assert torch.equal(other[0].weight, model[0].weight)
