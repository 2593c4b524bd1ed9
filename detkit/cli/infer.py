"""Run a detector or segmentor on images, folders, globs and videos; write drawings and predictions.

    python tools/infer.py CONFIG CHECKPOINT INPUT... [--out-dir DIR] [--score-thr T] [--device D]
                          [--batch-size B] [--no-draw] [--draw-thr T]
                          [--tile H,W [--tile-overlap F] [--tile-whole-image]]

CONFIG may be '-' to use the config stored in the checkpoint. Outputs under --out-dir: drawn images
(<stem>.jpg) and videos (<stem>.mp4 / .avi), predictions.json (COCO results, masks as RLE) and
images.json (image_id -> file, frame); for semantic models <stem>_labels.png and <stem>_sem.png.
Unreadable inputs are reported and skipped. See docs/inference.md.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="config file, or '-' for the config stored in the checkpoint")
    ap.add_argument("checkpoint")
    ap.add_argument("inputs", nargs="+", help="image or video files, folders (recursive) or glob patterns")
    ap.add_argument("--out-dir", default="outputs/infer")
    ap.add_argument("--score-thr", type=float, default=None, help="default: the config's test threshold")
    ap.add_argument("--draw-thr", type=float, default=0.3, help="score threshold for drawing")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--batch-size", type=int, default=1, help="images, frames or tiles per forward pass")
    ap.add_argument("--no-draw", action="store_true", help="write only the predictions (and label maps)")
    ap.add_argument("--tile", metavar="H,W", default=None, help="tiled inference with H x W tiles (large images)")
    ap.add_argument("--tile-overlap", type=float, default=0.2, help="tile overlap, a fraction of the tile size")
    ap.add_argument("--tile-whole-image", action="store_true", help="add a whole-image pass to the tiles")
    args = ap.parse_args(argv)
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")

    import detkit
    from detkit.inference.files import collect_inputs, format_summary, run_inference
    from detkit.inference.tiling import parse_tile

    try:
        tile = parse_tile(args.tile, overlap=args.tile_overlap, whole_image=args.tile_whole_image)
        paths = collect_inputs(args.inputs)
        model = detkit.init_model(None if args.config == "-" else args.config, args.checkpoint, device=args.device)
        summary = run_inference(
            model,
            paths,
            args.out_dir,
            score_thr=args.score_thr,
            batch_size=args.batch_size,
            tile=tile,
            draw=not args.no_draw,
            draw_thr=args.draw_thr,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"infer.py: error: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
