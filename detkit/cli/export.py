"""Export a trained model to ONNX, optionally verified against PyTorch with onnxruntime.

    python tools/export.py CONFIG CHECKPOINT --format onnx --out FILE [--verify] [--verify-images PATH ...]
                           [--image-size H,W] [--batch-size B] [--opset N] [--static] [--max-per-img N]
                           [--no-nms] [--atol A] [--rtol R] [--mask-iou T]

CONFIG may be '-' to use the config stored in the checkpoint. The graph takes ``images`` uint8 [B,3,H,W] (resized
as the config's test pipeline does, padded to the size divisor) and ``image_sizes`` int64 [B,2]; batch and image
size are dynamic unless --static. Faster R-CNN, Mask R-CNN (28x28 masks per detection), YOLO, YOLO-seg (masks at
the input size), classifiers (``scores`` [B,C] probabilities, ``labels`` [B,k] top-k) and semantic segmentors
(``labels`` [B,H,W] per-pixel classes, ``logits`` [B,C,H,W], at the input size; some only with --static: sliding
windows, UPerNet) export. --verify runs onnxruntime on the --verify-images (default: a few images of data.val,
else synthetic shapes images, with a WARNING that says what was tried) and compares with PyTorch: detections
matched, boxes within --atol + --rtol x the image's longer side (pixels), scores within --atol, mask IoU of
matched pairs at least --mask-iou; for a classifier, the same top-k classes in the same order and probabilities
within --atol; for a semantic segmentor, every pixel's label (pixels whose two logits tie within the tolerance
excepted) and logits within --atol + --rtol x |logit|. --image-size defaults to the config's test pipeline size (a
static graph of another size is exported with a WARNING); --out must end in .onnx and may replace only an earlier
export. See docs/inference.md. Exit status: 0 done (and verified), 1 verification failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detkit.cli.checkpoint_first import checkpoint_first, positionals
from detkit.cli.errors import ArgumentParser, UserError, run_tool, tool_label, user_errors
from detkit.cli.inputs import checkpoint_arg, config_arg, config_data_paths, hw_type, input_arg, out_file_arg

TOOL = "export"


MIN_OPSET = 11  # torchvision's NMS and argsort need it


def check_opset(opset: int) -> None:
    """``--opset`` within what torch's TorchScript exporter writes and detkit's graphs need."""
    try:
        from torch.onnx import _constants  # private: a torch without it gets the conservative 17

        top = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17)
    except ImportError:
        top = 17
    if not MIN_OPSET <= opset <= top:
        raise UserError(f"--opset {opset}: give {MIN_OPSET} to {top} (default 17; NMS needs {MIN_OPSET} or more)")


def add_options(ap: argparse.ArgumentParser) -> None:
    """The options (every argument but CONFIG CHECKPOINT)."""
    ap.add_argument("--format", default="onnx", choices=["onnx"])
    ap.add_argument("--out", required=True, help="output file")
    ap.add_argument("--verify", action="store_true", help="compare onnxruntime with PyTorch on sample images")
    ap.add_argument(
        "--verify-images",
        nargs="+",
        default=[],
        metavar="PATH",
        help="image files, folders or glob patterns for --verify",
    )
    ap.add_argument(
        "--atol", type=float, default=1e-3, help="score tolerance, and the box (px) and logit tolerance's floor"
    )
    ap.add_argument(
        "--rtol",
        type=float,
        default=1e-4,
        help="box tolerance per pixel of the image's longer side; semantic models: logit tolerance per unit of |logit|",
    )
    ap.add_argument("--mask-iou", type=float, default=0.9, help="least IoU of matched instance masks")
    ap.add_argument(
        "--image-size",
        type=hw_type,
        default=None,
        help="example input H,W used for tracing (with --static: the graph's fixed size); default: the size of "
        "the config's test pipeline (320,320 where it has none)",
    )
    ap.add_argument("--batch-size", type=int, default=1, help="example batch used for tracing")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--static", action="store_true", help="fix batch and image size to the example's")
    ap.add_argument("--max-per-img", type=int, default=None, help="default: the config's")
    ap.add_argument("--max-det", type=int, default=None, help=argparse.SUPPRESS)  # old spelling of --max-per-img
    ap.add_argument(
        "--no-nms",
        action="store_true",
        help="YOLO models: end the graph at the decoded boxes and class scores [B,A,4], [B,A,C] (and mask "
        "coefficients and prototypes); post-process outside. Default: NMS in the graph",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="config file, or '-' for the config stored in the checkpoint")
    ap.add_argument("checkpoint")
    add_options(ap)
    hint = checkpoint_first(TOOL, argv, positionals(add_options, argv))
    if hint:
        ap.error(hint)
    args = ap.parse_args(argv)
    if args.max_det is not None:
        if args.max_per_img is not None:
            ap.error("give --max-per-img only (--max-det is its old spelling)")
        print(f"{tool_label(TOOL)}: note: --max-det is an old spelling: write --max-per-img", file=sys.stderr)
        args.max_per_img = args.max_det
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")
    if args.max_per_img is not None and args.max_per_img < 1:
        ap.error("--max-per-img must be >= 1")
    if min(args.atol, args.rtol) < 0 or not 0.0 <= args.mask_iou <= 1.0:
        ap.error("--atol and --rtol must be >= 0 and --mask-iou in [0, 1]")
    return args


def image_inputs(paths: list[str]) -> list[Path]:
    """The images of --verify-images: files, folders (searched recursively) and glob patterns."""
    from detkit.inference.inputs import IMAGE_EXTS, collect_inputs

    try:
        found = collect_inputs(paths)
    except FileNotFoundError as e:
        raise UserError(f"--verify-images: {e}") from None
    images = [p for p in found if p.suffix.lower() in IMAGE_EXTS]
    if paths and not images:
        raise UserError(f"--verify-images {' '.join(paths)} holds no image ({', '.join(sorted(IMAGE_EXTS))})")
    for path in images:
        input_arg(path, "--verify-images")
    return images


VAL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def val_image_files(cfg: dict, count: int = 4) -> tuple[list[Path], str]:
    """The first ``count`` images of data.val.img_dir (of a folder of class folders: ``count`` spread over them),
    and, when there are none, what was tried (a phrase for the --verify note)."""
    val = (cfg.get("data") or {}).get("val") or {}
    given = val.get("img_dir") if isinstance(val, dict) else None
    img_dir = Path(str(given or ""))
    if str(img_dir) in ("", "."):
        return [], "the config names no data.val.img_dir"
    if not img_dir.is_dir():
        where = "" if img_dir.is_absolute() else f" (relative paths are read from the current folder {Path.cwd()})"
        return [], f"data.val.img_dir {given} is not a folder{where}"
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in VAL_SUFFIXES)
    if not files:  # class folders (img_dir/<class>/...): images spread over the classes
        found = sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in VAL_SUFFIXES)
        files = found[:: max(1, len(found) // count)]
    if not files:
        return [], f"data.val.img_dir {given} holds no image ({', '.join(VAL_SUFFIXES)})"
    return files[:count], ""


def sample_images(cfg: dict, paths: list[str | Path], count: int = 4) -> list:
    """Images for --verify: the given paths, else the first ``count`` of data.val (:func:`val_image_files`), else
    ``count`` synthetic shapes images, with one line on stderr that says what was tried."""
    import numpy as np

    from detkit.data.image_io import read_image

    if paths:
        return [read_image(p) for p in paths]
    files, tried = val_image_files(cfg, count)
    if files:
        return [read_image(p) for p in files]
    print(
        f"{tool_label(TOOL)}: WARNING: --verify found no validation image ({tried}): verifying on {count} synthetic "
        "shapes images instead; give --verify-images PATH to verify on your own images",
        file=sys.stderr,
    )
    from detkit.data.synthetic import render_image

    return [render_image(np.random.default_rng([7, i]), (256 + 32 * i, 320 - 32 * i))[0] for i in range(count)]


def verify_summary(stats: dict) -> str:
    """One line: detections on each side, matched (and borderline), the largest differences, mask IoU, verdict
    (a classifier: images whose top-k classes agree, the largest probability difference; a semantic segmentor:
    the pixels whose labels agree, the largest logit difference)."""
    if "labels_equal" in stats:
        line = (
            f"verify on {stats['images']} images: labels equal on {stats['labels_equal']} of {stats['pixels']} "
            f"pixels ({100 * stats['label_agreement']:.4f}%)"
            + (f" ({stats['borderline']} more at tied logits)" if stats["borderline"] else "")
            + f", max logit diff {stats['max_logit_diff']:.2e}"
            + (f", {stats['logits_over_tol']} logits over the tolerance" if stats["logits_over_tol"] else "")
            + (f", {stats['shape_mismatch']} images of another size" if stats["shape_mismatch"] else "")
        )
        return f"{line}: {'OK' if stats['ok'] else 'FAILED'}"
    if "topk_equal" in stats:
        line = (
            f"verify on {stats['images']} images: top-{stats['k']} classes equal on {stats['topk_equal']}"
            + (f" ({stats['borderline']} more differ only between tied classes)" if stats["borderline"] else "")
            + f", top-1 equal on {stats['top1_equal']}, max probability diff {stats['max_score_diff']:.2e}"
        )
        return f"{line}: {'OK' if stats['ok'] else 'FAILED'}"
    line = (
        f"verify on {stats['images']} images: {stats['num_ref']} PyTorch / {stats['num_other']} onnxruntime "
        f"detections, {stats['matched']} matched"
        + (f" ({stats['borderline']} more at a score cut)" if stats["borderline"] else "")
        + (
            f" ({stats['near_tie']} more near-tied duplicates that NMS kept differently)"
            if stats.get("near_tie")
            else ""
        )
        + f", max box diff {stats['max_box_diff']:.2e} px (tolerance {stats['box_tol']:.2e} px), "
        f"max score diff {stats['max_score_diff']:.2e}"
    )
    if "mask_pairs" in stats:
        line += f", mask IoU mean {stats['mean_mask_iou']:.4f} min {stats['min_mask_iou']:.4f}"
    return f"{line}: {'OK' if stats['ok'] else 'FAILED'}"


def _check_packages(verify: bool) -> None:
    """ONNX export needs the onnx package (torch's exporter imports it), --verify onnxruntime: the optional
    extra ``detkit[onnx]``; a missing one is a UserError with the install command."""
    import importlib.util

    missing = [m for m in ("onnx", *(["onnxruntime"] if verify else [])) if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"ONNX export needs {' and '.join(missing)} (optional): pip install 'detkit[onnx]' "
            f"(or pip install {' '.join(missing)})"
        )


def check_out(out: str, inputs: list) -> None:
    """``--out``: an .onnx name, never an input (the config, the checkpoint, the config's data, the verify
    images) nor an existing file other than an ONNX model (an earlier export may be replaced)."""
    from detkit.utils.checkpoint import file_kind

    path = Path(out)
    out_file_arg(out, "--out", inputs)  # never onto an input
    kind = file_kind(path) if path.is_file() else "missing"
    if kind not in ("missing", "onnx", "empty"):
        raise UserError(
            f"--out {out} exists and is not an ONNX model ({kind}); writing it would overwrite it: choose another "
            "--out (an earlier export, an .onnx file, may be replaced)"
        )
    if path.suffix.lower() != ".onnx":
        raise UserError(
            f"--out {out}: give a file name ending in .onnx (e.g. {path.with_suffix('.onnx')}); export writes an "
            "ONNX model (as Ultralytics' export does)"
        )


def export_size(args: argparse.Namespace, cfg: dict | None) -> tuple[int, int]:
    """The example (with --static: the fixed) input size: --image-size, else the test pipeline's size. A static
    --image-size other than the pipeline's fixed size is exported with a WARNING."""
    from detkit.export.metadata import pipeline_input_size, static_image_size

    fixed = pipeline_input_size(cfg)
    if args.image_size is None:
        return (static_image_size(cfg) if args.static else fixed) or (320, 320)
    if args.static and fixed is not None and tuple(args.image_size) != fixed:
        h, w = args.image_size
        print(
            f"{tool_label(TOOL)}: WARNING: --static --image-size {h},{w} differs from the test pipeline's {fixed[0]},"
            f"{fixed[1]}: the graph will not reproduce `detkit infer` unless images are preprocessed to {h},{w} "
            "(drop --image-size to export at the pipeline's size)",
            file=sys.stderr,
        )
    return tuple(args.image_size)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, build the model, export, verify."""
    if args.verify_images and not args.verify:
        raise UserError("--verify-images are the images of --verify: add --verify (or drop --verify-images)")
    checkpoint_arg(args.checkpoint, None if args.config == "-" else args.config)
    if Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a folder; give a file name (e.g. {Path(args.out) / 'model.onnx'})")
    _check_packages(args.verify)
    verify_images = image_inputs(args.verify_images)
    cfg = config_arg(args.config, (), args.checkpoint)  # CONFIG '-': the stored one (its data paths protected too)
    inputs = [*(p for p in (args.config, args.checkpoint) if p != "-"), *verify_images, *(args.verify_images or [])]
    check_out(args.out, [*inputs, *config_data_paths(cfg)])
    options = {} if args.max_per_img is None else {"max_per_img": args.max_per_img}
    if args.no_nms:
        options["nms"] = False
    import detkit
    from detkit.export import ExportError, export_onnx, get_export_module, verify_onnx

    check_opset(args.opset)

    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        # (a path, not the dict: messages name the config file)
        model = detkit.init_model(None if args.config == "-" else args.config, args.checkpoint, device="cpu")
    size = export_size(args, model.cfg)
    with user_errors(TOOL, extra=(ExportError,)):  # an unsupported model or option; an image too large for --static
        module = get_export_module(model, **options)
        images = sample_images(model.cfg, verify_images) if args.verify else []
        out = export_onnx(model, args.out, size, args.batch_size, args.opset, not args.static, **options)
        shape = "static" if args.static else "dynamic batch and image size"
        print(
            f"exported {type(model).__name__} ({', '.join(module.output_names)}) -> {out} (opset {args.opset}, {shape})"
        )
        if not args.verify:
            return 0
        if args.static:  # a static graph takes exactly --batch-size images per run
            b = args.batch_size
            images = (images * b)[: max(b, len(images) // b * b)]
        pad_to = tuple(module.example_inputs(args.batch_size, size)[0].shape[-2:]) if args.static else None
        batch = args.batch_size if args.static else 2
        stats = verify_onnx(model, out, images, args.atol, args.rtol, args.mask_iou, batch, pad_to, **options)
    print(verify_summary(stats))
    if stats.get("num_ref") == 0 and stats.get("num_other") == 0:
        print(
            f"{tool_label(TOOL)}: WARNING: --verify compared nothing: no detection on either side in {stats['images']} images "
            "(an untrained model, or scores under the test threshold); verify a trained checkpoint, or give "
            "--verify-images with objects it finds",
            file=sys.stderr,
        )
    return 0 if stats["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done (and verified), 1 verification failed, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
