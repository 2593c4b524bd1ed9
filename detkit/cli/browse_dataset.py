"""Draw a config's dataset ground truth (boxes, masks, semantic maps), raw or after its pipeline.

python tools/browse_dataset.py CONFIG [--split train|val] [--raw] [--out-dir DIR] [--num N]
                               [--contact-sheet] [--shuffle] [--seed S] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detkit.cli.errors import ArgumentParser, UserError, run_tool, user_errors
from detkit.cli.inputs import config_arg, config_data_paths, out_dir_arg

TOOL = "browse_dataset"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    if args.num <= 0:
        ap.error(f"--num must be > 0, got {args.num}")
    if args.cell < 32:
        ap.error(f"--cell must be >= 32, got {args.cell}")
    return args


def draw_samples(cfg: dict, args: argparse.Namespace) -> list[tuple[str, object]]:
    """(caption, RGB image) of the chosen samples, with a progress bar on a terminal."""
    import numpy as np
    from tqdm import tqdm

    from detkit.analysis.browse import build_browse_dataset, iter_drawn

    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building data.<split>: input errors
        dataset = build_browse_dataset(cfg, args.split, args.raw)
    n = len(dataset)
    order = np.random.default_rng(args.seed).permutation(n) if args.shuffle else np.arange(n)
    chosen = order[: args.num]
    drawn = iter_drawn(dataset, chosen, args.seed)
    bar = tqdm(drawn, total=len(chosen), desc="drawing", unit="sample", disable=None)
    return [(f"#{i} id {image_id}", img) for i, image_id, img in bar]


def run(args: argparse.Namespace) -> int:
    """Check the arguments, draw the samples, write them."""
    import cv2

    from detkit.analysis.browse import contact_sheet
    from detkit.utils.files import atomic_write

    out_dir = out_dir_arg(args.out_dir or f"outputs/browse_{args.split}", "--out-dir")
    cfg = config_arg(args.config, args.set)
    out_dir_arg(out_dir, "--out-dir", config_data_paths(cfg))  # never among the dataset's files
    drawn = draw_samples(cfg, args)
    if not drawn:
        raise UserError(
            f"data.{args.split} of {args.config} gave no readable sample (empty, or every image unreadable)"
        )

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


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 drawn, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
