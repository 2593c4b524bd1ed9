"""Inference over files for ``tools/infer.py``: images and videos in (``detkit.inference.inputs``); drawings and
results out.

Outputs under ``out_dir``: drawn images (``<stem>.jpg``) and videos (``<stem>.mp4`` / ``.avi``),
``predictions.json`` (COCO results: ``image_id``, ``category_id`` (the dataset's ids when the model knows
them), ``bbox`` xywh, ``score``, ``segmentation`` RLE for instance masks) with ``images.json`` naming each
``image_id`` (file, frame, size); for semantic models ``<stem>_labels.png`` (class per pixel) and, when
drawing, ``<stem>_sem.png`` (colour-coded) plus the overlay; for classifiers ``predictions.csv`` (file, frame,
top-k class names and probabilities: ``detkit.inference.classification``) and images drawn with their most
likely classes. An unreadable input is reported and skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from torch import nn

from detkit.inference.inputs import is_video, read_video
from detkit.inference.writer import ResultWriter, video_suffix

__all__ = ["InferenceInterrupted", "ResultWriter", "format_summary", "run_inference"]


def output_files(out_dir: str | os.PathLike, paths: Sequence[Path]) -> list[Path]:
    """The files :func:`run_inference` may write for ``paths`` under ``out_dir``: the result files and each
    input's drawing (``<stem>.jpg``, a video's ``<stem>.mp4`` / ``.avi``), named as :class:`ResultWriter` names
    them (images first, then videos; a stem used twice gets ``_2``...)."""
    from detkit.utils.output_names import unique_stems

    out = Path(out_dir)
    ordered = [p for p in paths if not is_video(p)] + [p for p in paths if is_video(p)]
    stems = unique_stems(p.stem for p in ordered)
    drawn = [f"{s}{video_suffix(p) if is_video(p) else '.jpg'}" for p, s in zip(ordered, stems)]
    return [out / n for n in ("predictions.json", "predictions.csv", "images.json", "classes.txt", *drawn)]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_inference(
    model: nn.Module,
    paths: Sequence[Path],
    out_dir: str | os.PathLike,
    score_thr: float | None = None,
    batch_size: int = 1,
    tile: Any = None,
    draw: bool = True,
    draw_thr: float = 0.3,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run ``model`` on image and video files, writing the outputs (see the module docstring).

    Ctrl-C (KeyboardInterrupt) stops the run and keeps what was done (drawings, the predictions file), then
    raises :class:`InferenceInterrupted` (a KeyboardInterrupt) holding the summary, with ``interrupted`` True.
    Returns a summary: ``images``, ``videos``, ``frames``, ``interrupted``, ``skipped`` (list of ``(path, reason)``),
    ``detections``, ``predictions`` (the json / csv path or None), ``out_dir``; for a classifier ``classified``
    (images and frames), ``topk`` and ``most_predicted`` (``[(class, count)]``).
    """
    from tqdm import tqdm

    import detkit

    topk = _classifier_topk(model)
    writer = ResultWriter(out_dir, model.class_names, getattr(model, "cat_ids", None), draw, draw_thr, topk)
    skipped: list[tuple[str, str]] = []
    videos = [p for p in paths if is_video(p)]
    images = [p for p in paths if not is_video(p)]
    # on a terminal only (tqdm's disable=None): no progress frames in a log file or a pipe
    bar = tqdm(total=len(images), desc="infer", unit="img", disable=None if progress else True)

    def run(arrays: list[np.ndarray]) -> list[dict]:
        return detkit.predict(model, arrays, score_thr=score_thr, batch_size=batch_size, tile=tile)

    def skip(path: Path, error: Exception) -> None:
        skipped.append((str(path), str(error)))
        (bar.write if progress else log)(f"skipped unreadable input {path}: {error}")

    counts = {"images": 0, "videos": 0, "frames": 0}
    loop = _Loop(batch_size, run, writer, bar, skip, counts)
    interrupted = False
    try:
        _infer_images(images, loop)
        _infer_videos(videos, loop)
    except KeyboardInterrupt:  # Ctrl-C: keep what was done (the video so far, the predictions file)
        interrupted = True
        writer.close_video()
    bar.close()
    pred_path = writer.finish()
    summary = {**counts, "interrupted": interrupted, "skipped": skipped, "score_thr": score_thr}
    summary.update(_written(writer, draw, draw_thr, pred_path, Path(out_dir), topk))
    if interrupted:
        raise InferenceInterrupted(summary)
    return summary


def _classifier_topk(model: nn.Module) -> int | None:
    """A classifier's classes per image; None for other models."""
    from detkit.models.detectors.classifier import Classifier

    return int(model.topk) if isinstance(model, Classifier) else None


def _written(writer: ResultWriter, draw: bool, draw_thr: float, pred_path, out_dir: Path, topk) -> dict:
    """The summary's account of what ``writer`` wrote (see :func:`run_inference`)."""
    return {
        "detections": len(writer.results),
        "drawn": writer.drawn if draw else None,
        "max_score": max((r["score"] for r in writer.results), default=None),
        "draw_thr": draw_thr,
        "predictions": pred_path,
        "out_dir": out_dir,
        "classified": len(writer.classes),
        "classifier": topk is not None,
        "topk": writer.classes.k,
        "most_predicted": writer.classes.most_predicted(),
    }


class InferenceInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_inference` after it saved what was done; ``summary`` is its summary of that."""

    def __init__(self, summary: dict):
        super().__init__("inference stopped by Ctrl-C")
        self.summary = summary


class _Loop(NamedTuple):
    """What the image and video loops of :func:`run_inference` share."""

    batch_size: int
    run: Callable[[list[np.ndarray]], list[dict]]  # arrays -> predictions
    writer: ResultWriter
    bar: Any  # tqdm
    skip: Callable[[Path, Exception], None]  # an unreadable input
    counts: dict[str, int]  # images, videos, frames done


def _infer_images(images: Sequence[Path], loop: _Loop) -> None:
    """Predict ``images`` in batches into the writer, counting them in ``counts['images']``; unreadable files
    go to ``skip``."""
    from detkit.data.image_io import ImageReadError, read_image

    for chunk in _batches(images, loop.batch_size):
        loaded = []
        for p in chunk:
            try:
                loaded.append((p, read_image(p)))
            except ImageReadError as e:
                loop.skip(p, e)
        for (p, img), pred in zip(loaded, loop.run([img for _, img in loaded]) if loaded else []):
            loop.writer.add_image(p, img, pred)
            loop.counts["images"] += 1
        loop.bar.update(len(chunk))


def _infer_videos(videos: Sequence[Path], loop: _Loop) -> None:
    """Predict every frame of ``videos`` into the writer (one drawn video each), counting ``counts['videos']``
    and ``counts['frames']``; unreadable videos go to ``skip``."""
    from detkit.data.image_io import ImageReadError

    for p in videos:
        try:
            info, frames = read_video(p, loop.batch_size)
            loop.writer.open_video(p, info)
        except (ImageReadError, OSError) as e:
            loop.skip(p, e)
            continue
        loop.bar.total += info["frame_count"]
        loop.bar.refresh()
        for batch in frames:
            for img, pred in zip(batch, loop.run(batch)):
                loop.writer.add_frame(img, pred)
                loop.counts["frames"] += 1
            loop.bar.update(len(batch))
        loop.writer.close_video()
        loop.counts["videos"] += 1


def format_summary(summary: dict) -> str:
    """What was processed and skipped, how many detections were saved and drawn (at which thresholds), where.

    E.g. ``4 images processed, 0 videos (0 frames) processed, 0 unreadable skipped, 37 detections (score >= the
    config's test threshold) -> out/predictions.json; 12 drawn (score >= --draw-thr 0.3) -> out``.
    """
    imgs, vids = summary["images"], summary["videos"]
    text = (
        f"{imgs} image{'s' if imgs != 1 else ''} processed, {vids} video{'s' if vids != 1 else ''} "
        f"({summary['frames']} frames) processed, {len(summary['skipped'])} unreadable skipped"
    )
    if summary["skipped"]:
        text += f" ({', '.join(s[0] for s in summary['skipped'])})"
    if summary.get("classified") or summary.get("classifier"):
        return text + _classified(summary)
    if summary["predictions"] is not None:
        thr = summary.get("score_thr")
        saved = "the config's test threshold" if thr is None else f"--score-thr {thr:g}"
        text += f", {summary['detections']} detections (score >= {saved}) -> {summary['predictions']}"
        if summary.get("drawn") is None:
            text += "; none drawn (--no-draw)"
        else:
            text += f"; {summary['drawn']} drawn (score >= --draw-thr {summary['draw_thr']:g})"
            if summary["drawn"] == 0 and summary.get("max_score") is not None:
                text += f" (the best score is {summary['max_score']:.3f}: lower --draw-thr to draw more)"
            text += f" -> {summary['out_dir']}"
    else:
        text += f", semantic maps -> {summary['out_dir']}"
    return text


def _classified(summary: dict) -> str:
    """The classifier's part of the summary: rows written, the most frequent first classes, the drawings."""
    common = ", ".join(f"{name} {n}" for name, n in summary["most_predicted"])
    text = (
        f", top-{summary['topk']} classes and probabilities of {summary['classified']} -> {summary['predictions']}"
        + (f" (most often first: {common})" if common else "")
    )
    if summary.get("drawn") is None:
        return text + "; none drawn (--no-draw)"
    return text + f"; {summary['drawn']} drawn with their top classes -> {summary['out_dir']}"
