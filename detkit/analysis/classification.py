"""Analysis of a classifier's predictions (``predictions.csv`` of ``tools/infer.py``) against class folders.

The ground truth is a classification dataset (``ImageFolderDataset``: ``IMG_DIR/<class>/...`` or a CSV of
``file,label`` rows); each prediction row is matched to its image by the file path's last components. The
metrics, per-class table and confusion matrix are ``ClsEvaluator``'s (docs/classification.md): top-1 from
``label_1``, top-5 from the first five labels (when the CSV has at least ``min(5, C)`` of them). Outputs:
``per_class.csv``, ``confusion_matrix.csv`` / ``.png``, ``confused_pairs.csv``, ``per_image.csv`` (every image,
wrong ones first, most confident first), ``worst/`` drawings of the most confident mistakes, ``summary.json``;
the outputs an earlier run recorded in that folder (``.analyze_outputs.json``) are removed first, and a file of
the user's with an output's name is refused (``ForeignOutputError``), before anything is written.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detkit.analysis.figures import write_csv
from detkit.analysis.outputs import recorded_run
from detkit.evaluation.checks import CategoryMismatchWarning
from detkit.utils.files import atomic_write

__all__ = ["ClassPrediction", "analyze_classification", "confused_pairs", "read_predictions_csv"]

OUTPUTS = (
    "per_class.csv",
    "confusion_matrix.csv",
    "confusion_matrix.png",
    "confused_pairs.csv",
    "per_image.csv",
    "summary.json",
)
CONFUSED_FIELDS = ("true", "predicted", "images", "share_of_true")
PER_IMAGE_FIELDS = ("file", "true", "predicted", "score", "true_score", "correct")


@dataclass
class ClassPrediction:
    """One row of ``predictions.csv``: ``labels`` the top-k class names, ``scores`` their probabilities."""

    file: str
    line: int
    labels: list[str]
    scores: list[float]


def read_predictions_csv(path: str | os.PathLike) -> list[ClassPrediction]:
    """The rows of a ``predictions.csv`` (columns ``file``, ``label_1``, ``score_1``, ...); a malformed file is a
    ``ValueError`` naming it, the line and the fix. Video frames (a non-empty ``frame``) are left out."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else []
    if "file" not in header or "label_1" not in header or "score_1" not in header:
        raise ValueError(
            f"{path}: not a classifier's predictions.csv (the first row must name file, label_1, score_1, ...; "
            f"got {header[:4]}); write it with tools/infer.py and a classifier checkpoint"
        )
    fi, frame = header.index("file"), header.index("frame") if "frame" in header else None
    pairs = [
        (header.index(f"label_{k}"), header.index(f"score_{k}"))
        for k in range(1, len(header))
        if f"label_{k}" in header
    ]
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row) or (frame is not None and len(row) > frame and row[frame].strip()):
            continue
        try:
            top = [(row[li], float(row[si])) for li, si in pairs if li < len(row) and row[li] != ""]
        except (ValueError, IndexError):
            raise ValueError(f"{path} line {n}: a score is not a number: {row}") from None
        if len(row) <= fi or not row[fi] or not top:
            raise ValueError(f"{path} line {n}: {row} lacks a file or a label_1")
        out.append(ClassPrediction(row[fi], n, [t[0] for t in top], [t[1] for t in top]))
    return out


def match_predictions(
    preds: Sequence[ClassPrediction], files: Sequence[str], source: str
) -> list[tuple[int, ClassPrediction]]:
    """``(dataset index, prediction)`` pairs by the longest common path suffix; a predicted file that is no image
    of the ground truth is a ``ValueError``; covering under half of it a ``CategoryMismatchWarning``."""
    from detkit.utils.file_match import lookup, other_files, suffix_index

    index = suffix_index((f, i) for i, f in enumerate(files))
    pairs, missing = [], []
    for p in preds:
        hit = lookup(index, p.file)
        if hit is None:
            missing.append(p.file)
        else:
            pairs.append((hit, p))
    if missing:
        raise ValueError(
            f"{len(missing)} predicted file(s) are not images of {source} (e.g. {missing[0]}); analyse the "
            "predictions against the class folders of the images they were made on"
        )
    other = other_files((p.file, files[i]) for i, p in pairs)
    if other:
        warnings.warn(
            f"{len(other)} predicted file(s) were matched to images of {source} by name but are other files (e.g. "
            f"{other[0][0]}, not {other[0][1]}): were the predictions made on another split? Analyse them against "
            "the class folders of the images they were made on",
            CategoryMismatchWarning,
            stacklevel=2,
        )
    covered = len({i for i, _ in pairs})
    if covered * 2 < len(files):
        warnings.warn(
            f"the predictions cover {covered} of the {len(files)} images of {source}: the metrics are of those only",
            CategoryMismatchWarning,
            stacklevel=2,
        )
    return pairs


def _scores_vector(pred: ClassPrediction, index: dict[str, int], num_classes: int) -> torch.Tensor:
    """Probabilities [C]: the top-k from the row, the rest of the mass spread evenly over the other classes (each
    at most the k-th score, so the ranking of the top-k is kept)."""
    scores = torch.zeros(num_classes)
    known = [(index[n], s) for n, s in zip(pred.labels, pred.scores)]
    for k, s in known:
        scores[k] = s
    rest = num_classes - len(known)
    if rest > 0:
        fill = max(0.0, 1.0 - sum(s for _, s in known)) / rest
        mask = torch.ones(num_classes, dtype=torch.bool)
        mask[[k for k, _ in known]] = False
        scores[mask] = min(fill, min(s for _, s in known))
    return scores


def confused_pairs(confusion: np.ndarray, names: Sequence[str], top: int = 10) -> list[dict[str, Any]]:
    """The largest off-diagonal counts of a confusion matrix [C,C] (rows true, columns predicted), with their share
    of the true class's images."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    rows = []
    for flat in order:
        t, p = divmod(int(flat), len(names))
        if off[t, p] == 0:
            break
        share = float(off[t, p] / max(confusion[t].sum(), 1))
        rows.append({"true": names[t], "predicted": names[p], "images": int(off[t, p]), "share_of_true": share})
    return rows


def _class_names(dataset_names: Sequence[str], preds: Sequence[ClassPrediction]) -> list[str]:
    """The ground truth's classes, then any class the predictions name and the ground truth lacks (a WARNING)."""
    extra = sorted({n for p in preds for n in p.labels} - set(dataset_names))
    if extra:
        warnings.warn(
            f"the predictions name {len(extra)} class(es) the ground truth lacks ({', '.join(extra[:5])}): images "
            "predicted as them count as mistakes",
            CategoryMismatchWarning,
            stacklevel=2,
        )
    return [*dataset_names, *extra]


def analyze_classification(
    gt_dir: str | os.PathLike,
    predictions: str | os.PathLike,
    out_dir: str | os.PathLike,
    ann_file: str | os.PathLike | None = None,
    num_images: int = 8,
) -> dict[str, Any]:
    """Score ``predictions`` (a classifier's predictions.csv) against the classification dataset ``gt_dir`` (class
    folders, or ``ann_file`` a CSV of file,label rows relative to it) and write the outputs (module docstring).

    Returns ``metrics``, ``evaluator`` (the ``ClsEvaluator``, with ``per_class`` and ``confusion``), ``pairs``
    (most confused), ``per_image`` rows, ``files`` written, ``topk`` (labels per row).
    """
    from detkit.data.datasets.image_folder import ImageFolderDataset

    preds = read_predictions_csv(predictions)
    folder = ImageFolderDataset(gt_dir, ann_file=ann_file)
    pairs = match_predictions(preds, folder.files, os.fspath(ann_file or gt_dir))
    names = _class_names(folder.class_names, preds)
    topk = min(len(p.labels) for p in preds) if preds else 0
    truth = [int(folder.labels[i]) for i, _ in pairs]
    evaluator, metrics = _evaluate([p for _, p in pairs], truth, names, topk)
    confused = confused_pairs(evaluator.confusion, names)
    per_image = _per_image_rows(pairs, folder, names)
    chosen = [r for r in per_image if not r["correct"]][:num_images]
    planned = [*OUTPUTS, *(_drawing_name(rank, r) for rank, r in enumerate(chosen, start=1))]
    with recorded_run(out_dir, planned, "classification") as out:  # refuses to replace the user's files
        files = evaluator.write_report(out)
        files += [
            write_csv(out / "confused_pairs.csv", list(CONFUSED_FIELDS), [list(r.values()) for r in confused]),
            write_csv(out / "per_image.csv", list(PER_IMAGE_FIELDS), [list(r.values()) for r in per_image]),
            *_draw_worst(chosen, out),
        ]
        summary = {"metrics": metrics, "units": "0..1", "images": len(pairs), "topk": topk}
        summary |= {"confused_pairs": confused, "per_class": [r._asdict() for r in evaluator.per_class]}
        text = json.dumps(_no_nan(summary), indent=2)
        atomic_write(out / "summary.json", lambda f: f.write(text.encode()))
        files.append(out / "summary.json")
    return dict(metrics=metrics, evaluator=evaluator, pairs=confused, per_image=per_image, files=files, topk=topk)


def _evaluate(preds: Sequence[ClassPrediction], truth: Sequence[int], names: Sequence[str], topk: int):
    """(ClsEvaluator, metrics) of the predictions against the true labels; with fewer than ``min(5, C)`` labels
    per row, ``cls/top5`` is nan and ``cls/top{k}`` is given instead."""
    from detkit.evaluation.classification import ClsEvaluator

    index = {n: i for i, n in enumerate(names)}
    evaluator = ClsEvaluator(len(names), names)
    batch = {"targets": [{"labels": torch.tensor([t])} for t in truth], "image_ids": list(range(len(truth)))}
    evaluator.process(batch, [{"scores": _scores_vector(p, index, len(names))} for p in preds])
    metrics = evaluator.compute()
    if topk < min(5, len(names)):
        metrics["cls/top5"] = float("nan")
        hits = [t in [index[n] for n in p.labels] for p, t in zip(preds, truth)]
        metrics[f"cls/top{topk}"] = float(np.mean(hits)) if hits else float("nan")
    return evaluator, metrics


def _no_nan(value: Any) -> Any:
    """``value`` with every float nan (undefined: no image of a class) as None, for strict JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def _per_image_rows(pairs: Sequence[tuple[int, ClassPrediction]], folder, names: Sequence[str]) -> list[dict]:
    """One row per image: file, true class, predicted class and its probability, the true class's probability
    ('' when outside the row's top-k), wrong first, most confident first."""
    rows = []
    for i, p in pairs:
        true = names[int(folder.labels[i])]
        true_score = p.scores[p.labels.index(true)] if true in p.labels else ""
        rows.append(
            {
                "file": folder.files[i],
                "true": true,
                "predicted": p.labels[0],
                "score": p.scores[0],
                "true_score": true_score,
                "correct": int(p.labels[0] == true),
            }
        )
    return sorted(rows, key=lambda r: (r["correct"], -r["score"]))


def _drawing_name(rank: int, row: dict) -> str:
    """A mistake's drawing, relative to the output folder: ``worst/01_<true class>_<image stem>.jpg``."""
    return f"worst/{rank:02d}_{row['true']}_{Path(row['file']).stem}.jpg"


def _draw_worst(wrong: Sequence[dict], out: Path) -> list[Path]:
    """Draw the mistakes ``wrong`` (per-image rows, most confident first; true and predicted class written on
    each) into ``out/worst``."""
    import cv2

    from detkit.data.image_io import read_image
    from detkit.inference.classification import MIN_DRAW_SIDE

    written = []
    for rank, r in enumerate(wrong, start=1):
        image = read_image(r["file"])
        scale = max(1.0, MIN_DRAW_SIDE / min(image.shape[:2]))
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else image
        image = np.ascontiguousarray(image)
        for y, (text, colour) in enumerate(
            ((f"true: {r['true']}", (80, 220, 80)), (f"pred: {r['predicted']} {r['score']:.2f}", (240, 80, 80)))
        ):
            cv2.rectangle(image, (0, 16 * y), (image.shape[1], 16 * y + 16), (0, 0, 0), -1)
            cv2.putText(image, text, (3, 16 * y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
        path = out / _drawing_name(rank, r)
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write(path, lambda f, b=buf: f.write(b.tobytes()))
            written.append(path)
    return written


def format_report(out: dict[str, Any], out_dir: str | os.PathLike) -> str:
    """The printed report: metrics, per-class table, the most confused pairs, where the files went."""
    lines = [out["evaluator"].summary()]
    if out["topk"] < min(5, out["evaluator"].num_classes):
        lines.append(f"(predictions.csv holds the top-{out['topk']} classes: cls/top5 is undefined)")
    lines.append("most confused (true -> predicted: images, share of the true class):")
    lines += [f"  {r['true']} -> {r['predicted']}: {r['images']} ({r['share_of_true']:.1%})" for r in out["pairs"]] or [
        "  none"
    ]
    wrong = sum(1 for r in out["per_image"] if not r["correct"])
    lines.append(f"{wrong} of {len(out['per_image'])} images wrong; {len(out['files'])} files written to {out_dir}")
    return "\n".join(lines)


def split_root_mistake(img_dir: str | os.PathLike, predictions: str | os.PathLike, arg: str = "IMG_DIR") -> str | None:
    """Why ``img_dir``, a split root (``img_dir/val/<class>/...``), is not the folder of class folders that
    analyze needs, naming the split folder to give: the one holding the predictions' files, else val; None when
    ``img_dir`` is not a split root."""
    from detkit.data.folder_layout import split_folders

    splits = split_folders(img_dir)
    if not splits:
        return None
    try:
        files = [Path(p.file).resolve() for p in read_predictions_csv(predictions)[:50]]
    except (OSError, ValueError):
        files = []
    held = [path for _, path in splits if any(f.is_relative_to(Path(path).resolve()) for f in files)]
    val = [path for split, path in splits if split == "val"]
    use = (held or val or [splits[0][1]])[0]
    names = ", ".join(os.path.basename(path) for _, path in splits)
    return (
        f"{arg} {img_dir} holds split folders ({names}), each with class folders: give the split the predictions "
        f"came from as {arg}, e.g. {use}"
    )
