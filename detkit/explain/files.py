"""Explanations over image files for ``tools/explain.py``: overlays, heatmaps, and the pointing game.

Outputs under ``out_dir``, per image: ``<stem>.png`` (the heatmaps' maximum blended with the image, the
explained boxes and labels drawn) and ``<stem>.npy`` (float32 [K,H,W] in 0..1, one map per explained
detection, class or segment); ``explanations.json`` says per image which map is which (label, class name,
score, box). ``<stem>`` is the image's, suffixed ``_2``, ``_3``... when an earlier input (read or not) has it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from torch import nn

from detkit.data.categories import CategoryIndex
from detkit.utils.file_match import lookup, suffix_index

__all__ = ["GroundTruth", "explain_files", "format_summary", "output_files"]

SUMMARY_FILE = "explanations.json"


def output_files(out_dir: str | os.PathLike, paths: Sequence[Path]) -> list[Path]:
    """Every file :func:`explain_files` may write for ``paths``: ``explanations.json`` and per image (its name
    from :func:`detkit.utils.output_names.unique_stems`, in input order) ``<stem>.png`` and ``<stem>.npy``."""
    from detkit.utils.output_names import unique_stems

    out = Path(out_dir)
    return [out / SUMMARY_FILE] + [
        out / f"{s}{ext}" for s in unique_stems(p.stem for p in paths) for ext in (".png", ".npy")
    ]


def _replace_into(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file next to ``path`` (same suffix), then rename it to ``path``."""
    tmp = path.parent / f".{path.stem}.part{path.suffix}"
    write(tmp)
    os.replace(tmp, path)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        if not cv2.imwrite(os.fspath(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")

    _replace_into(path, write)


def _write_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    _replace_into(path, write)


class GroundTruth:
    """Ground-truth boxes of the input images from a COCO json (``--gt``), matched to inputs by the longest
    common path suffix of ``file_name`` and the input's path (``detkit.utils.file_match``).

    The json is checked as datasets check it (``detkit.data.validate``; its image files are not looked for:
    the images are the tool's inputs); a bad record is a ``DatasetError`` naming it. Labels are the indices of
    the categories sorted by id, as ``CocoDataset`` numbers them; crowd annotations are left out.
    """

    def __init__(self, ann_file: str | os.PathLike):
        from detkit.data.validate import DatasetError, format_problems, load_coco_json, problem_list, validate_coco

        self.ann_file = os.fspath(ann_file)
        data = load_coco_json(self.ann_file)
        errors = problem_list(validate_coco(data, Path(self.ann_file).parent, self.ann_file, check_files=False))
        if errors:
            raise DatasetError(f"{len(errors)} bad record(s) in --gt {self.ann_file}: {format_problems(errors, 2)}")
        cats = CategoryIndex(data["categories"])
        self.class_names = cats.names
        label = cats.cat_id_to_label
        self._index = suffix_index((im["file_name"], im["id"]) for im in data["images"])
        self.sizes = {im["id"]: (im.get("height"), im.get("width")) for im in data["images"]}
        self.objects: dict[int, list[tuple[list[float], int]]] = {im["id"]: [] for im in data["images"]}
        for a in data.get("annotations") or []:
            if not a.get("iscrowd", 0):
                x, y, w, h = (float(v) for v in a["bbox"])
                self.objects[a["image_id"]].append(([x, y, x + w, y + h], label[a["category_id"]]))

    def check_classes(self, class_names: Sequence[str]) -> None:
        """The model's classes must be the json's categories sorted by id: another count is a ``DatasetError``,
        other names a ``CategoryMismatchWarning``."""
        from detkit.data.validate import DatasetError
        from detkit.evaluation.checks import class_names_mismatch, warn_mismatch

        problem = class_names_mismatch(class_names, self.class_names, "the model", f"--gt {self.ann_file}")
        if problem and len(class_names) != len(self.class_names):
            raise DatasetError(problem)
        if problem:
            warn_mismatch(problem)

    def image_id(self, path: Path) -> int | None:
        """The id of the json's image whose ``file_name`` shares the longest path suffix with ``path``, or None."""
        return lookup(self._index, path)

    def size_differs(self, path: Path, hw: tuple[int, int]) -> bool:
        """Whether the json gives the image matched to ``path`` another (height, width) than ``hw``: another file
        of the same name (another split's)."""
        img_id = self.image_id(path)
        size = self.sizes.get(img_id) if img_id is not None else None
        return size is not None and None not in size and tuple(int(v) for v in size) != tuple(hw)

    def get(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """Boxes float32 [N,4] (xyxy, image pixels) and labels int64 [N] of the image ``path``, or None."""
        img_id = self.image_id(path)
        if img_id is None:
            return None
        objects = self.objects[img_id]
        boxes = np.array([b for b, _ in objects], np.float32).reshape(-1, 4)
        return boxes, np.array([c for _, c in objects], np.int64)


def _records(result: dict, class_names: Sequence[str]) -> list[dict]:
    """What each map of ``result`` explains: label, class name, and for detections score and box."""
    out = []
    for k, label in enumerate(result["heatmap_labels"].tolist()):
        rec = {"map": k, "label": label, "class_name": class_names[label] if label < len(class_names) else str(label)}
        if "heatmap_dets" in result:
            det = int(result["heatmap_dets"][k])
            rec.update(detection=det, score=float(result["scores"][det]), box=[float(v) for v in result["boxes"][det]])
        if "target_iou" in result:
            rec["iou"] = result["target_iou"]  # with the box asked for (--box)
        out.append(rec)
    return out


def explain_files(
    model: nn.Module,
    paths: Sequence[Path],
    out_dir: str | os.PathLike,
    method: str = "eigencam",
    target_layer: str | None = None,
    score_thr: float | None = None,
    max_dets: int = 10,
    gt: GroundTruth | None = None,
    seed: int = 0,
    progress: bool = True,
    target_class: int | str | None = None,
    target_box: Sequence[float] | None = None,
) -> dict:
    """Explain each image of ``paths`` (see the module docstring); with ``gt``, play the pointing game with
    ``model`` and with a copy of it whose weights are re-initialised (``seed``). ``target_class`` and
    ``target_box`` choose what is explained, as in ``detkit.explain``; a box that overlaps no detection of an
    image is a ``NoOverlapError`` naming the image (the outputs of the images before it are listed in
    ``explanations.json``).

    Returns a summary: ``images``, ``skipped`` (``(path, reason)``), ``heatmaps``, ``layer``, ``method``,
    ``out_dir``, ``score_thr`` (the detections' threshold used) and ``score_thr_given``, ``target_class``,
    ``target_box``, ``picks`` (per image, the detection the box picked and its IoU), and with ``gt``: ``pointing``
    = ``{"trained": [hits, total], "random": [hits, total], "images": n, "missing": inputs not in the json,
    "other_size": inputs whose size differs from the json's image of their name, left out}``.
    """
    out = Path(out_dir)
    created = _new_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    choice = {"target_class": target_class, "target_box": target_box}
    try:
        return _explain_all(model, paths, out, method, target_layer, score_thr, max_dets, gt, seed, progress, choice)
    except BaseException:
        _remove_if_empty(created)  # a bad --target-layer, say: leave no empty folder behind
        raise


def _new_folders(out: Path) -> list[Path]:
    """The folders that ``out.mkdir(parents=True)`` will create, deepest first."""
    new = []
    for folder in (out, *out.parents):
        if folder.exists():
            break
        new.append(folder)
    return new


def _remove_if_empty(folders: Sequence[Path]) -> None:
    for folder in folders:  # deepest first: a parent is empty once its new child is gone
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or gone): keep it and the folders above it


def _start_summary(model: nn.Module, out: Path, method: str, score_thr: float | None, max_dets: int, choice: dict):
    """The summary of :func:`explain_files` before any image: what is explained, at which threshold."""
    from detkit.explain.adapters import adapter_for
    from detkit.explain.choice import class_index, config_score_thr

    kind = adapter_for(model).kind
    label = choice["target_class"]
    summary: dict = dict(images=0, skipped=[], heatmaps=0, layer=None, method=method, out_dir=out, max_dets=max_dets)
    summary.update(kind=kind, picks=[], target_box=choice["target_box"], score_thr_given=score_thr is not None)
    summary["score_thr"] = (
        (score_thr if score_thr is not None else config_score_thr(model)) if kind == "detector" else None
    )
    summary["target_class"] = None if label is None else model.class_names[class_index(label, model.class_names)]
    return summary


def _pick_line(path: Path, result: dict, names: Sequence[str], box: Sequence[float]) -> str:
    """Which detection ``--box`` picked in the image ``path``, with its class, score, box and IoU."""
    from detkit.explain.choice import box_text

    det = int(result["heatmap_dets"][0])
    label = int(result["labels"][det])
    name = names[label] if label < len(names) else str(label)
    return (
        f"{path}: --box {box_text(box)} -> detection {det} ('{name}', score {float(result['scores'][det]):.3g}, box "
        f"{box_text([round(float(v), 1) for v in result['boxes'][det]])}), IoU {result['target_iou']:.3f}"
    )


def _play_pointing(pointing: dict, models: dict, gt: GroundTruth, path: Path, image, result: dict, method) -> None:
    """Add the image ``path`` to the pointing game's counts (or to its images left out)."""
    from detkit.explain import pointing_hits

    truth = gt.get(path)
    if truth is None:
        pointing["missing"] += 1
    elif gt.size_differs(path, image.shape[:2]):
        pointing["other_size"] += 1  # another file of that name: its boxes would be another image's
    else:
        pointing["images"] += 1
        for key, m in models.items():
            hits = pointing_hits(m, image, *truth, method=method, target_layer=result["target_layer"])
            pointing[key][0] += int(hits.sum())
            pointing[key][1] += len(hits)


def _explain_all(model, paths, out, method, target_layer, score_thr, max_dets, gt, seed, progress, choice) -> dict:  # noqa: PLR0913
    """:func:`explain_files` into the existing folder ``out``."""
    from tqdm import tqdm

    from detkit.data.image_io import ImageReadError, read_image
    from detkit.explain import draw_explanation, explain, randomized_copy
    from detkit.explain.choice import NoOverlapError
    from detkit.utils.output_names import unique_stems

    names = list(model.class_names)
    summary = _start_summary(model, out, method, score_thr, max_dets, choice)
    models = {"trained": model, "random": randomized_copy(model, seed)} if gt is not None else {}
    pointing = {"trained": [0, 0], "random": [0, 0], "images": 0, "missing": 0, "other_size": 0}
    records: list[dict] = []
    finished = False
    bar = tqdm(total=len(paths), desc="explain", unit="img", disable=None if progress else True)
    try:
        for path, stem in zip(paths, unique_stems(p.stem for p in paths)):  # names as output_files gives them
            bar.update(1)
            try:
                image = read_image(path)
            except ImageReadError as e:
                summary["skipped"].append((str(path), str(e)))
                bar.write(f"skipped unreadable input {path}: {e}", file=sys.stderr)
                continue
            try:
                result = explain(model, image, method, target_layer, score_thr, max_dets, **choice)
            except NoOverlapError as e:
                raise NoOverlapError(f"{path}: {e}") from None
            _write_npy(out / f"{stem}.npy", result["heatmaps"].numpy())
            _write_png(out / f"{stem}.png", draw_explanation(image, result, names))
            records.append(dict(file=str(path), png=f"{stem}.png", npy=f"{stem}.npy", maps=_records(result, names)))
            summary["images"] += 1
            summary["heatmaps"] += len(result["heatmaps"])
            summary["layer"] = result["target_layer"]
            if "target_iou" in result:
                summary["picks"].append(_pick_line(path, result, names, choice["target_box"]))
            if gt is not None:
                _play_pointing(pointing, models, gt, path, image, result, method)
        finished = True
    finally:
        bar.close()
        if finished or records:  # a run stopped midway lists what it wrote, and keeps the earlier run's records
            meta = dict(method=method, target_layer=summary["layer"], images=records + _earlier(out, records, finished))
            _replace_into(out / SUMMARY_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    if gt is not None:
        summary["pointing"] = pointing
    return summary


def _earlier(out: Path, records: list[dict], finished: bool) -> list[dict]:
    """The records of the earlier ``explanations.json`` whose files this run did not write (none once finished):
    a run stopped midway leaves them there, still explain's own."""
    if finished:
        return []
    try:
        earlier = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8")).get("images", [])
    except (OSError, ValueError, AttributeError):
        return []
    written = {r["png"] for r in records}
    return [r for r in earlier if isinstance(r, dict) and r.get("png") not in written]


def _share(pair: Sequence[int]) -> str:
    hits, total = pair
    return f"{hits / total:.3f} ({hits}/{total})" if total else "n/a (no objects)"


def _explained(summary: dict) -> str:
    """What each image's maps explain: the top classes, a chosen class, the detections above which threshold."""
    from detkit.explain.choice import box_text, threshold_text

    k, name = summary["max_dets"], summary.get("target_class")
    if summary.get("kind") == "classifier":
        return f"class '{name}'" if name is not None else f"at most {k} per image, the top classes"
    if summary.get("kind") == "segmentor":
        return (
            f"class '{name}' where present"
            if name is not None
            else f"at most {k} per image, the largest classes present"
        )
    of_class = "" if name is None else f" of class '{name}'"
    thr = threshold_text(summary.get("score_thr"), bool(summary.get("score_thr_given")), "--score-thr")
    if summary.get("target_box") is not None:
        return f"per image the detection{of_class} scoring > {thr} of highest IoU with --box {box_text(summary['target_box'])}"
    return f"at most {k} per image, detections{of_class} scoring > {thr}"


def format_summary(summary: dict, seed: int = 0) -> str:
    """What was explained and skipped, how many maps, at which layer and where; the detection each --box picked;
    the pointing game's line."""
    n = summary["images"]
    which = _explained(summary)
    text = (
        f"{n} image{'s' if n != 1 else ''} explained, {len(summary['skipped'])} unreadable skipped, "
        f"{summary['heatmaps']} heatmaps ({summary['method']} at layer {summary['layer']}; {which}) "
        f"-> {summary['out_dir']}"
    )
    if summary["skipped"]:
        text += f" (skipped: {', '.join(s[0] for s in summary['skipped'])})"
    for line in summary.get("picks", []):
        text += f"\n{line}"
    p = summary.get("pointing")
    if p is not None:
        text += (
            f"\npointing game ({summary['method']} at layer {summary['layer']}, {p['trained'][1]} ground-truth objects "
            f"in {p['images']} images): trained {_share(p['trained'])}, randomised weights (seed {seed}) "
            f"{_share(p['random'])}"
        )
        if p["missing"]:
            text += f"; {p['missing']} input image(s) not in --gt"
        if p.get("other_size"):
            text += (
                f"; {p['other_size']} input image(s) left out: their size differs from the --gt image of their "
                "name (images of another split?)"
            )
    return text
