"""Recall of whole-image vs tiled inference on a large synthetic shapes image (docs/inference.md).

    python tools/eval_tiling.py CONFIG CHECKPOINT [--size 2000,3000] [--patch 250] [--tile 320,320]
                                [--tile-overlap 0.2] [--score-thr 0.3] [--iou 0.5] [--seed 0]
                                [--device D] [--batch-size B] [--out FILE.json] [--save-dir DIR]

CONFIG may be '-' for the config stored in the checkpoint. The image is a mosaic of shapes images
(patch x patch each), so its objects have the training data's sizes; a whole-image pass shrinks them
by the config's test resize. Prints a table and writes the figures as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _hw(text: str) -> tuple[int, int]:
    parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--size", type=_hw, default=(2000, 3000), help="image H,W (default 2000,3000)")
    ap.add_argument("--patch", type=int, default=250, help="side of each shapes patch (training scale)")
    ap.add_argument("--tile", default="320,320", help="tile H,W")
    ap.add_argument("--tile-overlap", type=float, default=0.2)
    ap.add_argument("--score-thr", type=float, default=0.3, help="detections counted from this score")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU for a detection to match a ground-truth box")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--out", help="write the figures to this JSON file")
    ap.add_argument("--save-dir", help="write the image and the drawn predictions here")
    args = ap.parse_args(argv)

    import detkit
    from detkit.benchmark.tiling_recall import compare_tiling, large_shapes_image
    from detkit.inference.tiling import parse_tile

    try:
        tile = parse_tile(args.tile, overlap=args.tile_overlap)
        model = detkit.init_model(None if args.config == "-" else args.config, args.checkpoint, device=args.device)
        image, boxes, labels = large_shapes_image(args.seed, args.size, args.patch)
    except (OSError, ValueError, KeyError) as e:
        print(f"eval_tiling.py: error: {e}", file=sys.stderr)
        return 2
    runs = compare_tiling(model, image, boxes, labels, tile, args.score_thr, args.iou, args.batch_size)
    print(
        f"image {image.shape[1]}x{image.shape[0]}, {len(boxes)} objects, tiles {tile.size[0]}x{tile.size[1]} "
        f"overlap {tile.overlap}, score >= {args.score_thr}, IoU >= {args.iou}"
    )
    print(f"{'pass':<22} {'recall':>7} {'precision':>9} {'matched':>8} {'dets':>6} {'seconds':>8}")
    for name, r in runs.items():
        print(
            f"{name:<22} {r['recall']:>7.3f} {r['precision']:>9.3f} {r['matched']:>8d} {r['num_det']:>6d} "
            f"{r['seconds']:>8.1f}"
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "image_size": list(image.shape[:2]),
                    "num_objects": len(boxes),
                    "tile": list(tile.size),
                    "overlap": tile.overlap,
                    "score_thr": args.score_thr,
                    "iou": args.iou,
                    "runs": runs,
                },
                indent=2,
            )
        )
    if args.save_dir:
        import cv2

        from detkit.visualization import draw_prediction

        out = Path(args.save_dir)
        out.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / "large.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        pred = detkit.predict(model, image, score_thr=args.score_thr, batch_size=args.batch_size, tile=tile)
        cv2.imwrite(
            str(out / "large_tiled.jpg"),
            cv2.cvtColor(draw_prediction(image, pred, model.class_names), cv2.COLOR_RGB2BGR),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
