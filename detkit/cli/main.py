"""``detkit CMD ...``: one console command for every tool (the same flags as ``python tools/<tool>.py``).

``detkit --help`` lists the commands, ``detkit CMD --help`` the flags of one.
"""

from __future__ import annotations

import importlib
import sys

from detkit.utils.process import quiet_interrupts, set_process_defaults

# command -> (module in detkit.cli, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a model (one process, or many through torchrun)"),
    "eval": ("eval", "evaluate a checkpoint on the config's data.val"),
    "infer": ("infer", "predict on images, folders, globs and videos; draw and save results"),
    "export": ("export", "export to ONNX and verify it with onnxruntime"),
    "analyze": ("analyze", "per-class AP, PR curves, confusion matrix, error breakdown; IoU of label maps"),
    "check": ("check_dataset", "check a dataset before training: COCO, YOLO, VOC, class folders"),
    "convert": ("convert_dataset", "convert datasets: voc2coco, yolo2coco, coco2yolo, coco2voc"),
    "convert-weights": ("convert_weights", "convert torchvision / Ultralytics weights to detkit"),
    "benchmark": ("benchmark", "time inference, training and data loading (against the peers)"),
    "make-shapes": ("make_shapes", "write the synthetic shapes dataset"),
    "browse": ("browse_dataset", "draw dataset samples after the training pipeline"),
    "model-stats": ("model_stats", "parameters and FLOPs of a config's model"),
    "plot-logs": ("plot_logs", "plot metrics.jsonl / history.json of work dirs"),
    "eval-tiling": ("eval_tiling", "recall of whole-image vs tiled inference on a large image"),
    "configs": ("configs", "list the configs that ship with detkit"),
    "explain": ("explain", "class-activation maps for detections, classes and segments"),
    "tune": ("tune", "search hyperparameters with Optuna (resumable, one machine or many)"),
    "track": ("track", "track objects through videos (ByteTrack or IoU linking); MOT files, MOTA / IDF1"),
}


# Ultralytics' command words (`yolo TASK MODE ...`) -> detkit's command
ULTRALYTICS_MODES = {"predict": "infer", "val": "eval"}
ULTRALYTICS_TASKS = ("detect", "segment", "classify", "pose", "obb")
TASK_CONFIGS = "yolo_n_coco detects, yolo_n_seg_coco segments, cspdarknet_n_shapes classifies"


def ultralytics_word(argv: list[str]) -> str:
    """The message for an Ultralytics command word (``predict``, ``val``, ``detect``, ...) given as the command."""
    name = argv[0]
    if name in ULTRALYTICS_MODES:
        cmd = ULTRALYTICS_MODES[name]
        usage_of = {"infer": "CONFIG CHECKPOINT INPUT...", "eval": "CONFIG CHECKPOINT"}[cmd]
        return f"unknown command '{name}' (Ultralytics' word); detkit's is `detkit {cmd} {usage_of}` (see --help)"
    mode = next((w for w in argv[1:2] if w in ("train", "export", "benchmark", "track", *ULTRALYTICS_MODES)), "train")
    cmd = ULTRALYTICS_MODES.get(mode, mode)
    if name in ("pose", "obb"):
        return f"unknown command '{name}': detkit has no {name} models; the config sets the task ({TASK_CONFIGS})"
    return (
        f"unknown command '{name}' (Ultralytics' task word): detkit picks the task from the config: "
        f"`detkit {cmd} CONFIG ...` ({TASK_CONFIGS}; `detkit configs` lists them)"
    )


def tool_command(name: str) -> str | None:
    """The detkit command of a tool file's name given as the command (``check_dataset``, ``check-dataset``,
    ``tools/check_dataset.py``, ``make_shapes``), or None when ``name`` is none of them."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py").replace("-", "_").lower()
    for command, (module, _) in COMMANDS.items():
        if stem in (module, command.replace("-", "_")) and name != command:
            return command
    return None


def usage() -> str:
    """The text of ``detkit --help``."""
    width = max(map(len, COMMANDS))
    lines = ["usage: detkit COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`detkit COMMAND --help` lists the flags of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its tool's ``main``; exit status 2 for an unknown command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from detkit import __version__

        print(f"detkit {__version__}")
        return 0
    name = argv[0]
    if name in ULTRALYTICS_MODES or name in ULTRALYTICS_TASKS:
        print(f"detkit: error: {ultralytics_word(argv)}", file=sys.stderr)
        return 2
    if name not in COMMANDS:
        import difflib

        from detkit.peer_names import command

        if command(name):  # MMDetection's / Detectron2's script names (test, image_demo, ...)
            print(f"detkit: error: {command(name)}", file=sys.stderr)
            return 2

        tool = tool_command(name)
        if tool is not None:  # tools/check_dataset.py is `detkit check`
            print(
                f"detkit: error: unknown command '{name}'; tools/{COMMANDS[tool][0]}.py is `detkit {tool}` "
                f"(`detkit {tool} --help` lists its flags)",
                file=sys.stderr,
            )
            return 2
        near = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        print(f"detkit: error: unknown command '{name}'{hint} (`detkit --help` lists them)", file=sys.stderr)
        return 2
    set_process_defaults()  # OMP_WAIT_POLICY, MKL_CBWR: before torch is imported (detkit.utils.process)
    quiet_interrupts()  # Ctrl-C: one line, exit 130
    module = importlib.import_module(f"detkit.cli.{COMMANDS[name][0]}")
    sys.argv[0] = f"detkit {name}"
    from detkit.cli.errors import closed_stdout

    # every command (not only those of run_tool): `detkit configs | head -1` ends quietly, exit 1
    return closed_stdout(module.main, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
