"""Draw a config's dataset ground truth (boxes, masks, semantic maps), raw or after its pipeline.

python tools/browse_dataset.py CONFIG [--split train|val] [--raw] [--out-dir DIR] [--num N]
                               [--contact-sheet] [--shuffle] [--seed S] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument("--raw", action="store_true", help="the images as stored, without the pipeline")
    ap.add_argument("--out-dir", default=None, help="default: outputs/browse_<split>")
    ap.add_argument("--num", type=int, default=16, help="number of samples (default 16)")
    ap.add_argument("--contact-sheet", action="store_true", help="one contact_sheet.jpg instead of one file each")
    ap.add_argument("--cell", type=int, default=256, help="contact sheet cell size in pixels")
    ap.add_argument("--shuffle", action="store_true", help="random samples (by --seed) instead of the first N")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample choice and of random transforms")
    ap.add_argument("--set", nargs="*", default=[], metavar="K=V", help="config overrides")
    args = ap.parse_args(argv)
    if args.num <= 0 or args.cell < 32:
        print("browse_dataset.py: error: --num must be > 0 and --cell >= 32", file=sys.stderr)
        return 2

    import cv2
    import numpy as np

    from detkit.analysis.browse import build_browse_dataset, contact_sheet, iter_drawn
    from detkit.config import load_config
    from detkit.utils.files import atomic_write

    out_dir = Path(args.out_dir or f"outputs/browse_{args.split}")
    try:
        cfg = load_config(args.config, args.set)
        dataset = build_browse_dataset(cfg, args.split, args.raw)
        n = len(dataset)
        order = np.random.default_rng(args.seed).permutation(n) if args.shuffle else np.arange(n)
        drawn = [(f"#{i} id {image_id}", img) for i, image_id, img in iter_drawn(dataset, order[: args.num], args.seed)]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"browse_dataset.py: error: {e}", file=sys.stderr)
        return 2
    if not drawn:
        print(f"browse_dataset.py: error: data.{args.split} gave no readable sample", file=sys.stderr)
        return 2

    def write(path: Path, rgb) -> None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise OSError(f"could not encode {path}")
        atomic_write(path, lambda f: f.write(buf.tobytes()))

    if args.contact_sheet:
        write(out_dir / "contact_sheet.jpg", contact_sheet(drawn, args.cell))
    else:
        for k, (caption, img) in enumerate(drawn):
            write(out_dir / f"{k:03d}_{caption.split()[-1]}.jpg", img)
    mode = "raw" if args.raw else "after the pipeline"
    print(
        f"{len(drawn)} samples of data.{args.split} ({mode}) drawn -> "
        f"{out_dir / 'contact_sheet.jpg' if args.contact_sheet else out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
