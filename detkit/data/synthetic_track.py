"""A synthetic tracking sequence: shapes of the shapes dataset moving at constant velocity over a still scene.

The shapes and the background are drawn by the shapes dataset's own sampler (``detkit.data.synthetic``), so a
detector trained on ``data/shapes`` sees the same kind of objects. Moving shapes come in pairs whose paths
cross in the middle of the sequence (one passes over the other: a test of identity through an overlap), and
a large static shape stands in front of them: the first moving shape passes behind it and is hidden for a
few frames (a test of keeping a lost track). Ground truth follows the MOT Challenge layout.

Layout under ``out_dir``: ``img1/000001.png ...`` (the frames, lossless), ``video.mp4`` (the same frames,
mp4v), ``gt/gt.txt`` (``frame,id,x,y,w,h,consider,class,visibility``: frames from 1, the box in pixels
(the whole shape's box, clipped to the image), ``consider`` 1 when at least ``MIN_VISIBLE`` of the shape is
visible, else 0 (MOT16/17's flag: ignored by :func:`detkit.track.mot_metrics`), ``class`` the shapes category
id, ``visibility`` the visible share of the shape), ``seqinfo.ini``, ``classes.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from detkit.data.synthetic import CATEGORY_IDS, CLASSES, rasterize_polygon, render_image

__all__ = ["FPS", "MIN_VISIBLE", "SIZE", "make_shapes_track", "render_track_sequence"]

MIN_VISIBLE = 0.5  # a ground-truth box counts when at least this share of its shape is visible
SIZE = (320, 320)  # (H, W): the shapes dataset's, so that its detectors see the same scale
FPS = 10.0
LAYOUT = {  # name -> path under out_dir
    "frames": "img1",
    "video": "video.mp4",
    "gt": "gt/gt.txt",
    "seqinfo": "seqinfo.ini",
    "classes_file": "classes.txt",
}
# extents as shares of the image side (at 320 px: 32-64 px, medium shapes, which a small detector finds best)
MOVING_EXTENT = (0.1, 0.2)
OCCLUDER_EXTENT = (0.3, 0.4)  # the shapes sampler draws up to 0.45 of the side


def _sample_shape(rng: np.random.Generator, size: tuple[int, int], extent: tuple[float, float], kinds) -> tuple:
    """A shape of the shapes sampler whose extent is within ``extent`` (shares of the shorter side):
    (kind, polygon [K,2] centred on 0, colour [3])."""
    lo, hi = (share * min(size) for share in extent)
    for _ in range(1000):  # about one draw in three fits
        _, objects = render_image(rng, size, num_objects=1, noise_std=(0.0, 0.0), kinds=kinds)
        poly = objects[0]["polygon"] if objects else np.zeros((1, 2))
        if lo <= np.ptp(poly, axis=0).max() <= hi:
            centre = (poly.max(0) + poly.min(0)) / 2
            return objects[0]["kind"], poly - centre, rng.uniform(0, 255, 3)
    raise RuntimeError(f"the shapes sampler drew no shape of {lo:.0f}-{hi:.0f} px in 1000 tries")


def _contrasting(rng: np.random.Generator, colour: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``colour`` moved away from the mean background colour until they differ by at least 90 (L2 in RGB)."""
    mean = background.reshape(-1, 3).mean(0)
    while np.linalg.norm(colour - mean) < 90:
        colour = rng.uniform(0, 255, 3)
    return colour


def _paths(rng: np.random.Generator, num_moving: int, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    """Start positions [K,2] and velocities [K,2] (px/frame): pairs (0,1), (2,3)... meet in the middle third
    of the sequence at a point of the image's central part, heading in directions at least 100 degrees apart."""
    h, w = size
    starts, vels = np.zeros((num_moving, 2)), np.zeros((num_moving, 2))
    for first in range(0, num_moving, 2):
        meet = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
        when = rng.uniform(num_frames / 3, 2 * num_frames / 3)
        angle = rng.uniform(0, 2 * np.pi)
        for k, a in enumerate((angle, angle + np.deg2rad(rng.uniform(100, 260)))):
            if first + k >= num_moving:
                break
            v = rng.uniform(2.0, 4.0) * np.array([np.cos(a), np.sin(a)])
            starts[first + k], vels[first + k] = meet - v * when, v
    return np.stack([starts, vels], axis=1)  # [K,2 (start, velocity),2 (x, y)]


def _scene(rng: np.random.Generator, num_moving: int, num_frames: int, size: tuple[int, int]) -> tuple:
    """The static background and the objects: dicts with kind, polygon, colour, start, velocity (moving
    ones sorted largest first: a smaller shape passes over a larger one) and the occluder last."""
    background, _ = render_image(rng, size, num_objects=0, noise_std=(0.0, 0.0))
    paths = _paths(rng, num_moving, num_frames, size)
    objects = []
    for k in range(num_moving):
        kind, poly, colour = _sample_shape(rng, size, MOVING_EXTENT, CLASSES)
        colour = _contrasting(rng, colour, background)
        objects.append({"kind": kind, "polygon": poly, "colour": colour, "start": paths[k, 0], "velocity": paths[k, 1]})
    objects.sort(key=lambda o: -float(np.ptp(o["polygon"], axis=0).prod()))
    kind, poly, colour = _sample_shape(rng, size, OCCLUDER_EXTENT, ("rectangle",))
    # in front of the first moving shape's path, two thirds of the way through the sequence
    first = objects[0]
    at = first["start"] + first["velocity"] * (0.8 * num_frames)
    at = np.clip(at, np.array([0.2 * size[1], 0.2 * size[0]]), np.array([0.8 * size[1], 0.8 * size[0]]))
    occluder = {"kind": kind, "polygon": poly, "colour": _contrasting(rng, colour, background), "start": at}
    occluder["velocity"] = np.zeros(2)
    return background, objects + [occluder]


def render_track_sequence(
    seed: int = 0, num_frames: int = 80, num_moving: int = 6, size: tuple[int, int] = (320, 320)
) -> tuple[list[np.ndarray], list[tuple]]:
    """Render the sequence: (frames RGB uint8 [H,W,3], ground-truth rows ``(frame, id, x, y, w, h, consider,
    category_id, visibility)``); ids are 1..num_moving for the moving shapes, num_moving + 1 for the occluder."""
    rng = np.random.default_rng([seed, 20])
    h, w = size
    background, objects = _scene(rng, num_moving, num_frames, size)
    frames, rows = [], []
    for t in range(num_frames):
        image = background.astype(np.float32)
        masks = []
        for o in objects:
            poly = o["polygon"] + o["start"] + o["velocity"] * t
            masks.append(rasterize_polygon(poly, h, w))
            image[masks[-1]] = o["colour"]
        covered = np.zeros((h, w), bool)
        for i in range(len(objects) - 1, -1, -1):  # visible part: not under a shape drawn later
            o = objects[i]
            visible = int((masks[i] & ~covered).sum())
            covered |= masks[i]
            poly = o["polygon"] + o["start"] + o["velocity"] * t
            full = cv2.contourArea(poly.astype(np.float32))
            x0, y0 = np.clip(poly.min(0), 0, [w, h])
            x1, y1 = np.clip(poly.max(0), 0, [w, h])
            if visible == 0 or x1 <= x0 or y1 <= y0:
                continue
            share = min(visible / max(full, 1.0), 1.0)
            cat = CATEGORY_IDS[CLASSES.index(o["kind"])]
            rows.append((t + 1, i + 1, x0, y0, x1 - x0, y1 - y0, int(share >= MIN_VISIBLE), cat, share))
        image += rng.normal(0, 3.0, image.shape).astype(np.float32)
        frames.append(np.clip(np.round(image), 0, 255).astype(np.uint8))
    rows.sort(key=lambda r: (r[0], r[1]))
    return frames, rows


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write video {path} (codec mp4v missing?)")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    os.replace(tmp, path)


def make_shapes_track(
    out_dir: str | os.PathLike, num_frames: int = 80, num_moving: int = 6, *, seed: int = 0, size: tuple = SIZE
) -> dict[str, Path]:
    """Write the tracking sequence under ``out_dir`` (layout in the module docstring); the same arguments give
    the same frames and ground truth; the video runs at ``FPS`` frames per second. Returns paths: ``root``, ``frames`` (img1/), ``video``, ``gt``,
    ``seqinfo``, ``classes_file``."""
    h, w = (int(v) for v in size)
    if min(h, w) < 128 or num_frames < 2 or num_moving < 1:
        raise ValueError(
            f"need a size of at least 128x128, 2 frames and 1 moving shape; got {h}x{w}, {num_frames}, {num_moving}"
        )
    root = Path(out_dir)
    paths = {"root": root, **{name: root / relative for name, relative in LAYOUT.items()}}
    paths["frames"].mkdir(parents=True, exist_ok=True)
    paths["gt"].parent.mkdir(parents=True, exist_ok=True)
    paths["gt"].unlink(missing_ok=True)  # a stale ground truth must not describe new frames
    frames, rows = render_track_sequence(seed, num_frames, num_moving, (h, w))
    for stale in paths["frames"].glob("*.png"):
        stale.unlink()
    for t, frame in enumerate(frames):
        cv2.imwrite(os.fspath(paths["frames"] / f"{t + 1:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    _write_video(paths["video"], frames, FPS)
    paths["classes_file"].write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    paths["seqinfo"].write_text(
        f"[Sequence]\nname=shapes_track\nimDir=img1\nframeRate={FPS:g}\nseqLength={num_frames}\nimWidth={w}\n"
        f"imHeight={h}\nimExt=.png\n",
        encoding="utf-8",
    )
    lines = [f"{f},{i},{x:.2f},{y:.2f},{bw:.2f},{bh:.2f},{c},{cat},{v:.3f}" for f, i, x, y, bw, bh, c, cat, v in rows]
    tmp = paths["gt"].with_name(".gt.txt.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, paths["gt"])
    return paths
