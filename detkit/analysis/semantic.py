"""Analysis of a semantic segmentor's label maps (``tools/infer.py``'s ``<stem>_labels.png``) against a folder of
ground-truth label maps: per-class IoU / accuracy, a pixel confusion matrix, per-image mIoU, the worst images.

Every number is :class:`~detkit.evaluation.semseg.SemSegEvaluator`'s: each image's pixel confusion matrix is the
evaluator's ``update`` of its two maps, and the summed matrix gives ``sem/mIoU``, ``sem/mAcc`` and ``sem/aAcc``
exactly as ``detkit eval`` reports them for the same maps (docs/analysis.md). Outputs: ``per_class.csv``,
``confusion_matrix.csv`` (pixels), ``confusion_matrix_norm.csv`` / ``.png`` (each true class's row sums to 1),
``per_image.csv`` (worst first), ``worst/`` drawings and ``summary.json``; the outputs an earlier run recorded in
that folder (``.analyze_outputs.json``) are removed first, and a file of the user's with an output's name is
refused (``ForeignOutputError``), before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detkit.analysis.figures import row_share_heatmap, save_figure, write_csv
from detkit.analysis.outputs import recorded_run
from detkit.analysis.semantic_inputs import LabelReading, MapPair, check_same_size, few, pair_maps
from detkit.evaluation.semseg import SemSegEvaluator
from detkit.utils.files import atomic_write

__all__ = ["ImageScore", "analyze_semantic", "format_report", "score_pairs", "semantic_confusion_figure"]

OUTPUTS = (
    "per_class.csv",
    "confusion_matrix.csv",
    "confusion_matrix_norm.csv",
    "confusion_matrix.png",
    "per_image.csv",
    "summary.json",
)
PER_IMAGE_FIELDS = ("image", "prediction", "ground_truth", "mIoU (0-1)", "mAcc (0-1)", "aAcc (0-1)", "pixels")


@dataclass
class ImageScore:
    """One image's ``SemSegEvaluator`` metrics (nan: undefined, no valid pixel) and its valid pixel count."""

    pair: MapPair
    mIoU: float
    mAcc: float
    aAcc: float
    pixels: int


def score_pairs(
    pairs: Sequence[MapPair], reading: LabelReading, progress: bool | None = None
) -> tuple[SemSegEvaluator, list[ImageScore]]:
    """Score each pair with its own ``SemSegEvaluator`` and sum their confusion matrices into one evaluator
    (computed; without class names its classes end at the largest value present). Returns it and the per-image
    scores in ``pairs``' order."""
    from detkit.engine.logger import progress_bar

    C = reading.num_classes
    one, total = SemSegEvaluator(C, reading.ignore_index), torch.zeros(C, C, dtype=torch.int64)
    scores = []
    for pair in progress_bar(pairs, total=len(pairs), desc="scoring", enabled=progress, unit="image"):
        gt, pred = reading.read_gt(pair.gt), reading.read_pred(pair.pred)
        check_same_size(pair, gt, pred)
        one.reset()
        one.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64)))
        total += one.confusion
        with warnings.catch_warnings():  # an image with every pixel ignored: nan, said in per_image.csv
            warnings.simplefilter("ignore")
            m = one.compute()
        scores.append(ImageScore(pair, m["sem/mIoU"], m["sem/mAcc"], m["sem/aAcc"], int(one.confusion.sum())))
    if reading.class_names is None:  # unnamed: the classes up to the largest value of either map
        present = torch.nonzero(total.sum(0) + total.sum(1)).flatten()
        C = int(present.max()) + 1 if present.numel() else 1
    evaluator = SemSegEvaluator(C, reading.ignore_index, reading.class_names)
    evaluator.confusion = total[:C, :C].clone()
    evaluator.compute()
    return evaluator, scores


def _frac(value: float) -> float:
    """A fraction rounded for the CSV files; -1 where undefined (nan)."""
    return -1 if math.isnan(value) else round(float(value), 6)


def worst_first(scores: Sequence[ImageScore]) -> list[ImageScore]:
    """Lowest mIoU first (then lowest pixel accuracy, then file name); undefined (nan) images last."""
    return sorted(scores, key=lambda s: (math.isnan(s.mIoU), _frac(s.mIoU), _frac(s.aAcc), s.pair.image))


def write_tables(evaluator: SemSegEvaluator, scores: Sequence[ImageScore], out: Path) -> list[Path]:
    """``per_class.csv``, ``confusion_matrix.csv`` (pixels), ``confusion_matrix_norm.csv`` / ``.png`` (row
    shares) and ``per_image.csv`` (worst first) into ``out``."""
    conf = evaluator.confusion.numpy()
    names = evaluator.class_names
    share = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    header = ["gt \\ pred", *(f"pred:{n}" for n in names)]
    per_class = [
        [r.name, r.label, _frac(r.IoU), _frac(r.Acc), r.num_pixels, int(conf[:, r.label].sum())]
        for r in evaluator.per_class
    ]
    per_image = [
        [s.pair.image, s.pair.pred.name, os.fspath(s.pair.gt), _frac(s.mIoU), _frac(s.mAcc), _frac(s.aAcc), s.pixels]
        for s in worst_first(scores)
    ]
    return [
        write_csv(
            out / "per_class.csv", ["class", "label", "IoU (0-1)", "Acc (0-1)", "gt_pixels", "pred_pixels"], per_class
        ),
        write_csv(out / "confusion_matrix.csv", header, [[f"gt:{n}", *conf[k].tolist()] for k, n in enumerate(names)]),
        write_csv(
            out / "confusion_matrix_norm.csv",
            header,
            [[f"gt:{n}", *np.round(share[k], 6).tolist()] for k, n in enumerate(names)],
        ),
        save_figure(semantic_confusion_figure(conf, names), out / "confusion_matrix.png"),
        write_csv(out / "per_image.csv", list(PER_IMAGE_FIELDS), per_image),
    ]


def semantic_confusion_figure(confusion: np.ndarray, names: Sequence[str]):
    """Heat map of a pixel confusion matrix [C,C] (rows true class, columns predicted): colour and text the share
    of the row in percent (text up to 30 classes); the ignored pixels are in no row."""
    title = f"pixel confusion matrix: % of each true class's pixels ({int(confusion.sum())} pixels, ignore left out)"
    return row_share_heatmap(confusion, names, title, "share of the true class's pixels", percent=True, cell=0.45)


def _no_nan(value: Any) -> Any:
    """``value`` with every float nan (undefined) as None, for strict JSON."""
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value


def analyze_semantic(
    gt_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    reading: LabelReading | None = None,
    num_images: int = 8,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score infer's label maps in ``pred_dir`` against the label maps of ``gt_dir`` and write the outputs
    (module docstring) into ``out_dir``.

    Returns ``metrics`` (``sem/mIoU``, ``sem/mAcc``, ``sem/aAcc``), ``evaluator`` (its ``per_class`` and
    ``confusion``), ``scores`` (per image, worst first), ``files`` written, ``left_out`` (predicted images outside
    ``reading.split_file``, not scored) and ``split_file``.
    """
    from detkit.analysis.semantic_draw import chosen_for_drawing, draw_worst, drawing_name

    reading = reading or LabelReading()
    pairs, left_out = pair_maps(gt_dir, pred_dir, reading)
    evaluator, scores = score_pairs(pairs, reading, progress)
    ranked = worst_first(scores)
    chosen = chosen_for_drawing(ranked, num_images)
    planned = [*OUTPUTS, *(f"worst/{drawing_name(k, s)}" for k, s in enumerate(chosen, start=1))]
    with recorded_run(out_dir, planned, "semantic") as out:  # after every check; refuses to replace user files
        files = write_tables(evaluator, scores, out)
        files += draw_worst(ranked, reading, evaluator.class_names, out / "worst", num_images, progress)
        _write_summary(out, evaluator, reading, ranked, left_out, num_images)
        files.append(out / "summary.json")
    return dict(
        metrics=dict(evaluator.metrics),
        evaluator=evaluator,
        scores=ranked,
        files=files,
        left_out=left_out,
        split_file=reading.split_file,
    )


def _write_summary(out: Path, evaluator, reading: LabelReading, ranked, left_out, num_images: int) -> None:
    """Write ``summary.json``: metrics, counts, how the maps were read, per-class rows, the worst images."""
    summary = {
        "metrics": dict(evaluator.metrics),
        "units": "0..1",
        "images": len(ranked),
        "split_file": reading.split_file,
        "left_out": len(left_out),
        "num_classes": evaluator.num_classes,
        "ignore_index": reading.ignore_index,
        "classes_from": reading.source or "the values (no --classes)",
        "per_class": [r._asdict() for r in evaluator.per_class],
        "worst": [{"image": s.pair.image, "mIoU": s.mIoU} for s in ranked[:num_images]],
    }
    text = json.dumps(_no_nan(summary), indent=2)
    atomic_write(out / "summary.json", lambda f: f.write(text.encode()))


def format_report(out: dict[str, Any], out_dir: str | os.PathLike, num_images: int = 8) -> str:
    """The printed report: the predictions left out of the split, ``detkit eval``'s metrics line and per-class
    table, the worst images, the files."""
    lines = []
    if out.get("left_out"):
        left = out["left_out"]
        lines.append(
            f"scored the {len(out['scores'])} image(s) of split_file {out['split_file']}; left out {len(left)} "
            f"predicted image(s) outside it ({few(left)})"
        )
    lines += [out["evaluator"].summary(), f"worst images (mIoU in 0..1, of {len(out['scores'])}):"]
    shown = [s for s in out["scores"][:num_images] if not math.isnan(s.mIoU)]
    lines += [f"  {s.mIoU:.3f}  {s.pair.image}" for s in shown] or ["  none"]
    lines.append(f"{len(out['files'])} files written to {out_dir}")
    return "\n".join(lines)
