"""Run a detector, segmentor or classifier on images, folders, globs and videos; write drawings and predictions.

    python tools/infer.py CONFIG CHECKPOINT INPUT... [--out-dir DIR] [--score-thr T] [--device D]
                          [--batch-size B] [--no-draw] [--draw-thr T] [--set K=V ...]
                          [--tile H,W [--tile-overlap F] [--tile-whole-image]]
                          [--tta [--tta-scales S,S,...] [--tta-no-flip]] [--tta-merge nms|wbf] [--tta-iou T]
                          [--ensemble CKPT ...]

CONFIG may be '-' to use the config stored in the checkpoint; --set overrides its keys as in tools/eval.py
(e.g. model.head.nms_thr=0.5; --ensemble members keep the config they store). Outputs under --out-dir: drawn images
(<stem>.jpg) and videos (<stem>.mp4 / .avi), predictions.json (COCO results, masks as RLE) and
images.json (image_id -> file, frame); for semantic models <stem>_labels.png and <stem>_sem.png; for
classifiers predictions.csv (file, frame, label_1, score_1, ... label_k, score_k: the top-k classes of the
config's model.topk and their probabilities; drawn: the drawing's name) and <stem>.jpg drawn with the top classes (--score-thr, --draw-thr
and --tile are for detectors). Unreadable inputs are reported and skipped. A progress bar with ETA shows on a terminal; the last line
says how many detections were saved and drawn, and at which thresholds. --tta runs each image at several
scales and mirrored and merges the predictions; --ensemble merges more checkpoints (same classes) with
CHECKPOINT's; neither combines with --tile. --tile takes whole pixels >= 32 and --tile-overlap a fraction in [0, 1);
SAHI's and Ultralytics' option names (--slice_height, --overlap_height_ratio, --imgsz, --conf, iou=, classes=,
save_txt=, ...) are answered with detkit's (or with what infer does instead). A model trained on TiledDataset
tiles run on an image 3x a tile or more without --tile prints a note to add it. See docs/inference.md.
Exit status: 0 done, 2 bad input (config, checkpoint, device, inputs, --out-dir; or no input readable).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detkit.cli.checkpoint_first import checkpoint_first, positionals
from detkit.cli.errors import ArgumentParser, UserError, run_tool, tool_label, user_errors
from detkit.cli.inputs import checkpoint_arg, config_arg, device_arg, out_dir_arg
from detkit.cli.tile_args import add_tile_arguments, check_tile_alone, check_tile_flags, tile_from_args
from detkit.cli.tta_args import add_tta_arguments, check_merge, tta_options

TOOL = "infer"


def add_options(ap: argparse.ArgumentParser) -> None:
    """The options (every argument but CONFIG CHECKPOINT INPUT...)."""
    ap.add_argument("--out-dir", default="outputs/infer")
    ap.add_argument("--score-thr", type=float, default=None, help="default: the config's test threshold")
    ap.add_argument("--draw-thr", type=float, default=None, help="score threshold for drawing (default 0.3)")
    ap.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="override config keys (of CONFIG, or of the config stored in the checkpoint with CONFIG '-'), "
        "e.g. model.head.nms_thr=0.5",
    )
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: cuda when available)")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="compile the model's dense parts with torch.compile (a one-time cost of minutes; docs/benchmarks.md)",
    )
    ap.add_argument("--batch-size", type=int, default=1, help="images, frames or tiles per forward pass")
    ap.add_argument("--no-draw", action="store_true", help="write only the predictions (and label maps)")
    add_tile_arguments(ap)
    add_tta_arguments(ap)


# other tools' option names (as flags or name=value words) -> (whose: possessive, the detkit option answering)
FOREIGN_OPTIONS = {
    "slice_height": ("SAHI's", "tile"),
    "slice_width": ("SAHI's", "tile"),
    "overlap_height_ratio": ("SAHI's", "overlap"),
    "overlap_width_ratio": ("SAHI's", "overlap"),
    "model_confidence_threshold": ("SAHI's", "score"),
    "conf": ("Ultralytics'", "score"),
    "imgsz": ("Ultralytics'", "size"),
    "img_size": ("Ultralytics'", "size"),
    "iou": ("Ultralytics'", "nms"),
    "max_det": ("Ultralytics'", "max_det"),
    "classes": ("Ultralytics'", "classes"),
    "save_txt": ("Ultralytics'", "save_txt"),
    "save_conf": ("Ultralytics'", "save_txt"),
    "save": ("Ultralytics'", "save"),
    "show": ("Ultralytics'", "show"),
    "augment": ("Ultralytics'", "augment"),
    "half": ("Ultralytics'", "half"),
}
SWITCHES = {"save_txt", "save_conf", "save", "show", "augment", "half"}  # on / off: no value after the flag
# the answers that are detkit's option for the foreign one (the others say what detkit does instead)
ANSWERS = {
    "nms": "--set model.head.nms_thr={v} (the NMS IoU of the YOLO configs; R-CNN: model.box_head.nms_thr, YOLO-seg: "
    "model.head.det.nms_thr)",
    "max_det": "--set model.head.max_per_img={v} (R-CNN: model.box_head.max_per_img)",
    "augment": "--tta (each image at several scales and mirrored, the predictions merged)",
}
INSTEAD = {
    "classes": "not offered: infer keeps every class; filter predictions.json by category_id, or in Python keep "
    "torch.isin(result['labels'], torch.tensor(CLASS_IDS)) of detkit.predict's results (detkit track has --classes)",
    "save_txt": "not needed: infer always writes predictions.json (COCO results: image_id, category_id, bbox "
    "[x, y, w, h] in pixels, score) and images.json (image_id -> file), no per-image .txt",
    "save": "not needed: the drawings and predictions.json are always written under --out-dir (--no-draw: no drawings)",
    "show": "not offered: infer opens no window; the drawings are written under --out-dir",
    "half": "not offered: the model runs in float32 (--compile speeds it up; docs/benchmarks.md)",
}


def _foreign_words(argv: list[str]) -> list[tuple[str, str, str, str]]:
    """``(given, whose, answer kind, value)`` for each foreign option in ``argv`` (a flag, ``name=value``, or a bare
    on / off word as Ultralytics takes it: ``save_txt``); ``--tile 640 640`` too."""
    found = []
    for i, word in enumerate(argv):
        name, eq, value = word.lstrip("-").partition("=")
        key = name.replace("-", "_").lower()
        bare = word in SWITCHES and not os.path.exists(word)  # `save_txt` alone: Ultralytics' save_txt=True
        if key in FOREIGN_OPTIONS and (word.startswith("-") or eq or bare):
            if not eq and key not in SWITCHES and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
            whose, kind = FOREIGN_OPTIONS[key]
            found.append((word if eq or not value else f"{word} {value}", whose, kind, value or "N"))
        if word == "--tile":
            nums = [w for w in argv[i + 1 : i + 3] if w.replace(".", "", 1).isdigit()]
            if len(nums) == 2:
                found.append((f"--tile {nums[0]} {nums[1]}", "", "tile2", f"{nums[0]},{nums[1]}"))
    return found


def _foreign_answer(kind: str, values: list[str]) -> str:
    """detkit's option for the foreign options of one ``kind`` given ``values``."""
    if kind == "tile":
        h, w = (values * 2)[:2]
        return f"--tile {h},{w} (tile height and width in one option)"
    if kind == "overlap":
        same = len(set(values)) == 1
        return f"--tile-overlap {values[0]} (one fraction of the tile for both axes{'' if same else ': pick one'})"
    if kind == "score":
        return f"--score-thr {values[0]}"
    if kind in ANSWERS:
        return ANSWERS[kind].format(v=values[0])
    return (
        "the test size is the config's data.val pipeline, e.g. --set \"data.val.pipeline=[{type: LetterBox, size: "
        f'{values[0]}}}]"; for large images with small objects, --tile H,W at the training scale'
    )


def refuse_foreign_options(ap: argparse.ArgumentParser, argv: list[str]) -> None:
    """Answer SAHI's and Ultralytics' option names (``--slice_height 320``, ``imgsz=640``) and ``--tile 640 640``
    with detkit's option, on one line, exit 2 (argparse would say "unrecognized arguments")."""
    if {"-h", "--help"} & set(argv):
        return
    found = _foreign_words(argv)
    answers = []
    for kind in dict.fromkeys(k for _, _, k, _ in found):
        group = [f for f in found if f[2] == kind]
        if kind == "tile2":
            answers.append(f"{group[0][0]}: --tile takes H,W as one word: --tile {group[0][3]}")
            continue
        given = " ".join(g for g, *_ in group)
        whose = group[0][1]
        verb = "are" if len(group) > 1 else "is"
        answer = INSTEAD.get(kind) or f"detkit's: {_foreign_answer(kind, [v for *_, v in group])}"
        answers.append(f"{given} {verb} {whose} {'options' if len(group) > 1 else 'option'}; {answer}")
    if answers:
        ap.error("; ".join(answers))


def set_words(argv: list[str]) -> list[str]:
    """The words that ``--set`` takes in ``argv`` (each up to the next option)."""
    words, taking = [], False
    for word in argv:
        if word == "--" or (word.startswith("-") and word != "-"):
            taking = word == "--set"
        elif taking:
            words.append(word)
    return words


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="config file, or '-' for the config stored in the checkpoint")
    ap.add_argument("checkpoint")
    ap.add_argument("inputs", nargs="+", help="image or video files, folders (recursive) or glob patterns")
    add_options(ap)
    refuse_foreign_options(ap, argv)
    hint = checkpoint_first(TOOL, argv, positionals(add_options, argv), inputs="IMAGES...")
    if hint:
        ap.error(hint)
    stray = [w for w in set_words(argv) if "=" not in w]
    if stray and not {"-h", "--help"} & set(
        argv
    ):  # --set takes every word up to the next option: the inputs given after it land there
        ap.error(
            f"--set takes KEY=VALUE words, and {stray[0]!r} is not one: give CONFIG CHECKPOINT INPUT... before --set"
        )
    args = ap.parse_args(argv)
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")
    for flag, value in (("--score-thr", args.score_thr), ("--draw-thr", args.draw_thr)):
        if value is not None and not 0.0 <= value <= 1.0:
            ap.error(f"{flag} must be in [0, 1], got {value}")
    if args.no_draw and args.draw_thr is not None:
        ap.error(f"--draw-thr {args.draw_thr:g} chooses what is drawn, and --no-draw draws nothing: give one of them")
    check_tile_flags(ap, args)
    args.draw_thr = 0.3 if args.draw_thr is None else args.draw_thr
    return args


def check_classifier_options(model, args: argparse.Namespace) -> None:
    """A classifier has no boxes to tile or to threshold: --tile is an error, --score-thr a note."""
    from detkit.models.detectors.classifier import Classifier

    if not isinstance(model, Classifier):
        return
    if args.tile:
        raise UserError(f"--tile {args.tile}: tiled inference is for detectors; a Classifier classifies whole images")
    if args.score_thr is not None:
        print(
            f"{tool_label(TOOL)}: note: --score-thr is for detectors; a Classifier writes its top-{model.topk} classes"
        )


def _build_model(args: argparse.Namespace, cfg, config, device, views):
    """The model to predict with: the checkpoint's (compiled with --compile), or an Ensemble of it and
    --ensemble's under --tta / --ensemble; a config that does not build is an input error."""
    import detkit

    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        model = detkit.init_model(cfg, args.checkpoint, device=device)
        check_classifier_options(model, args)
        if args.compile:  # weights fixed: frozen into the compiled graphs
            from detkit.models.compile import compile_model

            compile_model(model, freeze=True)
        if views is not None:
            from detkit.inference.ensemble import Ensemble, load_members

            members = [model, *load_members(args.ensemble, config, device)]
            model = Ensemble(members, views, names=[f"checkpoint {c}" for c in (args.checkpoint, *args.ensemble)])
            check_merge(model)
    return model


def trained_tile(cfg: dict | None) -> tuple[int, int] | None:
    """The tile ``(h, w)`` of a config whose data.train is a ``TiledDataset``, else None."""
    from detkit.inference.tile_options import check_tile_size

    train = ((cfg or {}).get("data") or {}).get("train") if isinstance(cfg, dict) else None
    if not isinstance(train, dict) or train.get("type") != "TiledDataset":
        return None
    try:
        return check_tile_size(train.get("tile_size", 640))
    except ValueError:
        return None


def tiles_hint(cfg: dict | None, paths: list[Path], look: int = 20, factor: float = 3.0) -> str | None:
    """The hint to add --tile when the model trained on tiles and an image (of the first ``look``) is ``factor``
    times larger than a tile along a side; None otherwise. Reads image headers only."""
    from PIL import Image

    from detkit.inference.inputs import is_video

    tile = trained_tile(cfg)
    if tile is None:
        return None
    for path in [p for p in paths if not is_video(p)][:look]:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001  (an unreadable image is reported by the run itself)
            continue
        if max(h / tile[0], w / tile[1]) >= factor:
            th, tw = tile
            return (
                f"this model trained on {th}x{tw} tiles (TiledDataset); the image {path.name} is {w}x{h}: add "
                f"--tile {th},{tw} (whole, it is shrunk to the test size and small objects vanish)"
            )
    return None


def refuse_foreign_outputs(out_dir: str, paths: list[Path]) -> None:
    """Refuse an --out-dir holding files of the user's that this run would write over (the result files and the
    drawings, ``detkit.inference.files.output_files``), unless an earlier infer wrote them there (its images.json
    lists its drawings and label maps)."""
    from detkit.inference.files import output_files
    from detkit.utils.output_names import manifest_names, refuse_foreign

    out = Path(out_dir)
    ours = manifest_names(out / "images.json", ("drawn", "labels"))
    if ours == {"images.json"}:  # an images.json of an infer before 'drawn' was recorded: trust it
        return
    ours |= {"predictions.json", "predictions.csv", "classes.txt"} if ours else set()  # written with that images.json
    problem = refuse_foreign(out_dir, output_files(out_dir, paths), ours)
    if problem is not None:
        raise UserError(problem)


def run(args: argparse.Namespace) -> int:
    """Check every argument (the cheap file checks first, before torch loads), build the model, predict."""
    config = None if args.config == "-" else args.config
    checkpoint_arg(args.checkpoint, config)
    cfg = config_arg(args.config, args.set, args.checkpoint, needs=("model",)) if args.set else config
    for extra in args.ensemble:
        checkpoint_arg(extra)
    views = tta_options(args)
    check_tile_alone(args, views)
    tile = tile_from_args(args)
    out_dir_arg(args.out_dir, "--out-dir")
    from detkit.inference.files import InferenceInterrupted, format_summary, run_inference
    from detkit.inference.inputs import collect_inputs

    paths = collect_inputs(args.inputs)
    folders = [Path(p) for p in args.inputs if Path(p).is_dir()]  # searched recursively: outputs inside are read
    out_dir_arg(args.out_dir, "--out-dir", [*paths, *folders])  # next time; outputs must not land on the inputs
    refuse_foreign_outputs(args.out_dir, paths)
    device = device_arg(args.device)
    model = _build_model(args, cfg, config, device, views)
    if tile is None:
        hint = tiles_hint(getattr(model, "cfg", None), paths)
        if hint:
            print(f"{tool_label(TOOL)}: note: {hint}")
    try:
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
    except InferenceInterrupted as stop:  # Ctrl-C: what was done is saved
        summary = stop.summary
    print(format_summary(summary))
    if summary["interrupted"]:
        print(
            f"{tool_label(TOOL)}: stopped by Ctrl-C; the outputs of the inputs done so far are saved above",
            file=sys.stderr,
        )
        return 130
    if summary["skipped"] and not (summary["images"] or summary["frames"]):
        path, reason = summary["skipped"][0]
        raise UserError(f"none of the {len(summary['skipped'])} input(s) could be read (e.g. {path}: {reason})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
