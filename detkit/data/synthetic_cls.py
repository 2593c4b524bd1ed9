"""The shapes data for image classification: one shape per image, cropped around it, one folder per class.

Each image is a shapes scene with a single shape of its class (``detkit.data.synthetic.render_image`` with
``kinds``: textured background, lines and arcs as distractors, pixel noise), cropped to a square around the
shape with a random margin and offset, and resized to ``size`` x ``size``. Variants: ``shape`` (4 classes: circle, rectangle, triangle, star)
and ``shape_colour`` (12 classes: each shape in red, green or blue, e.g. ``red_circle``); ``grey`` writes
single-channel PNGs (for the ``shape`` variant). The same arguments give the same bytes.

Layout: ``OUT/train/<class>/NNNNNN.png``, ``OUT/val/<class>/NNNNNN.png``, ``OUT/classes.txt``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from detkit.data.synthetic import CLASSES, SPLITS, render_image
from detkit.utils.files import atomic_write

__all__ = ["COLOUR_HUES", "VARIANTS", "cls_class_names", "make_shapes_cls", "render_crop"]

VARIANTS = ("shape", "shape_colour")
COLOUR_HUES = {"red": 0.0, "green": 120.0, "blue": 240.0}  # hue in degrees of each colour class
_CANVAS = 64  # scene size the shape is rendered in before cropping
_FILE = re.compile(r"\d{6}\.png")


def cls_class_names(variant: str = "shape") -> list[str]:
    """Class names of a variant, in label order."""
    if variant == "shape":
        return list(CLASSES)
    if variant == "shape_colour":
        return [f"{c}_{s}" for s in CLASSES for c in COLOUR_HUES]
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, hue: float) -> np.ndarray:
    """``image`` with the ``mask`` pixels refilled in a colour of hue ``hue`` +- 15 degrees (plus pixel noise)."""
    h = ((hue + rng.uniform(-15, 15)) % 360) / 2  # OpenCV's 8-bit hue: 0..180
    hsv = np.array([[[h, rng.uniform(150, 255), rng.uniform(140, 255)]]], dtype=np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    out = image.astype(np.float32)
    out[mask] = rgb + rng.normal(0, 5, (int(mask.sum()), 3))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _crop(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` x ``size`` crop around the mask: square side 1.2-1.7 x its extent, centre moved up to 10%."""
    ys, xs = np.nonzero(mask)
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    side = extent * rng.uniform(1.2, 1.7)
    cx, cy = (xs.max() + xs.min() + 1) / 2, (ys.max() + ys.min() + 1) / 2
    cx, cy = cx + rng.uniform(-0.1, 0.1) * side, cy + rng.uniform(-0.1, 0.1) * side
    s = size / side
    m = np.array([[s, 0, -(cx - side / 2) * s], [0, s, -(cy - side / 2) * s]], dtype=np.float64)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def render_crop(rng: np.random.Generator, kind: str, size: int = 32, hue: float | None = None) -> np.ndarray:
    """One classification image uint8 [size,size,3] RGB of a ``kind`` shape (of hue ``hue`` when given)."""
    if kind not in CLASSES:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {CLASSES}")
    for _ in range(200):  # one shape on a 64 px canvas: placed in the first scene in practice
        image, objects = render_image(rng, (_CANVAS, _CANVAS), num_objects=1, kinds=(kind,))
        if objects:
            mask = objects[0]["mask"]
            if hue is not None:
                image = _paint(rng, image, mask, hue)
            return _crop(rng, image, mask, size)
    raise RuntimeError(f"no {kind} placed in 200 scenes")


def _write_split(root: Path, split: str, names: list[str], num: int, seed: int, size: int, grey: bool) -> None:
    """Write ``num`` images per class of one split; remove stale numbered images of an earlier, larger run."""
    for label, name in enumerate(names):
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        kind = name.split("_")[-1]
        hue = COLOUR_HUES[name.split("_")[0]] if "_" in name else None
        written = set()
        for i in range(num):
            rng = np.random.default_rng([seed, SPLITS[split], label, i])
            image = render_crop(rng, kind, size, hue)
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if grey else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".png", image)
            if not ok:
                raise OSError(f"could not encode {folder / f'{i + 1:06d}.png'}")
            atomic_write(folder / f"{i + 1:06d}.png", lambda f, b=buf: f.write(b.tobytes()))
            written.add(f"{i + 1:06d}.png")
        for stale in (p for p in folder.iterdir() if _FILE.fullmatch(p.name) and p.name not in written):
            stale.unlink()


def make_shapes_cls(
    out_dir: str | os.PathLike,
    num_train: int = 500,
    num_val: int = 100,
    seed: int = 0,
    size: int = 32,
    variant: str = "shape",
    grey: bool = False,
) -> dict[str, Path]:
    """Write the classification shapes data under ``out_dir``: ``num_train`` / ``num_val`` images per class.

    Returns the paths ``root``, ``train_img_dir``, ``val_img_dir``, ``classes_file``.
    """
    names = cls_class_names(variant)
    if grey and variant != "shape":
        raise ValueError(f"grey images hold no colour: use variant='shape' with grey=True, not {variant!r}")
    if int(size) < 8 or num_train < 0 or num_val < 0:
        raise ValueError(f"need size >= 8 and image counts >= 0, got size={size}, {num_train}, {num_val}")
    root = Path(out_dir)
    for split, num in (("train", num_train), ("val", num_val)):
        _write_split(root, split, names, int(num), int(seed), int(size), grey)
    classes_file = root / "classes.txt"
    atomic_write(classes_file, lambda f: f.write(("\n".join(names) + "\n").encode()))
    return {"root": root, "train_img_dir": root / "train", "val_img_dir": root / "val", "classes_file": classes_file}
