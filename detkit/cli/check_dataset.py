"""Check a COCO-format dataset: list every problem and summarise it; never modifies the inputs.

Usage: python tools/check_dataset.py ANN_FILE IMG_DIR [--no-images] [--max-outside F]
Exit status: 0 no errors (warnings allowed), 1 errors found, 2 the json or folder cannot be read.
"""

from __future__ import annotations

import argparse
import sys

from detkit.data.validate import DatasetError, check_dataset


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run :func:`detkit.data.validate.check_dataset`, print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ann_file", help="COCO annotation json")
    parser.add_argument("img_dir", help="folder that the images' file_name are relative to")
    parser.add_argument(
        "--no-images", action="store_true", help="skip decoding every image (faster; no unreadable/size checks)"
    )
    parser.add_argument(
        "--max-outside",
        type=float,
        default=0.1,
        help="fraction of the image size a box may extend outside it (default 0.1)",
    )
    args = parser.parse_args(argv)
    try:
        report = check_dataset(
            args.ann_file, args.img_dir, read_images=not args.no_images, max_outside=args.max_outside
        )
    except DatasetError as e:
        print(f"check_dataset: error: {e}", file=sys.stderr)
        return 2
    print(report.format())
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
