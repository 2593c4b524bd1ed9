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

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from torch import nn

from detkit.inference.classification import ClassificationRows, draw_classification, is_classification
from detkit.inference.inputs import is_video, read_video

__all__ = ["InferenceInterrupted", "ResultWriter", "format_summary", "run_inference"]


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through ``write(tmp)`` then rename; the temporary name keeps the suffix (encoders need it)."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def _imwrite(path: Path, rgb_or_gray: np.ndarray) -> None:
    img = cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR) if rgb_or_gray.ndim == 3 else rgb_or_gray

    def write(tmp: Path) -> None:
        if not cv2.imwrite(os.fspath(tmp), img):
            raise OSError(f"could not write {path}")

    _write_atomic(path, write)


class ResultWriter:
    """Collects predictions and writes drawings, label maps and ``predictions.json`` under ``out_dir``.

    Args:
        out_dir: output folder (created).
        class_names: the model's class names (drawn labels).
        cat_ids: label -> category id for ``predictions.json`` (None: the labels themselves).
        draw: write drawn images / videos (and colour-coded semantic maps).
        draw_thr: minimum score of drawn detections.
        topk: a classifier's classes per image (None for other models): its outputs are ``predictions.csv``.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        class_names: Sequence[str],
        cat_ids: Sequence[int] | None = None,
        draw: bool = True,
        draw_thr: float = 0.3,
        topk: int | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.topk = topk  # a classifier's: predictions.csv even with no row (no readable input)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.class_names, self.draw, self.draw_thr = list(class_names), draw, draw_thr
        self.labels_as_ids = cat_ids is None
        self.cat_ids = list(cat_ids) if cat_ids is not None else list(range(len(self.class_names)))
        self.cat_names = dict(zip(self.cat_ids, self.class_names))  # category id -> the model's class name
        self.results: list[dict] = []
        self.drawn = 0  # detections drawn (score >= draw_thr)
        self.images: list[dict] = []
        self.instance_preds = self.semantic_preds = 0
        self.classes = ClassificationRows(self.class_names)  # a classifier's rows of predictions.csv
        self._names: set[str] = set()
        self._video: cv2.VideoWriter | None = None

    def unique_stem(self, path: Path) -> str:
        """The input's stem, suffixed ``_2``, ``_3``... when another input already used it."""
        from detkit.utils.output_names import free_stem

        return free_stem(path.stem, self._names)

    def _record(self, pred: dict, image: np.ndarray, file_name: str, frame: int | None, drawn: str) -> None:
        """``drawn``: the name of the drawing under ``out_dir`` (an image, or the video of a frame; '' if none)."""
        from detkit.evaluation.coco_metrics import prediction_to_coco

        image_id = len(self.images) + 1
        info = {"id": image_id, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]}
        if frame is not None:
            info["frame"] = frame
        info["drawn"] = drawn
        self.images.append(info)
        if "boxes" in pred:
            self.instance_preds += 1
            recs = prediction_to_coco(image_id, pred, self.cat_ids, with_masks="masks" in pred)
            for r in recs:
                r["category_name"] = self.cat_names.get(r["category_id"], str(r["category_id"]))
                r["file_name"] = file_name
                if frame is not None:
                    r["frame"] = frame
            self.results.extend(recs)
        if "sem_seg" in pred:
            self.semantic_preds += 1
        if is_classification(pred):
            self.classes.add(pred, file_name, frame, drawn)

    def _drawn(self, image: np.ndarray, pred: dict) -> np.ndarray:
        from detkit.visualization import draw_prediction

        if is_classification(pred):
            self.drawn += 1
            return draw_classification(image, pred, self.class_names)
        if pred.get("scores") is not None:
            self.drawn += int((pred["scores"] >= self.draw_thr).sum())
        return draw_prediction(image, pred, self.class_names, self.draw_thr)

    def add_image(self, path: Path, image: np.ndarray, pred: dict) -> None:
        """Record one image's prediction and write its outputs."""
        from detkit.visualization import colorize_sem_seg

        stem = self.unique_stem(path)
        self._record(pred, image, str(path), None, f"{stem}.jpg" if self.draw else "")
        if "sem_seg" in pred:
            self.images[-1]["labels"] = f"{stem}_labels.png"  # the class per pixel (drawn or not)
            sem = pred["sem_seg"].cpu().numpy()
            labels = sem.astype(np.uint8) if sem.max(initial=0) < 256 else sem.astype(np.uint16)
            _imwrite(self.out_dir / f"{stem}_labels.png", labels)
            if self.draw:
                _imwrite(self.out_dir / f"{stem}_sem.png", colorize_sem_seg(sem))
        if self.draw:
            _imwrite(self.out_dir / f"{stem}.jpg", self._drawn(image, pred))

    def open_video(self, path: Path, info: dict) -> None:
        """Start the drawn copy of a video (same size and frame rate; MJPG .avi for .avi, else mp4v .mp4)."""
        self._video_frames = 0
        self._video_path = path
        if not self.draw:
            return
        avi = path.suffix.lower() == ".avi"
        out = self.out_dir / f"{self.unique_stem(path)}{video_suffix(path)}"
        self._video_out = out
        self._video_tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if avi else "mp4v"))
        self._video = cv2.VideoWriter(
            os.fspath(self._video_tmp), fourcc, float(info["fps"]), (int(info["width"]), int(info["height"]))
        )
        if not self._video.isOpened():
            self._video = None
            raise OSError(f"OpenCV cannot write video {out} (codec {'MJPG' if avi else 'mp4v'} missing?)")

    def add_frame(self, image: np.ndarray, pred: dict) -> None:
        """Record one frame of the open video and append its drawing."""
        drawn = self._video_out.name if self._video is not None else ""
        self._record(pred, image, str(self._video_path), self._video_frames, drawn)
        self._video_frames += 1
        if self._video is not None:
            drawn = self._drawn(image, pred)
            if drawn.shape[:2] != image.shape[:2]:  # a small frame enlarged for its label: back to the video's size
                drawn = cv2.resize(drawn, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
            self._video.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def close_video(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
            os.replace(self._video_tmp, self._video_out)

    def finish(self) -> Path | None:
        """Write ``images.json`` and ``predictions.json`` (instances) or ``predictions.csv`` (a classifier's top-k);
        return the predictions' path (None for semantic maps only)."""
        _write_atomic(self.out_dir / "images.json", lambda t: t.write_text(json.dumps(self.images)))
        if len(self.classes) or self.topk is not None:
            self.classes.k = self.classes.k or int(self.topk or 0)
            return self.classes.write(self.out_dir / "predictions.csv")
        if self.instance_preds == 0 and self.semantic_preds > 0:
            return None
        path = self.out_dir / "predictions.json"
        _write_atomic(path, lambda t: t.write_text(json.dumps(self.results)))
        if self.labels_as_ids and self.results:
            import warnings

            warnings.warn(
                f"the checkpoint stores no dataset category ids, so {path} has the labels 0..C-1 as category_id "
                "(with category_name); map them before scoring against a COCO file (tools/analyze.py warns "
                "when they disagree)",
                stacklevel=2,
            )
        return path


def video_suffix(path: Path) -> str:
    """The drawn copy's suffix of the video ``path``: ``.avi`` (MJPG) for an .avi, else ``.mp4`` (mp4v)."""
    return ".avi" if path.suffix.lower() == ".avi" else ".mp4"


def output_files(out_dir: str | os.PathLike, paths: Sequence[Path]) -> list[Path]:
    """The files :func:`run_inference` may write for ``paths`` under ``out_dir``: the result files and each
    input's drawing (``<stem>.jpg``, a video's ``<stem>.mp4`` / ``.avi``), named as :class:`ResultWriter` names
    them (images first, then videos; a stem used twice gets ``_2``...)."""
    from detkit.utils.output_names import unique_stems

    out = Path(out_dir)
    ordered = [p for p in paths if not is_video(p)] + [p for p in paths if is_video(p)]
    stems = unique_stems(p.stem for p in ordered)
    drawn = [f"{s}{video_suffix(p) if is_video(p) else '.jpg'}" for p, s in zip(ordered, stems)]
    return [out / n for n in ("predictions.json", "predictions.csv", "images.json", *drawn)]


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
