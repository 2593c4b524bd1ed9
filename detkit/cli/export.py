"""Export a trained model to ONNX, optionally verified against PyTorch with onnxruntime.

    python tools/export.py CONFIG CHECKPOINT --format onnx --out FILE [--verify] [--verify-images PATH ...]
                           [--image-size H,W] [--batch-size B] [--opset N] [--static] [--max-per-img N]

CONFIG may be '-' to use the config stored in the checkpoint. The graph takes ``images`` uint8 [B,3,H,W]
(resized as the config's test pipeline does, padded to the size divisor) and ``image_sizes`` int64 [B,2];
batch and image size are dynamic unless --static. --verify runs onnxruntime on the --verify-images (default:
a few images of data.val, or synthetic shapes images) and compares with PyTorch: same detections, boxes and
scores within --atol. Exit status: 0 done (and verified), 1 verification failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _hw(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"expected H,W of at least 32 px, got {text!r}")
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def sample_images(cfg: dict, paths: list[str], count: int = 4) -> list:
    """Images for --verify: the given paths, else the first ``count`` of data.val, else synthetic shapes."""
    import numpy as np

    from detkit.data.image_io import read_image

    if paths:
        return [read_image(p) for p in paths]
    img_dir = Path(((cfg.get("data") or {}).get("val") or {}).get("img_dir") or "")
    if str(img_dir) not in ("", ".") and img_dir.is_dir():
        files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        if files:
            return [read_image(p) for p in files[:count]]
    from detkit.data.synthetic import render_image

    return [render_image(np.random.default_rng([7, i]), (256 + 32 * i, 320 - 32 * i))[0] for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="config file, or '-' for the config stored in the checkpoint")
    ap.add_argument("checkpoint")
    ap.add_argument("--format", default="onnx", choices=["onnx"])
    ap.add_argument("--out", required=True, help="output file")
    ap.add_argument("--verify", action="store_true", help="compare onnxruntime with PyTorch on sample images")
    ap.add_argument("--verify-images", nargs="+", default=[], metavar="PATH")
    ap.add_argument("--atol", type=float, default=1e-3, help="tolerance on boxes (pixels) and scores")
    ap.add_argument("--image-size", type=_hw, default=(320, 320), help="example input H,W used for tracing")
    ap.add_argument("--batch-size", type=int, default=1, help="example batch used for tracing")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--static", action="store_true", help="fix batch and image size to the example's")
    ap.add_argument(
        "--max-per-img",
        "--max-det",
        dest="max_per_img",
        type=int,
        default=None,
        help="detections per image (default: the config's)",
    )
    ap.add_argument(
        "--no-nms",
        action="store_true",
        help="YOLO models: end the graph at the decoded boxes and "
        "class scores [B,A,4], [B,A,C] (post-process outside); default: NMS in the graph",
    )
    args = ap.parse_args(argv)

    import detkit
    from detkit.export import export_onnx, get_export_module, verify_onnx

    kwargs = {} if args.max_per_img is None else {"max_per_img": args.max_per_img}
    if args.no_nms:
        kwargs["nms"] = False
    try:
        model = detkit.init_model(None if args.config == "-" else args.config, args.checkpoint, device="cpu")
        images = sample_images(model.cfg, args.verify_images) if args.verify else []
        out = export_onnx(
            model,
            args.out,
            image_size=args.image_size,
            batch_size=args.batch_size,
            opset=args.opset,
            dynamic=not args.static,
            **kwargs,
        )
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError) as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 2
    print(
        f"exported {type(model).__name__} -> {out} (opset {args.opset}, "
        f"{'static' if args.static else 'dynamic batch and image size'})"
    )
    if not args.verify:
        return 0
    if args.static:  # a static graph takes exactly --batch-size images per run
        b = args.batch_size
        images = (images * b)[: max(b, len(images) // b * b)]
    try:
        static = args.static and tuple(
            int(v)
            for v in get_export_module(model, **kwargs).example_inputs(args.batch_size, args.image_size)[0].shape[-2:]
        )
        stats = verify_onnx(
            model,
            out,
            images,
            atol=args.atol,
            batch_size=args.batch_size if args.static else 2,
            pad_to=static or None,
            **kwargs,
        )
    except ValueError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 2
    print(
        f"verify on {stats['images']} images: {stats['num_ref']} PyTorch / {stats['num_other']} onnxruntime "
        f"detections, {stats['matched']} matched, max box diff {stats['max_box_diff']:.2e} px, "
        f"max score diff {stats['max_score_diff']:.2e}: {'OK' if stats['ok'] else 'FAILED'}"
    )
    return 0 if stats["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
