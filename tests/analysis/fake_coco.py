"""Hand-made COCO ground truths and results for the analysis tests."""

from __future__ import annotations

import numpy as np


def perturb(gt: dict, seed: int = 0) -> list[dict]:
    """COCO results from the ground truth with seeded noise: jittered boxes, some relabelled, dropped,
    duplicated, and a few background boxes."""
    rng = np.random.default_rng(seed)
    cats = sorted(c["id"] for c in gt["categories"])
    out = []
    for a in gt["annotations"]:
        u = rng.random()
        if u < 0.1:
            continue  # missed
        x, y, w, h = a["bbox"]
        j = rng.normal(0, 0.08, 4) * [w, h, w, h]
        cat = a["category_id"] if u < 0.85 else int(rng.choice([c for c in cats if c != a["category_id"]]))
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": cat,
                "bbox": [x + j[0], y + j[1], w + j[2], h + j[3]],
                "score": float(rng.uniform(0.3, 1.0)),
            }
        )
        if rng.random() < 0.15:  # duplicate
            out.append({**out[-1], "score": float(rng.uniform(0.05, 0.5))})
    for im in gt["images"]:
        for _ in range(int(rng.integers(0, 2))):
            x, y = rng.uniform(0, im["width"] - 20), rng.uniform(0, im["height"] - 20)
            out.append(
                {
                    "image_id": im["id"],
                    "category_id": int(rng.choice(cats)),
                    "bbox": [x, y, 15.0, 15.0],
                    "score": float(rng.uniform(0.0, 0.7)),
                }
            )
    return out


def make_gt(boxes_per_image: dict[int, list[tuple]], num_cats: int = 3, size: int = 100) -> dict:
    """A COCO dict: ``{image_id: [(category_id, x, y, w, h[, iscrowd]), ...]}``, categories 1..num_cats."""
    anns = []
    for img_id, boxes in boxes_per_image.items():
        for b in boxes:
            cat, x, y, w, h = b[:5]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": float(w * h),
                    "iscrowd": int(b[5]) if len(b) > 5 else 0,
                }
            )
    return {
        "images": [{"id": i, "width": size, "height": size, "file_name": f"{i}.png"} for i in boxes_per_image],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, num_cats + 1)],
    }


def det(img_id: int, cat: int, x: float, y: float, w: float, h: float, score: float = 0.9) -> dict:
    """One COCO result record."""
    return {"image_id": img_id, "category_id": cat, "bbox": [x, y, w, h], "score": score}


def segm_results(gt: dict, seed: int = 0) -> list[dict]:
    """Mask results from the ground-truth polygons, shifted by a few pixels, some relabelled (seeded)."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cats = sorted(c["id"] for c in gt["categories"])
    out = []
    for a in gt["annotations"]:
        h, w = sizes[a["image_id"]]
        m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w)))
        m = np.roll(m, tuple(int(v) for v in rng.integers(-2, 3, 2)), axis=(0, 1))
        rle = mask_utils.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode()
        cat = a["category_id"] if rng.random() < 0.8 else int(rng.choice(cats))
        out.append(
            {"image_id": a["image_id"], "category_id": cat, "segmentation": rle, "score": float(rng.uniform(0.2, 1.0))}
        )
    return out
