"""Multi-object tracking: a detector's detections on each frame linked into tracks (ByteTrack or IoU alone).

    python tools/track.py CONFIG|- CHECKPOINT VIDEO... --out-dir DIR [--tracker bytetrack|iou] [--score-thr T]
                          [--low-thr L] [--track-buffer N] [--no-fuse-score] [--match-iou M] [--nms-iou I]
                          [--gt GT_FILE [--min-iou I]] [--fps F] [--classes NAME_OR_INDEX ...]
                          [--device D] [--batch-size B] [--no-draw] [--trail N]

CONFIG may be '-' to use the config stored in the checkpoint. VIDEO: video files (anything OpenCV reads) or
folders of frame images (in natural name order, frame_2 before frame_10; MOT's img1/ folders; the frame rate
from a seqinfo.ini beside them, else 25, or --fps); webcams and streams are not read: record them to a file
first. Per input under --out-dir: <stem>.mp4 (tracks
drawn with their ids and trails; <stem> is a video's stem or a folder's name, suffixed _2, _3... when an earlier
input has it), <stem>.txt (MOT lines frame,id,x,y,w,h,score,-1,-1,-1, frames from 1) and
<stem>.json (tracker, options, tracks, per-frame boxes). --score-thr is ByteTrack's high threshold (the IoU
linker's only one); --low-thr the lowest score of ByteTrack's second pass; --nms-iou merges one object
detected under two classes before linking (the trackers ignore classes). --classes person car (names in any
case, or indices; after the videos, or as one word: --classes=person,car) tracks only those classes: the
others' boxes are dropped before linking, so they take no ids. --gt GT_FILE (MOT format, one input only) adds
MOTA, IDF1 and ID switches (the motmetrics package: pip install 'detkit[track]') to the summary and the JSON.
No output may replace an input or the --gt file, nor a file of the user's in --out-dir (only the files an earlier
track run wrote there, which its <stem>.json lists under "outputs"). See docs/tracking.md. Exit status: 0 done,
2 bad input (config, checkpoint, device, videos, --out-dir and its files, --gt, thresholds, --classes the model
lacks, Ultralytics' words).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import re
import shlex
import sys
from pathlib import Path

from detkit.cli.errors import USER_EXIT, ArgumentParser, UserError, run_tool, tool_label, user_errors
from detkit.cli.inputs import checkpoint_arg, device_arg, input_arg, out_dir_arg

TOOL = "track"
TRACKERS = ("bytetrack", "iou")  # detkit.track.TRACKERS, without importing torch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="config file, or '-' for the config stored in the checkpoint")
    ap.add_argument("checkpoint")
    ap.add_argument("inputs", nargs="+", metavar="VIDEO", help="video files or folders of frame images")
    ap.add_argument("--out-dir", required=True, help="folder for the drawn videos, MOT files and JSONs")
    ap.add_argument("--tracker", default="bytetrack", choices=TRACKERS, help="default bytetrack; iou: the baseline")
    ap.add_argument("--score-thr", type=float, default=0.5, help="confident detections (default 0.5)")
    ap.add_argument("--low-thr", type=float, default=None, help="bytetrack: second-pass detections (default 0.1)")
    ap.add_argument("--track-buffer", type=int, default=None, help="bytetrack: frames a lost track is kept (30)")
    ap.add_argument(
        "--no-fuse-score", action="store_true", help="bytetrack: match by IoU alone, not IoU x score (low-score models)"
    )
    ap.add_argument("--match-iou", type=float, default=None, help="minimum IoU of a match (bytetrack 0.2, iou 0.3)")
    ap.add_argument("--nms-iou", type=float, default=0.7, help="class-agnostic NMS first (default 0.7; 1: off)")
    ap.add_argument("--gt", metavar="GT_FILE", default=None, help="MOT ground truth of the (one) input: metrics")
    ap.add_argument("--min-iou", type=float, default=0.5, help="--gt: IoU of a true positive (default 0.5)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: cuda when available)")
    ap.add_argument("--fps", type=float, default=None, help="frame rate of frame folders (default: seqinfo.ini, 25)")
    ap.add_argument("--batch-size", type=int, default=1, help="frames per forward pass (default 1)")
    ap.add_argument("--no-draw", action="store_true", help="write no video, only the MOT file and the JSON")
    ap.add_argument("--trail", type=int, default=30, help="past centres joined by a track's trail (default 30)")
    ap.add_argument(
        "--classes",
        nargs="+",
        action="extend",
        metavar="NAME_OR_INDEX",
        help="track only these classes: names (any case) or indices of the model's classes (default: all)",
    )
    _classes_before_videos(ap, sys.argv[1:] if argv is None else list(argv))
    args = ap.parse_args(argv)
    for flag in ("score_thr", "low_thr", "match_iou", "min_iou", "nms_iou"):
        value = getattr(args, flag)
        if value is not None and not 0.0 <= value <= 1.0:
            ap.error(f"--{flag.replace('_', '-')} must be in [0, 1], got {value}")
    _bytetrack_flags(ap, args)
    for flag, low in (("track_buffer", 0), ("batch_size", 1), ("trail", 0)):
        if getattr(args, flag) < low:
            ap.error(f"--{flag.replace('_', '-')} must be >= {low}, got {getattr(args, flag)}")
    if args.fps is not None and not args.fps > 0:
        ap.error(f"--fps must be > 0 frames per second, got {args.fps}")
    return args


def _classes_before_videos(ap: argparse.ArgumentParser, argv: list[str]) -> None:
    """A file or folder among the words after --classes: the videos were given after it (it takes every word up
    to the next flag); say where to put it."""
    for i, word in enumerate(argv):
        if word != "--classes":
            continue
        for value in itertools.takewhile(lambda w: not w.startswith("-"), argv[i + 1 :]):
            if Path(value).exists():
                ap.error(
                    f"--classes took {value}, a file or folder, as a class: give --classes after the videos, or as "
                    "one word: --classes=person,car"
                )


def _bytetrack_flags(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """ByteTrack's own flags: refused with ``--tracker iou`` (they would do nothing), else their defaults."""
    given = [f for f, v in (("--low-thr", args.low_thr), ("--track-buffer", args.track_buffer)) if v is not None]
    given += ["--no-fuse-score"] if args.no_fuse_score else []
    if args.tracker == "iou" and given:
        ap.error(f"{', '.join(given)}: ByteTrack's, nothing with --tracker iou; drop them or use --tracker bytetrack")
    args.low_thr = 0.1 if args.low_thr is None else args.low_thr
    args.track_buffer = 30 if args.track_buffer is None else args.track_buffer
    if args.tracker == "bytetrack" and args.low_thr > args.score_thr:
        ap.error(f"--low-thr ({args.low_thr}) must not exceed --score-thr ({args.score_thr})")


def tracker_options(args: argparse.Namespace) -> dict:
    """The chosen tracker's keyword arguments from the flags."""
    if args.tracker == "iou":
        options = {"score_thr": args.score_thr}
    else:
        options = {"high_thr": args.score_thr, "low_thr": args.low_thr, "track_buffer": args.track_buffer}
        options["fuse_score"] = not args.no_fuse_score
    if args.match_iou is not None:
        options["match_iou"] = args.match_iou
    return options


def check_sources(inputs: list[str], fps: float | None = None) -> tuple[list[Path], list[Path]]:
    """The inputs (videos or frame folders) and every file they read; each must exist and be readable (a webcam
    or a stream is refused); ``fps`` (--fps) needs a frame folder among them."""
    from detkit.data.image_io import ImageReadError
    from detkit.inference.inputs import VIDEO_EXTS
    from detkit.track.sources import frame_files, live_source, open_frames

    sources, files = [], []
    for item in inputs:
        path = Path(item)
        if live_source(item):
            record = "e.g. with ffmpeg or OpenCV" if item.strip().isdigit() else f"e.g. ffmpeg -i {item} -t 60 clip.mp4"
            raise UserError(
                f"VIDEO {item}: webcams and streams are not read by `detkit track`; record to a file first ({record}), "
                "or in Python pass frames yourself: detkit.track(model, frames, stream=True) with frames from "
                "cv2.VideoCapture (docs/tracking.md)"
            )
        if not path.exists():
            raise UserError(f"VIDEO not found: {path} (check the path)")
        if path.is_file() and path.suffix.lower() not in VIDEO_EXTS:
            raise UserError(
                f"VIDEO {path} is not a video ({', '.join(sorted(VIDEO_EXTS))}); give a video file or a folder of "
                "frame images"
            )
        try:
            open_frames(path)
        except ImageReadError as e:
            raise UserError(f"VIDEO {path}: {e}") from None
        sources.append(path)
        files.extend(frame_files(path) if path.is_dir() else [path])
    if fps is not None and not any(s.is_dir() for s in sources):
        raise UserError(f"--fps sets the frame rate of a folder of frames; {sources[0]} is a video, which has its own")
    return sources, files


def _report(summary: dict, name: str | None = None) -> str:
    """The summary lines of one input; ``name``: its own name (``output_stem``), when its outputs have another
    (an earlier input took it)."""
    tracks = summary["tracks"]
    text = (
        f"{summary['source']}: {summary['frames']} frames, {len(tracks)} tracks, {summary['boxes']} boxes -> "
        f"{summary['mot']}, {summary['json']}" + (f", {summary['video']}" if summary["video"] else "")
    )
    if name is not None and name != summary["stem"]:
        text += f"\n  outputs named {summary['stem']}: an earlier input's are named {name}"
    bad = summary.get("unreadable")
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        text += f"\n  {len(bad)} unreadable frame{'s' if len(bad) > 1 else ''} ({shown}): tracked with no detections"
    if not tracks:
        text += "\n  " + _no_track(summary)
    m = summary["metrics"]
    if m is not None:
        text += (
            f"\n  MOTA {m['mot/MOTA']:.3f}  IDF1 {m['mot/IDF1']:.3f}  ID switches {m['mot/IDSW']}  FP {m['mot/FP']}  "
            f"FN {m['mot/FN']}  (ground truth: {m['mot/GT_ids']} tracks, {m['mot/GT_boxes']} boxes)"
        )
    return text


def _no_track(summary: dict) -> str:
    """Why no track came out: the detector's best score (asked down to 0.001), under the tracker's threshold or
    not, and what to change."""
    best, options = summary["max_score"], summary["options"]
    byte = "low_thr" in options
    flag, thr = ("--low-thr", options["low_thr"]) if byte else ("--score-thr", options["score_thr"])
    fix = "lower --score-thr" + (" (and --low-thr)" if byte else "")
    if byte and options["fuse_score"]:
        fix += ", and for a model whose scores stay low add --no-fuse-score (docs/tracking.md)"
    kept = options.get("classes")
    of = f" of --classes {' '.join(shlex.quote(n) for n in kept)}" if kept else ""  # as typed again
    if best is None:
        return f"no track: the detector found nothing{of} above {flag} (no box scored even 0.001)"
    if best < thr:
        return f"no track: the detector found nothing{of} above {flag} {thr:g}: its best score was {best:.3f}; {fix}"
    return f"no track: the detector's best score{of} was {best:.3f}; {fix}"


def check_gt(args: argparse.Namespace) -> None:
    """--gt: a readable MOT file with boxes to score (parsed here, before the model loads), one input to score,
    and the motmetrics package installed."""
    if args.gt is None:
        return
    input_arg(args.gt, "--gt GT_FILE")
    if len(args.inputs) != 1:
        raise UserError(f"--gt is the ground truth of one video; {len(args.inputs)} were given")
    if importlib.util.find_spec("motmetrics") is None:
        raise UserError("--gt needs the motmetrics package: pip install 'detkit[track]' (or pip install motmetrics)")
    from detkit.track.mot import read_gt

    try:
        read_gt(args.gt)
    except ValueError as e:
        raise UserError(f"--gt GT_FILE: {e}") from None


def check_outputs(args: argparse.Namespace, sources: list[Path], files: list[Path]) -> list[str]:
    """The outputs' names, one per source (:func:`detkit.utils.output_names.unique_stems`); none of the files they
    name may be an input or the --gt file, and --out-dir may hold neither (``out_dir_arg``); nor may one replace a
    file of the user's: only those an earlier track run wrote there (its JSON records them) are replaced."""
    from detkit.track.video import output_files, output_stem, recorded_outputs
    from detkit.utils.output_names import clobbering, refuse_foreign, unique_stems

    stems = unique_stems(output_stem(s) for s in sources)
    outputs = [f for stem in stems for f in output_files(args.out_dir, stem, not args.no_draw).values()]
    ours = {name for stem in stems for name in recorded_outputs(Path(args.out_dir) / f"{stem}.json")}
    problem = clobbering(args.out_dir, outputs, files, args.gt) or refuse_foreign(args.out_dir, outputs, ours)
    if problem is not None:
        raise UserError(problem)
    # outputs named after the inputs must not land on them
    folders = [s for s in sources if s.is_dir()]  # frame folders: an --out-dir inside one mixes with its frames
    out_dir_arg(args.out_dir, "--out-dir", [*files, *folders, *([args.gt] if args.gt is not None else [])])
    return stems


def chosen_classes(given: list[str] | None, class_names: list[str]) -> list[int] | None:
    """--classes (names or indices, comma-separated or not) as the model's label indices; None: every class.
    A class the model lacks is a UserError naming the nearest ones."""
    if given is None:
        return None
    from detkit.track.classes import resolve_classes

    items = [part for word in given for part in word.split(",") if part.strip()]
    try:
        return resolve_classes(items, class_names)
    except ValueError as e:
        raise UserError(f"--{e}") from None


def run(args: argparse.Namespace) -> int:
    """Check every argument (the cheap file checks first, before torch loads), build the model, track."""
    config = None if args.config == "-" else args.config
    checkpoint_arg(args.checkpoint, config)
    check_gt(args)
    out_dir_arg(args.out_dir, "--out-dir")
    sources, files = check_sources(args.inputs, args.fps)
    stems = check_outputs(args, sources, files)
    device = device_arg(args.device)

    import detkit
    from detkit.track.video import output_stem, track_video

    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        model = detkit.init_model(config, args.checkpoint, device=device)
    classes = chosen_classes(args.classes, model.class_names)
    with user_errors(TOOL, extra=(ValueError,)):  # tracker options, a non-detector, a malformed --gt
        for source, stem in zip(sources, stems):
            summary = track_video(
                model,
                source,
                args.out_dir,
                args.tracker,
                tracker_options(args),
                args.gt,
                args.min_iou,
                args.batch_size,
                args.nms_iou,
                not args.no_draw,
                args.trail,
                progress=True,
                stem=stem,
                fps=args.fps,
                classes=classes,
            )
            print(_report(summary, output_stem(source)))
    return 0


# Ultralytics' words of `yolo track` / `model.track(...)` -> detkit's answer ({v}: the value given)
HABITS = {
    "conf": "detkit's: --score-thr {v} (ByteTrack's confident detections; --low-thr for its second pass)",
    "iou": "detkit's: --nms-iou {v} (the class-agnostic NMS before linking; --match-iou for the matching)",
    "persist": "not needed: detkit track follows each input's whole video with one tracker; drop it",
    "show": "detkit track opens no window: the drawn video is written under --out-dir (<name>.mp4); drop it",
    "save": "the outputs are always written under --out-dir (--no-draw: no video); drop it",
    "save_txt": "the MOT text file (<name>.txt) and the JSON are always written under --out-dir; drop it",
    "classes": "detkit's: --classes {v} (class names or indices; the others take no ids)",
    "device": "detkit's: --device {v}",
    "source": "give the videos as VIDEO arguments: CONFIG CHECKPOINT {v}",
    "model": "give the checkpoint as CHECKPOINT, after CONFIG (or - for the config it holds)",
    "imgsz": "the frame size is the model config's test pipeline; detkit track has no size flag",
}
VALUED = {"conf", "iou", "classes", "device", "source", "model", "imgsz", "tracker"}
KEY_WORD = re.compile(r"[A-Za-z_]+=")


def _tracker_answer(value: str) -> str:
    """The answer to an Ultralytics tracker file (``bytetrack.yaml``, ``botsort.yaml``)."""
    name = Path(value).stem.lower()
    if name == "bytetrack":
        return "detkit's: --tracker bytetrack (its settings are flags: --score-thr, --low-thr, --track-buffer)"
    if name == "botsort":
        return "BoT-SORT is not available in detkit; ByteTrack is: --tracker bytetrack (or --tracker iou)"
    return "detkit's trackers are named, not YAML files: --tracker bytetrack or --tracker iou"


def habit_answers(argv: list[str]) -> list[str]:
    """One answer per Ultralytics word of ``argv`` (``conf=0.3``, ``--conf 0.3``, ``--persist``, ``--tracker
    bytetrack.yaml``, ``tracker=botsort.yaml``), and for any other ``key=value`` word that is not a file."""
    answers, i = [], 0
    while i < len(argv) and argv[i] != "--":
        token, i = argv[i], i + 1
        key, eq, value = token.partition("=")
        flag = token.startswith("--")
        name = key[2:].replace("-", "_") if flag else key
        if flag and name in ("device", "classes"):  # detkit's own flags too
            continue
        if flag and not eq and name in VALUED and i < len(argv) and not argv[i].startswith("-"):
            value, token, i = argv[i], f"{token} {argv[i]}", i + 1
        if name == "tracker" and (eq or flag):
            if value.lower().endswith((".yaml", ".yml")):
                answers.append(f"{token}: {_tracker_answer(value)}")
        elif name in HABITS and (flag or eq) and not Path(token).exists():
            shown = " ".join(re.split(r"[\s,]+", value.strip("[]() "))) if name == "classes" else value
            answers.append(f"{token} is Ultralytics' word; {HABITS[name].format(v=shown)}")
        elif not flag and KEY_WORD.match(token) and not Path(token).exists():
            answers.append(f"{token}: a KEY=VALUE word is Ultralytics' form; detkit track takes flags (see --help)")
    return answers


def refuse_habits(argv: list[str]) -> None:
    """Exit 2 with one line per Ultralytics word in ``argv`` (:func:`habit_answers`), before argparse reads it."""
    if {"-h", "--help"} & set(argv):
        return
    answers = habit_answers(argv)
    if answers:
        print("\n".join(f"{tool_label(TOOL)}: error: {a}" for a in answers), file=sys.stderr)
        raise SystemExit(USER_EXIT)


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    refuse_habits(sys.argv[1:] if argv is None else list(argv))
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
