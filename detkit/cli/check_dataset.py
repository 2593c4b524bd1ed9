"""Check a COCO-format or classification dataset: list every problem and summarise it; never modifies the inputs.

Usage: python tools/check_dataset.py ANN_FILE IMG_DIR [--no-images] [--masks | --no-masks] [--max-outside F]
       python tools/check_dataset.py IMG_DIR [--classes TRAIN_DIR|classes.txt] [--no-images]   (class folders)
       python tools/check_dataset.py LABELS.csv IMG_DIR [--classes ...] [--no-images]        (file,label rows)
A classification dataset (IMG_DIR/<class>/<image>, or a CSV) gets the ImageFolderDataset checks, every image
decoded, the images per class and the class imbalance (a WARNING for a class with under 10 images or under
1/3 of the largest class's). --classes checks a validation split against the training classes.
Exit status: 0 no errors (warnings allowed), 1 errors found, 2 the json or folder cannot be read (or a usage
mistake). An error is what training or COCO evaluation refuses (or ``on_error: skip`` leaves out); a
warning trains but is probably a mistake.
"""

from __future__ import annotations

import argparse
import sys

from detkit.cli.errors import user_errors
from detkit.data.dataset_check import check_dataset


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ann_file", help="COCO annotation json, a CSV of file,label rows, or a folder of class folders")
    parser.add_argument(
        "img_dir", nargs="?", help="folder that the images' file_name are relative to (none for class folders)"
    )
    parser.add_argument(
        "--classes",
        help="classification: the training classes (their img_dir, or classes.txt), to check a validation split",
    )
    parser.add_argument(
        "--no-images", action="store_true", help="skip decoding every image (faster; no unreadable/size checks)"
    )
    masks = parser.add_mutually_exclusive_group()
    masks.add_argument(
        "--masks",
        dest="masks",
        action="store_const",
        const=True,
        default=None,
        help="check the segmentations even if no annotation has one (default: when any has one)",
    )
    masks.add_argument(
        "--no-masks", dest="masks", action="store_const", const=False, help="do not check segmentations (box data)"
    )
    parser.add_argument(
        "--max-outside",
        type=float,
        default=0.1,
        help="fraction of the image size a box or polygon may extend outside it (default 0.1)",
    )
    return parser.parse_args(argv)


def is_classification(args: argparse.Namespace) -> bool:
    """One folder, a CSV, or --classes: a classification dataset; else a COCO json and its image folder."""
    return args.img_dir is None or args.ann_file.lower().endswith(".csv") or args.classes is not None


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run :func:`detkit.data.dataset_check.check_dataset` (COCO) or
    :func:`detkit.data.folder_check.check_image_folder` (classification), print the report."""
    args = parse_args(argv)
    if is_classification(args):
        from detkit.data.folder_check import check_folder_args, check_image_folder

        img_dir, csv = (args.ann_file, None) if args.img_dir is None else (args.img_dir, args.ann_file)
        with user_errors("check_dataset"):
            check_folder_args(args.ann_file, args.img_dir)
            report = check_image_folder(img_dir, csv, args.classes, not args.no_images, sys.stderr.isatty())
        print(report.format())
        return 1 if report.errors else 0
    with user_errors("check_dataset"):
        report = check_dataset(
            args.ann_file,
            args.img_dir,
            read_images=not args.no_images,
            max_outside=args.max_outside,
            masks=args.masks,
            progress=sys.stderr.isatty(),
        )
    print(report.format())
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
