"""The synthetic "shapes" dataset: COCO-format instances + semantic maps, deterministic for a seed.

Each image has a textured background (gradient, low-frequency noise, lines, arcs) and 0-6 filled
shapes of four classes (circle, rectangle, triangle, star).  Every shape is painted by rasterising
its stored polygon with pycocotools, so the mask decoded from an annotation's polygon is exactly the
set of pixels that shape was painted on.  Masks are *amodal* (the full polygon): a later shape may hide
part of an earlier, larger one, but never more than ``1 - min_visible`` of it.  The semantic maps
are modal (the top-most shape per pixel).  See docs/datasets.md for the layout on disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from detkit.utils.files import atomic_write

CLASSES: tuple[str, ...] = ("circle", "rectangle", "triangle", "star")
CATEGORY_IDS: tuple[int, ...] = (1, 2, 3, 4)  # COCO-like ids: not 0-based, mapped by the dataset
SEM_CLASSES: tuple[str, ...] = ("background",) + CLASSES  # semantic value = index here, 255 = ignore
SPLITS = {"train": 0, "val": 1}
MIN_OBJECT_PX = 12


def rasterize_polygon(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    """Rasterise one polygon with pycocotools' COCO rule.

    Args: poly float [K,2] xy in COCO pixel coordinates (pixel i covers [i, i+1)).
    Returns: bool [h,w] mask.
    """
    rle = mask_utils.frPyObjects([poly.reshape(-1).tolist()], h, w)
    return mask_utils.decode(rle)[:, :, 0].astype(bool)


def _unit_shape(kind: str, rng: np.random.Generator, radius: float) -> np.ndarray:
    """Vertices [K,2] of one shape centred on the origin, rotated randomly, circumradius ``radius``."""
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "circle":
        n = int(np.clip(2 * np.pi * radius / 3, 16, 64))
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * radius
    elif kind == "rectangle":
        aspect = rng.uniform(0.5, 1.0)
        half = np.array([1.0, aspect]) / np.hypot(1.0, aspect) * radius
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * half
    elif kind == "triangle":
        t = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-15, 15, 3))
        r = radius * rng.uniform(0.85, 1.0, 3)
        pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1)
    elif kind == "star":
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        r = np.where(np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.38, 0.55))
        pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {CLASSES}")
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured RGB background: gradient + low-frequency noise + random lines and arcs. uint8 [h,w,3]."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(theta) * xx / w + np.sin(theta) * yy / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    grid = rng.normal(0, rng.uniform(5, 30), (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
    img += cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 9))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p0, p1, rng.integers(0, 256, 3).tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # thin arcs: distractors that look a bit like circles
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(5, max(w // 4, 6))), int(rng.integers(5, max(h // 4, 6))))
        start = float(rng.uniform(0, 360))
        cv2.ellipse(
            img,
            centre,
            axes,
            float(rng.uniform(0, 180)),
            start,
            start + float(rng.uniform(60, 300)),
            rng.integers(0, 256, 3).tolist(),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
        )
    return img


def _object_colour(rng: np.random.Generator, bg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A fill colour; 15% of objects get a low-contrast colour close to the background under them."""
    if rng.random() < 0.15:
        local = bg[mask].reshape(-1, 3).mean(0)
        offset = rng.uniform(18, 40, 3) * rng.choice([-1, 1], 3)
        return np.clip(local + offset, 0, 255)
    return rng.uniform(0, 255, 3)


def _sample_extent(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Object extent in pixels: half log-uniform (many small objects), half uniform (enough large ones)."""
    if rng.random() < 0.5:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def _place_object(
    rng: np.random.Generator,
    h: int,
    w: int,
    masks: list[np.ndarray],
    min_visible: float,
    tries: int = 20,
    kinds: Sequence[str] = CLASSES,
    kind_probs: np.ndarray | None = None,
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """Sample a shape (of one of ``kinds``, drawn with ``kind_probs``, default uniform) that fits in the image,
    overlaps only larger earlier shapes, and hides at most ``1 - min_visible`` of any of them.
    Returns (kind, polygon [K,2], mask [h,w]) or None."""
    max_extent = 0.45 * min(h, w)
    for _ in range(tries):
        kind = kinds[int(rng.integers(len(kinds)) if kind_probs is None else rng.choice(len(kinds), p=kind_probs))]
        extent = _sample_extent(rng, MIN_OBJECT_PX, max_extent)
        pts = _unit_shape(kind, rng, extent / 2)
        lo, hi = pts.min(0), pts.max(0)
        span = hi - lo
        if span[0] >= w - 2 or span[1] >= h - 2:
            continue
        offset = np.array([rng.uniform(1 - lo[0], w - 1 - hi[0]), rng.uniform(1 - lo[1], h - 1 - hi[1])])
        poly = np.round(pts + offset, 2)
        mask = rasterize_polygon(poly, h, w)
        if mask.sum() < 16:
            continue
        area = mask.sum()
        if any(m.sum() < area and (m & mask).any() for m in masks):
            continue  # only a smaller (or equal) shape may lie on an earlier one: see render_image
        covered = mask.copy()
        ok = True
        for i in range(len(masks) - 1, -1, -1):  # visible part of shape i after everything drawn above it
            visible = masks[i] & ~covered
            if visible.sum() < min_visible * masks[i].sum():
                ok = False
                break
            covered |= masks[i]
        if ok:
            return kind, poly, mask
    return None


def render_image(
    rng: np.random.Generator,
    size: tuple[int, int] = (320, 320),
    num_objects: int | None = None,
    max_objects: int = 6,
    min_visible: float = 0.75,
    noise_std: tuple[float, float] = (2.0, 10.0),
    kinds: Sequence[str] | None = None,
    class_weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Draw one shapes image with ``num_objects`` shapes (default: uniform in 1..max_objects).

    A shape that cannot be placed without hiding more than ``1 - min_visible`` of an earlier one is
    dropped, so an image may hold fewer shapes (never fewer than one when ``num_objects >= 1``).
    A shape only ever lies on top of larger ones, so painting the masks largest-first (the COCO
    dataset's semantic rule) and painting them in drawing order give the same semantic map.
    ``noise_std`` bounds the per-image Gaussian pixel noise. ``kinds`` limits the shapes drawn to these
    classes (default: all of ``CLASSES``, the draws of the shapes data); ``class_weights`` (one per kind,
    >= 0) makes some drawn more often than others (default: all alike).

    Returns: (image uint8 [H,W,3] RGB, objects in drawing order, each a dict with ``kind``,
    ``category_id``, ``label`` (0..C-1), ``polygon`` float [K,2] and ``mask`` bool [H,W] (full polygon)).
    """
    h, w = size
    image = _background(rng, h, w).astype(np.float32)
    bg = image.copy()
    n = int(rng.integers(1, max_objects + 1)) if num_objects is None else num_objects
    kinds = CLASSES if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in CLASSES]
    if unknown or not kinds:
        raise ValueError(f"kinds must be among {CLASSES}, got {list(kinds)}")
    probs = None
    if class_weights is not None:
        weights = np.asarray(class_weights, dtype=np.float64)
        if weights.shape != (len(kinds),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"class_weights must be {len(kinds)} numbers >= 0, not all 0; got {list(class_weights)}")
        probs = weights / weights.sum()
    objects: list[dict] = []
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n):
        placed = _place_object(rng, h, w, [o["mask"] for o in objects], min_visible, kinds=kinds, kind_probs=probs)
        if placed is None:
            continue
        kind, poly, mask = placed
        colour = _object_colour(rng, bg, mask)
        g = rng.normal(0, 1, 2) / max(h, w)  # gentle linear shading across the shape
        cx, cy = poly.mean(0)
        shade = 1.0 + 0.15 * np.tanh(4 * (g[0] * (xx[mask] - cx) + g[1] * (yy[mask] - cy)))
        image[mask] = np.clip(colour[None] * shade[:, None], 0, 255)
        label = CLASSES.index(kind)
        objects.append(
            {"kind": kind, "label": label, "category_id": CATEGORY_IDS[label], "polygon": poly, "mask": mask}
        )
    image += rng.normal(0, rng.uniform(*noise_std), image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), objects


def semantic_map(objects: Sequence[dict], h: int, w: int) -> np.ndarray:
    """Modal semantic map uint8 [h,w]: 0 = background, 1..C = class of the top-most shape."""
    sem = np.zeros((h, w), np.uint8)
    for o in objects:
        sem[o["mask"]] = o["label"] + 1
    return sem


def _annotation(obj: dict, ann_id: int, image_id: int) -> dict[str, Any]:
    """COCO annotation of one shape: bbox/area from the rasterised polygon (pycocotools)."""
    rle = mask_utils.encode(np.asfortranarray(obj["mask"].astype(np.uint8)))
    x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": obj["category_id"],
        "bbox": [x, y, bw, bh],
        "area": float(mask_utils.area(rle)),
        "iscrowd": 0,
        "segmentation": [[float(v) for v in obj["polygon"].reshape(-1)]],
    }


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"could not encode {path}")
    _write_atomic(path, buf.tobytes())


def _make_split(
    root: Path, split: str, num: int, seed: int, size: tuple[int, int], progress: bool, **render_kw: Any
) -> dict[str, Any]:
    """Write one split's images and semantic maps; return its COCO dict (not yet written)."""
    h, w = size
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "sem" / split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    n_empty = int(round(render_kw.pop("empty_fraction") * num))
    empty = set(np.random.default_rng([seed, SPLITS[split], 2**31]).permutation(num)[:n_empty].tolist())
    indices = range(num)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"shapes {split}", unit="img")
    for i in indices:
        rng = np.random.default_rng([seed, SPLITS[split], i])
        image, objects = render_image(rng, size, 0 if i in empty else None, **render_kw)
        image_id, name = i + 1, f"{i + 1:06d}.png"
        _write_png(root / split / name, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_png(root / "sem" / split / name, semantic_map(objects, h, w))
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for o in objects:
            anns.append(_annotation(o, len(anns) + 1, image_id))
    categories = [{"id": cid, "name": n, "supercategory": "shape"} for cid, n in zip(CATEGORY_IDS, CLASSES)]
    info = {"description": f"detkit synthetic shapes ({split})", "version": "1", "seed": seed, "size": [h, w]}
    return {"info": info, "licenses": [], "images": images, "annotations": anns, "categories": categories}


def make_shapes(
    out_dir: str | os.PathLike,
    num_train: int = 128,
    num_val: int = 32,
    seed: int = 0,
    size: tuple[int, int] = (320, 320),
    max_objects: int = 6,
    empty_fraction: float = 0.1,
    min_visible: float = 0.75,
    progress: bool = False,
    train_class_weights: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Write the shapes dataset under ``out_dir``; the same arguments give the same bytes.

    ``round(empty_fraction * n)`` images of each split have no shapes; the others have 1..max_objects.
    ``train_class_weights`` (one per class of ``CLASSES``) draws the training split's shapes with these
    relative frequencies, e.g. ``[1, 1, 1, 0.1]`` for stars 10x rarer (an imbalanced set); the validation
    split stays balanced.

    Layout: ``train/``, ``val/`` (PNG images), ``train.json``, ``val.json`` (COCO), ``classes.txt``,
    ``sem/train/``, ``sem/val/`` (uint8 PNG label maps, 0 = background, 255 = ignore),
    ``sem/classes.txt``.  The two json files are written last (tmp file + rename), so a run that was
    interrupted leaves no ``train.json``/``val.json``.

    Returns: dict of paths: ``root``, ``train_ann_file``, ``val_ann_file``, ``train_img_dir``,
    ``val_img_dir``, ``train_sem_dir``, ``val_sem_dir``, ``classes_file``, ``sem_classes_file``.
    """
    h, w = (int(v) for v in size)
    if min(h, w) < 32:
        raise ValueError(f"shapes image size must be at least 32x32 pixels, got {h}x{w}")
    if num_train < 0 or num_val < 0:
        raise ValueError(f"image counts must be >= 0, got num_train={num_train}, num_val={num_val}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "root": root,
        "train_ann_file": root / "train.json",
        "val_ann_file": root / "val.json",
        "train_img_dir": root / "train",
        "val_img_dir": root / "val",
        "train_sem_dir": root / "sem" / "train",
        "val_sem_dir": root / "sem" / "val",
        "classes_file": root / "classes.txt",
        "sem_classes_file": root / "sem" / "classes.txt",
    }
    for key in ("train_ann_file", "val_ann_file"):  # a stale json must not describe new images
        paths[key].unlink(missing_ok=True)
    if not 0.0 <= empty_fraction <= 1.0 or max_objects < 1 or not 0.0 < min_visible <= 1.0:
        raise ValueError(
            f"need 0 <= empty_fraction <= 1, max_objects >= 1 and 0 < min_visible <= 1; got "
            f"{empty_fraction}, {max_objects}, {min_visible}"
        )
    kw = dict(max_objects=max_objects, empty_fraction=empty_fraction, min_visible=min_visible)
    cocos = {
        "train": _make_split(root, "train", num_train, seed, (h, w), progress, class_weights=train_class_weights, **kw),
        "val": _make_split(root, "val", num_val, seed, (h, w), progress, **kw),
    }
    _write_atomic(paths["classes_file"], ("\n".join(CLASSES) + "\n").encode())
    _write_atomic(paths["sem_classes_file"], ("\n".join(SEM_CLASSES) + "\n").encode())
    for split in ("val", "train"):
        _write_atomic(paths[f"{split}_ann_file"], json.dumps(cocos[split]).encode())
    return paths


def dataset_stats(coco: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """Summary counts of a COCO dict or json file: images, empty images, objects per class, COCO size buckets."""
    if not isinstance(coco, dict):
        coco = json.loads(Path(coco).read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    per_class = {n: 0 for n in names.values()}
    buckets = {"small": 0, "medium": 0, "large": 0}
    with_objects = set()
    for a in coco["annotations"]:
        per_class[names[a["category_id"]]] += 1
        area = a["area"]
        buckets["small" if area < 32**2 else "medium" if area < 96**2 else "large"] += 1
        with_objects.add(a["image_id"])
    n_img = len(coco["images"])
    return {
        "images": n_img,
        "empty_images": n_img - len(with_objects),
        "objects": len(coco["annotations"]),
        "per_class": per_class,
        "sizes": buckets,
    }
