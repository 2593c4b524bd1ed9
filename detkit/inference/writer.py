"""``ResultWriter``: what ``tools/infer.py`` writes under its output folder (drawings, label maps, videos,
``images.json`` and ``predictions.json`` / ``predictions.csv``), each file written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detkit.inference.classification import ClassificationRows, draw_classification, is_classification
from detkit.utils.files import atomic_write

__all__ = ["ResultWriter", "video_suffix"]


def _imwrite(path: Path, rgb_or_gray: np.ndarray) -> None:
    """Encode an RGB (or one-channel) image by ``path``'s suffix and write it atomically."""
    img = cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR) if rgb_or_gray.ndim == 3 else rgb_or_gray
    ok, buf = cv2.imencode(path.suffix, img)
    if not ok:
        raise OSError(f"could not write {path}")
    atomic_write(path, lambda f: f.write(buf.tobytes()))


def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj).encode("utf-8")))


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
        """``drawn``: the name of the drawing under ``out_dir`` (an image, or the video of a frame; '' if none).
        images.json's record keeps ``file_name`` as given and adds ``path``, the input's absolute resolved path, so
        that a tool run from another folder (``detkit analyze``) finds the input."""
        from detkit.evaluation.coco_metrics import prediction_to_coco

        image_id = len(self.images) + 1
        info = {"id": image_id, "file_name": file_name, "path": os.fspath(Path(file_name).resolve())}
        info.update(height=image.shape[0], width=image.shape[1])
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
        """Write ``images.json`` and ``predictions.json`` (instances) or ``predictions.csv`` (a classifier's top-k),
        and a semantic model's ``classes.txt`` (its class names, label value = line index); return the
        predictions' path (None for semantic maps only)."""
        _write_json(self.out_dir / "images.json", self.images)
        if self.semantic_preds > 0:  # the label maps' values are indices of these names (read by detkit analyze)
            text = "".join(f"{name}\n" for name in self.class_names)
            atomic_write(self.out_dir / "classes.txt", lambda f: f.write(text.encode("utf-8")))
        if len(self.classes) or self.topk is not None:
            self.classes.k = self.classes.k or int(self.topk or 0)
            return self.classes.write(self.out_dir / "predictions.csv")
        if self.instance_preds == 0 and self.semantic_preds > 0:
            return None
        path = self.out_dir / "predictions.json"
        _write_json(path, self.results)
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
