"""Reading a COCO annotation file: a json object with images, annotations and categories, or a DatasetError that
names the file and the fix (a folder given as the file, a path that does not exist, invalid JSON)."""

from __future__ import annotations

import json
import os

from detkit.data.problems import DatasetError

__all__ = ["load_coco_json", "where_read"]


def _folder_hint(path: str) -> str:
    try:
        jsons = sorted(f for f in os.listdir(path) if f.endswith(".json"))[:3]
    except OSError:
        jsons = []
    return f" (it holds {', '.join(jsons)})" if jsons else ""


def where_read(path: str | os.PathLike) -> str:
    """For a path that does not exist: where a relative one was looked for (the current folder, not the
    config's), and how to make the shapes data when it is the packaged configs' ``data/shapes``."""
    path = os.fspath(path)
    if os.path.isabs(path):
        return ""
    hint = f" (a relative path is read from the current folder, {os.getcwd()})"
    posix = path.replace("\\", "/")
    if posix == "data/shapes_cls" or posix.startswith("data/shapes_cls/"):
        hint += "; the packaged configs' shapes data is made with: detkit make-shapes data/shapes_cls --task classify"
    elif posix == "data/shapes" or posix.startswith("data/shapes/"):
        hint += "; the packaged configs' shapes data is made with: detkit make-shapes data/shapes"
    return hint


def load_coco_json(ann_file: str | os.PathLike) -> dict:
    """Read a COCO json file into a dict; raise :class:`DatasetError` naming the file when it can't."""
    ann_file = os.fspath(ann_file)
    if os.path.isdir(ann_file):
        raise DatasetError(
            f"annotation file {ann_file} is a folder{_folder_hint(ann_file)}, not a COCO json file; "
            f"give the json file as ann_file (and the image folder as img_dir)"
        )
    if not os.path.isfile(ann_file):
        raise DatasetError(f"annotation file {ann_file} not found{where_read(ann_file)}; check the ann_file path")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"{ann_file}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            f"fix or regenerate the annotation file"
        ) from e
    except (UnicodeDecodeError, OSError) as e:
        raise DatasetError(
            f"{ann_file}: cannot read the annotation file ({e}); it must be UTF-8 JSON in COCO format"
        ) from e
    if not isinstance(data, dict):
        raise DatasetError(
            f"{ann_file}: a COCO annotation file is a JSON object with 'images', "
            f"'annotations' and 'categories', got a {type(data).__name__}"
        )
    return data


def list_of(data: dict, key: str) -> list:
    """``data[key]`` when it is a list, else an empty list (a malformed file's checks report the key)."""
    val = data.get(key)
    return val if isinstance(val, list) else []


def is_int(v: object) -> bool:
    """Whether ``v`` is an int id (``True`` is not)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_key(v: object) -> bool:
    """Whether ``v`` can be looked up as an id (a scalar; a list or dict id can't)."""
    return isinstance(v, (str, int, float))
