"""Check a dataset (COCO, YOLO, Pascal VOC, classification, a config's): list every problem, summarise the data.

It never modifies the inputs.

Usage: detkit check ANN_FILE IMG_DIR [--no-images] [--masks | --no-masks] [--max-outside F]
       detkit check DATA.yaml [--split train|val|test] [...]                   (Ultralytics YOLO data.yaml)
       detkit check VOC_DIR [--split trainval] [--classes classes.txt] [...]   (Annotations/ ...)
       detkit check --config CONFIG [--split train|val] [--set K=V ...] [...]  (data.<split>)
       detkit check IMG_DIR [--classes TRAIN_DIR|classes.txt] [--no-images]   (class folders)
       detkit check ROOT [--split train|val|test] [--no-images]       (ROOT/train/<class>/..., ROOT/val/...)
A semantic segmentation dataset (a SegFolderDataset: images + label maps) is checked with --config; given as its
two folders or their root (img/ + ann/, JPEGImages/ + SegmentationClass/), the answer is that command.
       detkit check LABELS.csv IMG_DIR [--classes ...] [--no-images]        (file,label rows)
(``python tools/check_dataset.py ...`` in a checkout takes the same arguments.)
A YOLO data.yaml is checked split by split (default: every split it lists; a listed split that cannot be
read, e.g. its folder missing, gets its own report: an error for train / val, a warning for test), a VOC
folder as VOCDataset reads it (default: every XML file in Annotations/), a config's datasets as built with on_error: skip (default: data.train
and data.val); each gets the COCO checks on the records the dataset reads (its own parsing and problems, naming
the label file and line, or the XML file), every image decoded, the masks of polygons, the per-class counts.
A classification dataset (IMG_DIR/<class>/<image>, or a CSV) gets the ImageFolderDataset checks, every image
decoded, the images per class and the class imbalance (a WARNING for a class with under 10 images or under
1/3 of the largest class's). --classes checks a validation split against the training classes. A root of split
folders (ROOT/train/<class>/..., ROOT/val/<class>/..., Ultralytics' layout) is checked split by split (default:
every split), the others against the training split's classes.
Exit status: 0 no errors (warnings allowed), 1 errors found, 2 the dataset cannot be read at all (or a usage
mistake). An error is what training or COCO evaluation refuses (or ``on_error: skip`` leaves out); a
warning trains but is probably a mistake.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Iterator

from detkit.cli.errors import ArgumentParser, UserError, user_errors
from detkit.cli.train import tool_template
from detkit.data.dataset_check import check_dataset
from detkit.data.validate import DatasetError

TOOL = "check_dataset"
SCRIPT = "detkit check"  # how library messages name this tool (see :func:`named_command`)


def command(argv0: str | None = None) -> str:
    """This tool's command as the user ran it: ``detkit check``, or ``python tools/check_dataset.py`` (a script
    of a checkout), decided from ``sys.argv[0]`` as :func:`detkit.cli.train.tool_template` does."""
    template = tool_template(sys.argv[0] if argv0 is None else argv0)
    return template.format("check") if template.startswith("detkit ") else template.format("check_dataset")


@contextlib.contextmanager
def named_command() -> Iterator[None]:
    """Re-raise a DatasetError whose message suggests ``detkit check ...`` with :func:`command` in its place
    (the library cannot tell how the tool was run: from a checkout, ``python tools/check_dataset.py``)."""
    try:
        yield
    except DatasetError as e:
        if SCRIPT not in str(e):
            raise
        raise DatasetError(str(e).replace(SCRIPT, command())) from e


def check_swapped(args: argparse.Namespace) -> None:
    """Refuse ``IMG_DIR ANN_FILE`` (a folder first, then a file): name the command in the right order."""
    if args.ann_file and args.img_dir and os.path.isdir(args.ann_file) and os.path.isfile(args.img_dir):
        raise UserError(
            f"the arguments look swapped: {args.ann_file} is a folder and {args.img_dir} a file; give the "
            f"annotation file first, then the image folder: {command()} {shlex.quote(args.img_dir)} "
            f"{shlex.quote(args.ann_file)}"
        )


def check_two_folders(args: argparse.Namespace) -> None:
    """Refuse ``ANN_FILE IMG_DIR`` given as two folders: for images and label maps named like them (a semantic
    segmentation dataset) with the ``--config`` command that checks them, else with the forms that take folders
    (unless the first holds json files: the COCO reader's message names them)."""
    from detkit.data.folder_layout import seg_check_command

    first, second = args.ann_file, args.img_dir
    if not (first and second and os.path.isdir(first) and os.path.isdir(second)):
        return
    found, order = seg_check_command(first, second), "second folder holds label maps named like the first's"
    if found is None:
        found, order = seg_check_command(second, first), "first folder holds label maps named like the second's"
    if found:  # (the paths only in the command: a message is cut past 600 characters)
        raise UserError(
            f"the {order} images: a semantic segmentation dataset (a SegFolderDataset config, docs/segmentation.md); "
            f"check them with: {found.replace(SCRIPT, command(), 1)}"
        )
    if any(name.lower().endswith(".json") for name in os.listdir(first)):
        return  # a COCO user's slip: the COCO reader's message names the json files in it
    raise UserError(
        f"{first} is a folder, not a COCO annotation file: give the json file, then its image folder; a semantic "
        f"segmentation dataset (a folder of images and one of label maps) is checked through a config, "
        f"{command()} --config CONFIG (data.train a SegFolderDataset, docs/segmentation.md), or give the folder that "
        f"holds both (img/ and ann/, JPEGImages/ and SegmentationClass/, ...) for the command to run"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "ann_file",
        nargs="?",
        help="COCO annotation json, a YOLO data.yaml, a VOC folder, a CSV of file,label rows, or a folder of "
        "class folders (none with --config)",
    )
    parser.add_argument(
        "img_dir", nargs="?", help="folder that the images' file_name are relative to (COCO json and CSV only)"
    )
    parser.add_argument("--config", help="check the datasets this config describes (data.train, data.val)")
    parser.add_argument("--set", nargs="*", default=[], metavar="K=V", help="--config: config overrides")
    parser.add_argument(
        "--split",
        help="data.yaml: train, val or test (default: every split it lists); VOC: an ImageSets/Main file "
        "(default: every XML file); --config: train, val or test (default: every data.<split> it has); "
        "ROOT/<split>/<class>/...: a split folder (default: every one)",
    )
    parser.add_argument(
        "--classes",
        help="classification: the training classes (their img_dir, or classes.txt), to check a validation split; "
        "VOC: the class names file (default: the XML names, sorted)",
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
    args = parser.parse_args(argv)
    if (args.config is None) == (args.ann_file is None):
        parser.error("give a dataset (ANN_FILE [IMG_DIR], a data.yaml, a folder) or --config CONFIG, not both")
    if args.set and args.config is None:
        parser.error("--set changes the config of --config; give --config CONFIG")
    return args


def dataset_format(args: argparse.Namespace) -> str:
    """``'config'``, ``'yolo'`` (a .yaml), ``'voc'`` (a folder with Annotations/), ``'folder'`` (classification:
    one folder, a CSV, or --classes) or ``'coco'`` (a json and its image folder)."""
    from detkit.data.format_check import is_voc_root

    path = args.ann_file
    if args.config is not None:
        return "config"
    if path.lower().endswith((".yaml", ".yml")):
        return "yolo"
    if os.path.isdir(path) and is_voc_root(path):
        return "voc"
    if args.img_dir is None or path.lower().endswith(".csv") or args.classes is not None:
        return "folder"
    return "coco"


def check_usage(args: argparse.Namespace, kind: str) -> None:
    """Refuse options that the dataset's format does not take, naming the format."""
    what = {"yolo": "a YOLO data.yaml", "voc": "a VOC folder", "config": "--config"}.get(kind)
    if kind in ("yolo", "voc", "config") and args.img_dir is not None:
        where = "the yaml's train/val folders" if kind == "yolo" else "JPEGImages/" if kind == "voc" else "the config"
        raise UserError(f"{what} takes no IMG_DIR (the images are found through {where}); remove {args.img_dir}")
    if kind in ("yolo", "config") and args.classes is not None:
        raise UserError(f"--classes does not apply to {what}: the class names come from its own names")
    if kind in ("coco", "folder") and args.split is not None and not is_split_root(args):
        raise UserError(
            "--split applies to a YOLO data.yaml, a VOC folder, a folder of split folders (ROOT/train/<class>/...) "
            "or --config; a COCO json is one split"
        )
    if kind == "folder" and os.path.isdir(args.ann_file) and args.img_dir is None:
        from detkit.data.format_check import voc_roots_below

        roots = voc_roots_below(args.ann_file)
        if not any(entry.is_dir() for entry in os.scandir(args.ann_file)):
            raise UserError(
                f"{args.ann_file} has no class sub-folders and is no VOC folder (Annotations/, JPEGImages/): lay it out "
                f"as {args.ann_file}/<class>/<image>, or give a VOC folder, a data.yaml, or a COCO json and its images"
            )
        if roots:
            raise UserError(
                f"{args.ann_file} holds VOC folders ({', '.join(roots)}), not class folders; give one of them: "
                f"{command()} {shlex.quote(os.path.join(args.ann_file, roots[0]))}"
            )


def is_split_root(args: argparse.Namespace) -> bool:
    """True when the one folder given is a split root: ``ROOT/train/<class>/...``, ``ROOT/val/<class>/...``."""
    from detkit.data.folder_layout import split_folders

    return args.img_dir is None and os.path.isdir(args.ann_file) and bool(split_folders(args.ann_file))


def folder_reports(args: argparse.Namespace, progress: bool) -> list:
    """The reports of a classification dataset: one per split of a split root (the others checked against the
    training split's classes), else one of the class folders or the CSV."""
    from detkit.data.folder_check import check_folder_args, check_image_folder, check_split_root

    read_images = not args.no_images
    if is_split_root(args):
        return check_split_root(args.ann_file, args.split, args.classes, read_images, progress)
    img_dir, csv = (args.ann_file, None) if args.img_dir is None else (args.img_dir, args.ann_file)
    check_folder_args(args.ann_file, args.img_dir)
    return [check_image_folder(img_dir, csv, args.classes, read_images, progress)]


def format_reports(args: argparse.Namespace, kind: str, options: dict) -> list:
    """The reports of a YOLO data.yaml (one per split), a VOC folder or a config's datasets."""
    from detkit.data import format_check

    if kind == "yolo":
        return format_check.check_yolo(args.ann_file, [args.split] if args.split else None, **options)
    if kind == "voc":
        return [format_check.check_voc(args.ann_file, args.split, args.classes, **options)]
    from detkit.cli.inputs import config_arg

    cfg = config_arg(args.config, args.set)
    splits = [args.split] if args.split else None
    return format_check.check_config_data(cfg, args.config, splits, **options)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the check of the dataset's format (:func:`detkit.data.dataset_check.check_dataset`,
    :mod:`detkit.data.format_check`, :func:`detkit.data.folder_check.check_image_folder`), print the reports."""
    args = parse_args(argv)
    progress = sys.stderr.isatty()
    options = {"read_images": not args.no_images, "max_outside": args.max_outside, "masks": args.masks}
    with user_errors(TOOL, extra=(KeyError, TypeError, ValueError) if args.config else ()), named_command():
        kind = dataset_format(args)
        check_usage(args, kind)
        check_swapped(args)
        check_two_folders(args)
        if kind == "folder":
            reports = folder_reports(args, progress)
        elif kind == "coco":
            reports = [check_dataset(args.ann_file, args.img_dir, progress=progress, **options)]
        else:
            reports = format_reports(args, kind, {**options, "progress": progress})
    print("\n\n".join(report.format() for report in reports))
    return 1 if any(report.errors for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
