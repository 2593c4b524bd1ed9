"""Run a detector on images or folders; write drawn images and predictions.json (COCO results format).

    python tools/infer.py CONFIG CHECKPOINT INPUT... [--out-dir DIR] [--score-thr T] [--device D]
                          [--batch-size B] [--no-draw]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import _bootstrap  # noqa: F401

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders (recursive) and glob patterns into a sorted list of image paths."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXTS and q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no such file, folder or pattern: {item}")
            out.extend(m for m in matches if m.is_file())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    ap.add_argument("--out-dir", default="outputs/infer")
    ap.add_argument("--score-thr", type=float, default=None, help="default: the config's test threshold")
    ap.add_argument("--draw-thr", type=float, default=0.3, help="score threshold for drawing")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--no-draw", action="store_true")
    args = ap.parse_args(argv)

    import cv2
    from tqdm import tqdm

    import detkit
    from detkit.data.image_io import read_image
    from detkit.evaluation.coco import prediction_to_coco
    from detkit.visualization import draw_prediction

    try:
        paths = collect_inputs(args.inputs)
        model = detkit.init_model(args.config, args.checkpoint, device=args.device)
    except (OSError, ValueError, KeyError) as e:
        print(f"infer.py: error: {e}", file=sys.stderr)
        return 2
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = getattr(model, "cat_ids", None)
    results, failed = [], []
    bar = tqdm(total=len(paths), desc="infer", unit="img")
    for start in range(0, len(paths), args.batch_size):
        chunk = []
        for idx in range(start, min(start + args.batch_size, len(paths))):
            try:
                chunk.append((idx, paths[idx], read_image(paths[idx])))
            except (OSError, ValueError) as e:
                failed.append(str(paths[idx]))
                tqdm.write(f"skipped unreadable input {paths[idx]}: {e}")
        preds = detkit.predict(model, [c[2] for c in chunk], score_thr=args.score_thr,
                               batch_size=args.batch_size) if chunk else []
        for (idx, path, image), pred in zip(chunk, preds):
            recs = prediction_to_coco(idx, pred, cat_ids or list(range(len(model.class_names))))
            for r in recs:
                r["file_name"] = str(path)
            results.extend(recs)
            if not args.no_draw:
                drawn = draw_prediction(image, pred, model.class_names, args.draw_thr)
                cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        bar.update(min(args.batch_size, len(paths) - start))
    bar.close()
    tmp = out_dir / "predictions.json.tmp"
    tmp.write_text(json.dumps(results))
    os.replace(tmp, out_dir / "predictions.json")
    print(f"{len(paths) - len(failed)} images processed, {len(failed)} unreadable skipped, "
          f"{len(results)} detections -> {out_dir}/predictions.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
