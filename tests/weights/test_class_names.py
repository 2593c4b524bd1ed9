"""detkit.weights.class_names: the class names a converted checkpoint stores (convert-weights --class-names)."""

import json

import pytest

from detkit.weights.class_names import check_count, names_of, read_class_names
from detkit.weights.common import ConversionError


def test_text_file_one_name_per_line(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\n\n dog \nhot dog\n", encoding="utf-8")
    assert read_class_names(path) == ["cat", "dog", "hot dog"]  # blank lines skipped, spaces kept inside


@pytest.mark.parametrize("names", [["cat", "dog", "bird"], {0: "cat", 1: "dog", 2: "bird"}], ids=["list", "map"])
def test_data_yaml_names(tmp_path, names):
    import yaml

    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"path": ".", "train": "images/train", "names": names}), encoding="utf-8")
    assert read_class_names(path) == ["cat", "dog", "bird"]


def test_coco_json_categories_in_id_order(tmp_path):
    path = tmp_path / "instances.json"
    cats = [{"id": 7, "name": "dog"}, {"id": 2, "name": "cat"}, {"id": 11, "name": "bird"}]
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}), encoding="utf-8")
    assert read_class_names(path) == ["cat", "dog", "bird"]  # detkit's label order: sorted by category id


BAD = {
    "missing": (None, "not found"),
    "empty": ("\n\n", "is empty"),
    "twice": ("cat\ndog\ncat\n", "appear twice"),
    "binary": (b"\x80\x81\xfe\xff" * 8, "not a text file"),
    "yaml-without-names": ("model: {type: YOLO}\n", "data.yaml with names:"),
    "yaml-keys": ("names: {1: cat, 2: dog}\n", "class indices 0..1"),
    "json-not-coco": ('{"images": []}', "categories have id and name"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_class_names_files_name_the_file_and_fix(tmp_path, kind):
    content, said = BAD[kind]
    ext = {"yaml-without-names": ".yaml", "yaml-keys": ".yaml", "json-not-coco": ".json"}.get(kind, ".txt")
    path = tmp_path / f"names{ext}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConversionError, match=said) as info:
        read_class_names(path)
    assert f"--class-names {path}" in str(info.value)


def test_names_of_and_count():
    assert names_of({1: "dog", 0: "cat"}, "x") == ["cat", "dog"]  # Ultralytics' model.names
    with pytest.raises(ConversionError, match="lists 2 class names but the weights have 3 classes"):
        check_count(["cat", "dog"], 3, "--class-names a.txt", "weights")
    with pytest.raises(ConversionError, match="no detection classes"):
        check_count(["cat"], None, "--class-names a.txt", "torchvision resnet18 weights")


def test_torchvision_fine_tuned_head_takes_class_names(tmp_path, capsys):
    import torch
    from torchvision.models import resnet18
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    from detkit.cli.convert_weights import main

    torch.manual_seed(0)
    src, dst = tmp_path / "tv4.pth", tmp_path / "out.pth"
    torch.save(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4).state_dict(), src)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird\n", encoding="utf-8")  # 4 outputs: background + 3 classes
    assert main(["--from", "torchvision", str(src), str(dst), "--class-names", str(names)]) == 0
    assert "3 classes: cat, dog, bird" in capsys.readouterr().out
    assert torch.load(dst, weights_only=True)["meta"]["class_names"] == ["cat", "dog", "bird"]
    r18 = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), r18)
    assert main(["--from", "torchvision", str(r18), str(tmp_path / "r.pth"), "--class-names", str(names)]) == 2
    assert "torchvision resnet18 weights have no detection classes" in capsys.readouterr().err
