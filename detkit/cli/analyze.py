"""Analyse COCO-format predictions against a ground truth: per-class AP, PR curves, confusion matrix,
TIDE-style error breakdown, worst/best images (docs/analysis.md).

    python tools/analyze.py GT_JSON PREDICTIONS_JSON --out-dir DIR [--img-dir DIR] [--iou-type bbox|segm]
                            [--score-thr T] [--iou-thr F] [--num-images N] [--no-tide]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt_json", help="ground-truth COCO annotation file")
    ap.add_argument("predictions", help="COCO results json (e.g. predictions.json of tools/infer.py)")
    ap.add_argument("--out-dir", required=True, help="folder for the CSV / PNG / JSON outputs")
    ap.add_argument("--img-dir", default=None, help="image folder: draw the worst and best images")
    ap.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox")
    ap.add_argument("--score-thr", type=float, default=0.3, help="confusion matrix / per-image score threshold")
    ap.add_argument("--iou-thr", type=float, default=0.5, help="confusion matrix and error breakdown IoU threshold")
    ap.add_argument("--num-images", type=int, default=8, help="worst and best images to draw (each)")
    ap.add_argument("--no-tide", action="store_true", help="skip the error breakdown (re-runs COCOeval up to 9 times)")
    args = ap.parse_args(argv)
    if not 0.0 < args.iou_thr <= 1.0 or args.num_images < 0:
        print("analyze.py: error: --iou-thr must be in (0, 1] and --num-images >= 0", file=sys.stderr)
        return 2

    import warnings

    from detkit.analysis import analyze
    from detkit.analysis.errors import ERROR_TYPES, ORACLES

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = analyze(
                args.gt_json,
                args.predictions,
                args.out_dir,
                args.iou_type,
                args.score_thr,
                args.iou_thr,
                args.img_dir,
                args.num_images,
                tide=not args.no_tide,
            )
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"analyze.py: error: {e}", file=sys.stderr)
        return 2
    t = args.iou_type
    m = out["metrics"]
    print(
        f"{t}: AP {m[f'{t}/AP']:.4f}  AP50 {m[f'{t}/AP50']:.4f}  AP75 {m[f'{t}/AP75']:.4f}  "
        f"APs {m[f'{t}/APs']:.4f}  APm {m[f'{t}/APm']:.4f}  APl {m[f'{t}/APl']:.4f}"
    )
    print(out["table"])
    cm = out["confusion"]
    print(
        f"\nconfusion matrix (score >= {args.score_thr:g}, IoU >= {args.iou_thr:g}): {cm.num_gt} ground truths "
        f"+ {cm.num_unmatched_predictions} unmatched predictions = {int(cm.matrix.sum())} counts "
        f"({cm.num_ignored_predictions} predictions on crowd regions ignored)"
    )
    err = out["errors"]
    if err is not None:
        print(f"\nerror breakdown at IoU {err.iou_thr:g} (AP {100 * err.ap:.1f}): AP points gained if fixed")
        for k in ERROR_TYPES + ORACLES:
            print(f"  {k:<16s} {100 * err.delta_ap[k]:6.2f}   (n={err.counts[k]})")
    print(f"\n{len(out['files'])} files written to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
