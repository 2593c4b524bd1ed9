"""The class names a converted checkpoint stores: from ``--class-names`` (a text file, an Ultralytics data.yaml,
a COCO json) or from the weights file itself (Ultralytics' ``model.names`` saved beside the state dict)."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from detkit.data.validate import DatasetError
from detkit.weights.common import ConversionError

FORMS = (
    "a text file with one name per line, an Ultralytics data.yaml (its names:) or a COCO json (its categories, "
    "in id order)"
)


def names_of(value: Any, where: str) -> list[str]:
    """``value`` as class names: a list of names, or Ultralytics' ``{0: name, 1: ...}`` (keys 0..C-1, as ints or
    quoted), read as a data.yaml's ``names:`` is (:func:`detkit.data.datasets.yolo_yaml.parse_names`); names
    are stripped and may not be empty."""
    from detkit.data.datasets.yolo_yaml import parse_names

    try:
        names = [n.strip() for n in parse_names(list(value) if isinstance(value, tuple) else value, where)]
    except DatasetError as e:
        raise ConversionError(str(e)) from e
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or "" in names:
        what = f"the names {dup[:5]} appear twice" if dup else "a name is empty"
        raise ConversionError(f"{where}: {what}; give each class one name of its own")
    return names


def _text_names(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise ConversionError(f"--class-names {path} is not a text file ({e.reason}); give {FORMS}") from e


def _yaml_names(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConversionError(f"--class-names {path}: not valid YAML ({' '.join(str(e).split())[:120]})") from e
    if not isinstance(data, dict) or "names" not in data:
        raise ConversionError(f"--class-names {path}: a YAML file must be an Ultralytics data.yaml with names:")
    return names_of(data["names"], f"--class-names {path}")


def _json_names(path: str) -> list[str]:
    from detkit.data.categories import CategoryIndex

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"--class-names {path}: not valid JSON ({e})") from e
    where = f"--class-names {path}"
    if isinstance(data, list):
        return names_of(data, where)
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not all(isinstance(c, dict) and "id" in c and "name" in c for c in cats):
        raise ConversionError(f"{where}: a json must be a COCO annotation file whose categories have id and name")
    try:
        return names_of(CategoryIndex(cats).names, where)
    except TypeError as e:  # ids that do not compare
        raise ConversionError(f"{where}: the category ids do not sort ({e}); give numbers") from e


def read_class_names(path: str | os.PathLike) -> list[str]:
    """The class names in ``path``: ``.yaml``/``.yml`` a data.yaml's ``names``, ``.json`` a COCO json's categories
    sorted by id (detkit's label order), anything else one name per line (blank lines skipped)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        state = "is a folder" if os.path.isdir(path) else "not found"
        raise ConversionError(f"--class-names {path} {state}; give {FORMS}")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".yaml", ".yml"):
        return _yaml_names(path)
    if ext == ".json":
        return _json_names(path)
    names = _text_names(path)
    if not names:
        raise ConversionError(f"--class-names {path} is empty; write one class name per line")
    return names_of(names, f"--class-names {path}")


def check_count(names: list[str], num_classes: int | None, where: str, weights: str) -> list[str]:
    """``names`` when they are one per class of the weights; else a ConversionError naming both counts."""
    if num_classes is None:
        raise ConversionError(f"{where}: the {weights} have no detection classes to name; leave the names out")
    if len(names) != num_classes:
        raise ConversionError(
            f"{where} lists {len(names)} class names but the {weights} have {num_classes} classes; give one "
            "name per class, in the order of the model's outputs"
        )
    return names
