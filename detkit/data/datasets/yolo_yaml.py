"""An Ultralytics ``data.yaml`` read by the rules of Ultralytics' ``check_det_dataset`` and ``get_img_files``.

What they accept is read the same way: ``names`` as a list or a mapping whose keys are indices (``0`` or
``'0'``), ``nc`` without ``names`` (classes ``class_0`` ..), ``validation:`` for ``val:``, a split entry
``../x`` that is not found retried as ``x``, a split given as a ``.txt`` list of image paths. Where detkit
differs: a relative ``path:`` is relative to the yaml's folder (Ultralytics: the current folder, then its
``datasets_dir``), so the dataset can move with its yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from detkit.data.converters.common import IMAGE_EXTS
from detkit.data.validate import WARNING, DatasetError, Problem

__all__ = ["SPLITS", "DataYaml", "ImageList", "listed_splits", "read_data_yaml", "read_image_list"]

SPLITS = ("train", "val", "test")
# the keys Ultralytics' data.yaml files hold (theirs, Roboflow's); another key close to one is taken as its misspelling
KNOWN_KEYS = (*SPLITS, "path", "names", "nc", "validation", "minival", "download", "kpt_shape", "flip_idx", "channels")
KNOWN_KEYS += ("roboflow", "yaml_file", "text_val")
KEY_TYPES = {"path": (str,), "train": (str, list), "val": (str, list), "test": (str, list), "names": (list, dict)}


class DataYaml(NamedTuple):
    """What a ``data.yaml`` says about one split: its ``sources`` (image folders or ``.txt`` lists of image
    paths), the class ``names``, ``notes`` (warnings, as :class:`Problem` records: how it was read) and the
    dataset ``root`` (``path:``)."""

    sources: list[Path]
    names: list[str]
    notes: list[Problem]
    root: Path


class ImageList(NamedTuple):
    """The images of a ``.txt`` list (as listed, in order, each once), and the problems of its lines."""

    images: list[Path]
    problems: list[Problem]


def listed_splits(data: Any) -> list[str]:
    """The splits a loaded ``data.yaml`` lists (``train``, ``val``, ``test``; ``validation:`` counts as ``val``)."""
    if not isinstance(data, dict):
        return []
    return [s for s in SPLITS if data.get(s) or (s == "val" and "val" not in data and data.get("validation"))]


def _int_like(value: Any) -> int | None:
    """``value`` as an int when it is one (``3``, ``3.0``, ``'3'``), else None (bools are not)."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def parse_names(names: Any, src: str) -> list[str]:
    """The class names of ``names:``: a list, or a mapping whose keys are the indices 0..C-1 (ints, or strings
    of ints such as ``'0'``, as Ultralytics' ``check_class_names`` reads them); each name is made a string."""
    if isinstance(names, dict):
        index = {k: _int_like(k) if isinstance(k, (int, str)) else None for k in names}
        keys = sorted(i for i in index.values() if i is not None)
        if None in index.values() or keys != list(range(len(names))):
            shown = sorted(names, key=lambda k: (_int_like(k) is None, _int_like(k) or 0, str(k)))[:10]
            raise DatasetError(
                f"{src}: the keys of 'names' must be the class indices 0..{len(names) - 1}, got {shown}; "
                "number the classes from 0"
            )
        names = [names[k] for k in sorted(names, key=lambda k: index[k])]
    scalar = (str, int, float, bool)
    if not isinstance(names, list) or not names or not all(isinstance(n, scalar) for n in names):
        raise DatasetError(
            f"{src}: 'names' must be a non-empty list of class names or a mapping {{0: name, ...}}, got {names!r}"
        )
    names = [str(n) for n in names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{src}: class names {dup} appear twice in 'names'; each class must appear once")
    return names


def _classes(data: dict, src: str, notes: list[Problem]) -> list[str]:
    """The class names from ``names`` and ``nc`` (``nc`` alone: ``class_0`` .., with a note)."""
    if data.get("names") is None and data.get("nc") is None:
        raise DatasetError(
            f"{src}: no 'names' (nor 'nc'): a data.yaml is a mapping with 'names' and the split folders (train, val); "
            "list the class names: names: [cat, dog] or {0: cat, ...}"
        )
    nc = None
    if data.get("nc") is not None:
        nc = _int_like(data["nc"])
        if nc is None or nc < 1:
            raise DatasetError(f"{src}: nc must be a positive integer (the number of classes), got {data['nc']!r}")
    if data.get("names") is None:
        notes.append(
            Problem(
                "data_yaml",
                f"{src}: no 'names': the {nc} classes (nc: {nc}) are named class_0 .. class_{nc - 1}, as Ultralytics "
                "names them; add names: [...] for readable class names",
                severity=WARNING,
            )
        )
        return [f"class_{i}" for i in range(nc)]
    names = parse_names(data["names"], src)
    if nc is not None and nc != len(names):
        raise DatasetError(f"{src}: nc is {data['nc']} but 'names' lists {len(names)} classes; make them agree")
    return names


def _load(src: str) -> dict:
    """The mapping of a data.yaml, its keys' types checked as Ultralytics checks them."""
    if not os.path.isfile(src):
        state = "is a folder, not a file" if os.path.isdir(src) else "not found"
        raise DatasetError(f"data_yaml {src} {state}; give the dataset's data.yaml (keys path, train, val, names)")
    try:
        with open(src, encoding="utf-8-sig") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DatasetError(f"{src}: not valid YAML ({e}); fix the file") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{src}: a data.yaml is a mapping with 'names' and the split folders (train, val)")
    for key, types in KEY_TYPES.items():
        if data.get(key) is not None and not isinstance(data[key], types):
            want = " or ".join("a string" if t is str else f"a {t.__name__}" for t in types)
            raise DatasetError(f"{src}: '{key}' must be {want}, got {type(data[key]).__name__} {data[key]!r}")
    return data


def misspelt_keys(data: dict) -> dict[str, str]:
    """The keys of a loaded data.yaml that are none of Ultralytics' but close to one (``pth`` -> ``path``,
    ``trian`` -> ``train``), each with that one; other unknown keys (a tool's own) are left alone, as Ultralytics
    leaves them."""
    import difflib

    out = {}
    for key in data:
        if isinstance(key, str) and key not in KNOWN_KEYS:
            unset = [k for k in KNOWN_KEYS if data.get(k) in (None, "", [])]  # (a key given twice is no typo)
            near = difflib.get_close_matches(key.lower(), unset, n=1, cutoff=0.6)
            if near:
                out[key] = near[0]
    return out


def _typo_notes(data: dict, src: str) -> tuple[list[Problem], str]:
    """A note per misspelt key (:func:`misspelt_keys`: it is ignored) and the same in a few words for the errors
    it may cause (``''`` without any)."""
    typos = misspelt_keys(data)
    said = ", ".join(f"'{k}:' (did you mean '{v}:'?)" for k, v in typos.items())
    notes = [
        Problem("data_yaml", f"{src}: unknown key '{k}:' is ignored; did you mean '{v}:'?", severity=WARNING)
        for k, v in typos.items()
    ]
    many = len(typos) > 1
    text = f"; {src} has the unknown key{'s' if many else ''} {said}, which {'are' if many else 'is'} ignored"
    return notes, text if typos else ""


def read_data_yaml(path: str | os.PathLike, split: str) -> DataYaml:
    """The image sources of ``split`` and the class names of an Ultralytics ``data.yaml``.

    ``path:`` (the dataset root) is relative to the yaml's folder, and is that folder when absent; each
    entry of the split (one or a list) is a folder or a ``.txt`` list of image paths relative to the root,
    and an entry ``../x`` that is not found is retried as ``x`` (Ultralytics' rule, for Roboflow exports).
    ``validation:`` stands for ``val:`` when there is no ``val:``. ``nc:``, when given, must equal the number
    of names; without ``names`` the classes are ``class_0`` .. ``class_{nc-1}`` (with a note).
    """
    src = os.fspath(path)
    data = _load(src)
    notes, typo = _typo_notes(data, src)
    try:
        names = _classes(data, src, notes)
    except DatasetError as e:
        raise DatasetError(f"{e}{typo}") from None
    key = split
    if split == "val" and "val" not in data and data.get("validation"):
        key = "validation"
        notes.append(Problem("data_yaml", f"{src}: 'validation:' read as the val split", severity=WARNING))
    if data.get(key) in (None, "", []):
        have = listed_splits(data)
        raise DatasetError(
            f"{src}: no '{split}' split (it has {', '.join(have) or 'none'}); set split: to one of them{typo}"
        )
    root = Path(src).parent / str(data.get("path") or ".")
    entries = data[key] if isinstance(data[key], list) else [data[key]]
    sources = [_source(src, split, root, data.get("path"), str(e), typo) for e in entries]
    return DataYaml(sources, names, notes, root)


def _source(src: str, split: str, root: Path, path_key: Any, entry: str, typo: str = "") -> Path:
    """The folder or ``.txt`` list that ``entry`` names, found as Ultralytics finds it; else a DatasetError that
    says how the path was resolved."""
    tried = [root / entry]
    if not tried[0].exists() and entry.startswith("../"):
        tried.append(root / entry[3:])
    shown = [os.path.normpath(p) for p in tried]  # in messages: r/../x/a as x/a
    found = next((p for p in tried if p.exists()), None)
    if found is not None and (found.is_dir() or (found.is_file() and found.suffix.lower() == ".txt")):
        return found
    if found is not None:
        raise DatasetError(
            f"{src}: {split}: {entry} ({found}) is a file but no .txt list of images; give the split's image "
            "folder, a .txt file listing its images, or a list of them"
        )
    if not path_key:
        how = f"without path: the root is the yaml's folder {os.path.normpath(root)}"
    elif os.path.isabs(str(path_key)):
        how = f"the root is path: {path_key}"
    else:
        how = (
            f"path: {path_key!r} is relative to the yaml's folder, so the root is {os.path.normpath(root)} (Ultralytics reads a "
            "relative path: from the current folder; detkit from the yaml's folder)"
        )
    retry = f", then {shown[1]} (an entry starting with ../ is also tried without it)" if len(tried) > 1 else ""
    raise DatasetError(
        f"{src}: {split}: {entry} not found: looked for {shown[0]}{retry}; {how}, "
        f"and the split's folders (or .txt lists) are relative to the root; fix path: or the entry{typo}"
    )


def read_image_list(txt: Path, root: Path) -> ImageList:
    """The images a ``.txt`` split lists, one path per line: a line ``./x`` is relative to the list's folder (as
    Ultralytics reads it), other relative lines to ``root`` (the yaml's ``path:``; Ultralytics takes the current
    folder), absolute ones as they are. Problems: a listed image not found (an error: the line is left out under ``on_error: skip``), a
    line that names no image file or repeats an earlier one (warnings: left out)."""
    try:
        lines = txt.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{txt}: cannot read the image list ({e}); it is UTF-8 text, one image path a line") from e
    images, problems, seen = [], [], {}
    for n, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        path = Path(os.path.abspath(txt.parent / entry[2:] if entry.startswith("./") else root / entry))
        where = f"{txt} line {n}: {entry}"
        if path.suffix.lower() not in IMAGE_EXTS:
            why = f"is no image file ({', '.join(IMAGE_EXTS)}); left out"
            problems.append(Problem("not_an_image", f"{where} {why}", severity=WARNING))
        elif path in seen:
            problems.append(Problem("listed_twice", f"{where} repeats line {seen[path]}; read once", severity=WARNING))
        elif not path.is_file():
            rule = f"a ./ line is relative to the list's folder {txt.parent}, another to path: {root}"
            problems.append(
                Problem(
                    "listed_missing",
                    f"{where}: image {path} not found ({rule}); fix or remove the line",
                    record="image",
                )
            )
        else:
            seen[path] = n
            images.append(path)
    return ImageList(images, problems)
