"""Checks of a tool's arguments before any work: config, checkpoint, device, input and output paths.

Each check raises a :class:`~detkit.cli.errors.UserError` (or a ``ConfigError`` / ``CheckpointError`` /
``DeviceError``) whose message names the argument, the file and the fix; inside ``user_errors(tool)`` that is
one line on stderr and exit status 2. The file checks read a few bytes only and need no torch, so a tool
refuses a wrong argument in a fraction of a second, before it builds a model.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from detkit.cli.errors import UserError
from detkit.utils.checkpoint import check_checkpoint_file, file_kind
from detkit.utils.output_names import is_inside

__all__ = [
    "check_config_file",
    "checkpoint_arg",
    "config_arg",
    "device_arg",
    "input_arg",
    "out_dir_arg",
    "out_file_arg",
]

TORCH_KINDS = ("torch-zip", "pickle", "python-pickle", "truncated-zip", "safetensors")
NOT_YAML = {
    "empty": "is empty",
    "image": "is an image",
    "onnx": "is an ONNX model",
    "zip": "is a zip archive",
    "binary": "is a binary file",
}


def check_config_file(
    config: str | os.PathLike, checkpoint: str | os.PathLike | None = None, command: str | None = None
) -> None:
    """Refuse a CONFIG argument that is a checkpoint (swapped arguments), a folder, not YAML text, an Ultralytics
    data.yaml (``command`` names the tool that takes it with ``--data``) or an Ultralytics model name.

    A name that is not a file is left to ``load_config`` (it may be a packaged config's name).
    """
    path = Path(config)
    kind = file_kind(path)
    if kind == "missing":
        _ultralytics_model_name(str(config))
    if kind in ("yaml", "text"):
        _data_yaml_as_config(path, command)
    if kind == "folder":
        hint = (
            f" (it holds {path / 'config.yaml'}, the resolved config of a run)"
            if (path / "config.yaml").is_file()
            else ""
        )
        raise UserError(f"CONFIG {path} is a folder; give a YAML config file{hint}")
    if kind in TORCH_KINDS:
        if checkpoint is None:
            raise UserError(
                f"CONFIG {path} is a PyTorch checkpoint, not a YAML config; give the config (a training run "
                "keeps its resolved config.yaml next to its checkpoints)"
            )
        swapped = file_kind(checkpoint) in ("yaml", "text")
        raise UserError(
            f"CONFIG {path} is a PyTorch checkpoint, not a YAML config"
            + (f", and CHECKPOINT {checkpoint} is a YAML file: the arguments are swapped" if swapped else "")
            + "; the order is CONFIG then CHECKPOINT (CONFIG '-' uses the config stored in the checkpoint)"
        )
    if kind in NOT_YAML:
        raise UserError(
            f"CONFIG {path} {NOT_YAML[kind]}, not a YAML config; give a .yaml file (`detkit configs` lists "
            "the packaged ones)"
        )


def _data_yaml_as_config(path: Path, command: str | None) -> None:
    """Refuse an Ultralytics data.yaml given as CONFIG, naming the packaged config to train on it with --data
    (``command``: ``train`` / ``tune``, the tool that takes it; None for the tools that take no --data)."""
    from detkit.data.data_arg import is_data_yaml, suggest_config

    if not is_data_yaml(path):
        return
    run = f"python tools/{command or 'train'}.py {suggest_config(path)} --data {path}"  # (as_invoked: `detkit X`)
    if command is None:
        raise UserError(
            f"CONFIG {path} is an Ultralytics data.yaml (a dataset), not a detkit config; give a detkit config "
            f"(`detkit configs` lists the packaged ones; `{run}` trains one on this data; "
            f"`python tools/check_dataset.py {path}` checks it)"
        )
    raise UserError(
        f"CONFIG {path} is an Ultralytics data.yaml (a dataset), not a detkit config; train a packaged recipe on "
        f"it: `{run}` (`detkit configs` lists the configs)"
    )


def _ultralytics_model_name(config: str) -> None:
    """Refuse an Ultralytics model name given as CONFIG (``yolov8n``, ``yolov8s-seg.pt``), naming detkit's config."""
    from detkit.ultralytics_names import packaged_for, weights_note

    found = packaged_for(config)
    if found is None:
        return
    name, note = found
    weights = f" ({weights_note(config)})" if config.endswith(".pt") else ""
    raise UserError(
        f"config file not found: {config}; that is Ultralytics' model name: detkit's packaged config is '{name}' "
        f"({note}): give {name} as CONFIG{weights}; `detkit configs` lists them"
    )


def config_arg(
    config: str | os.PathLike,
    overrides: Sequence[str] = (),
    checkpoint: str | None = None,
    needs: Sequence[str] = (),
    data_yaml: str | os.PathLike | None = None,
    hold_out: bool = True,
) -> dict:
    """``load_config(config, overrides)`` after :func:`check_config_file`; CONFIG ``-`` takes the config that
    ``checkpoint`` stores (overrides applied, every key checked). ``data_yaml`` (``--data``) points the config's
    datasets at an Ultralytics data.yaml before the overrides apply (``detkit.data.data_arg``). Each section of
    ``needs`` (``model``, ``data``) must be a mapping: a missing or null one is a UserError naming it. A folder as
    ``data_yaml`` is a classifier's class folders (``apply_data_folder``; ``hold_out`` False: one folder of them
    is scored whole, not split in place)."""
    if data_yaml is not None:
        cfg = _load_with_data_yaml(config, overrides, data_yaml, checkpoint, hold_out)
    else:
        cfg = _load_config_arg(config, overrides, checkpoint)
        if "data" in needs:  # (a tool that reads the data: not infer of a run whose data moved)
            _class_folders_for_detection(cfg)
    for section in needs:
        if not isinstance(cfg.get(section), dict):
            state = "is null" if section in cfg else "is missing"
            raise UserError(
                f"{config}: the config's '{section}' section {state} (after --set); this tool needs it: give a "
                f"config with a {section} section (see `detkit configs`)"
            )
    return cfg


def _class_folders_for_detection(cfg: dict) -> None:
    """Refuse a detection dataset (COCO / VOC) whose ``img_dir`` is class folders and whose ``ann_file`` is missing
    (``--set data.train.img_dir=split/train`` on a detection config): it would fail on the missing annotations."""
    from detkit.data.data_arg import DETECTION_DATASETS, _innermost, class_folder_splits

    data = cfg.get("data")
    for split, spec in data.items() if isinstance(data, dict) else ():
        if not isinstance(spec, dict):
            continue
        inner = _innermost(spec)[0]
        img_dir = spec.get("img_dir") or inner.get("img_dir")  # (a wrapper such as MixDataset passes them on)
        ann_file = spec.get("ann_file") or inner.get("ann_file")
        if inner.get("type") not in DETECTION_DATASETS or not isinstance(img_dir, str) or not os.path.isdir(img_dir):
            continue
        if isinstance(ann_file, str) and not os.path.exists(ann_file) and class_folder_splits(img_dir):
            raise UserError(
                f"data.{split}.img_dir {img_dir} is a class-folder (classification) dataset (<class>/<image> folders) "
                f"and data.{split}.ann_file {ann_file} does not exist: the config is a detection one "
                f"({inner['type']}); use a classifier config such as resnet18_shapes (`detkit configs` lists them)"
            )


def _stored_config(checkpoint: str) -> dict:
    """The config that ``checkpoint`` stores (CONFIG ``-``); a UserError when it stores none."""
    from detkit.utils.checkpoint import read_meta

    stored = read_meta(checkpoint).get("config")
    if not isinstance(stored, dict):
        raise UserError(f"CONFIG '-': checkpoint {checkpoint} stores no config; give the config file instead")
    return stored


def _load_config_arg(config: str | os.PathLike, overrides: Sequence[str], checkpoint: str | None) -> dict:
    from detkit.config import apply_overrides, load_config

    if str(config) == "-" and checkpoint is not None:
        from detkit.config_check import check_config

        cfg = apply_overrides(_stored_config(checkpoint), list(overrides), add_missing=False)
        check_config(cfg)
        return cfg
    check_config_file(config, checkpoint)
    return load_config(config, list(overrides))


def _load_with_data_yaml(
    config: str | os.PathLike,
    overrides: Sequence[str],
    data_yaml: str | os.PathLike,
    checkpoint: str | None = None,
    hold_out: bool = True,
) -> dict:
    """The config with its datasets reading ``data_yaml``, then ``overrides`` applied, then every key checked.
    CONFIG ``-`` takes the config that ``checkpoint`` stores."""
    from detkit.config import load_config_with_sources, record_sources
    from detkit.config_check import check_config
    from detkit.config_overrides import apply_overrides, get_by_path
    from detkit.data.data_arg import apply_data_folder, apply_data_yaml, data_yaml_keys

    stored = str(config) == "-" and checkpoint is not None
    if not stored:
        check_config_file(config)
    kind = file_kind(data_yaml)
    if kind not in ("yaml", "text", "folder"):
        state = {"missing": "not found"}.get(kind, f"is not YAML text (it is {kind})")
        raise UserError(
            f"--data {data_yaml} {state}; give the dataset's data.yaml (keys path, train, val, names), or a "
            "classifier's folder of class folders"
        )
    cfg, sources = (_stored_config(checkpoint), {}) if stored else load_config_with_sources(config, check=True)
    if kind == "folder":  # a classifier's class folders (ROOT/train/<class>/..., ROOT/val/<class>/...)
        cfg, keys = apply_data_folder(cfg, data_yaml, val_set=_sets_val(overrides), hold_out=hold_out)
        for path in keys:
            record_sources(sources, get_by_path(cfg, ".".join(map(str, path))), path, "--data")
        cfg = apply_overrides(cfg, list(overrides), sources, add_missing=True)
        check_config(cfg, sources)
        return cfg
    cfg = apply_data_yaml(cfg, data_yaml, config)
    for path in data_yaml_keys(cfg):  # what --data set is named as its origin in the check's messages
        node = get_by_path(cfg, ".".join(map(str, path)))
        record_sources(
            sources, {k: node[k] for k in ("type", "data_yaml", "split")} if path[0] == "data" else node, path, "--data"
        )
    cfg = apply_overrides(cfg, list(overrides), sources, add_missing=True)
    check_config(cfg, sources)
    return cfg


def _sets_val(overrides: Sequence[str]) -> bool:
    """Whether ``--set`` says what data.val reads: data.val itself (``data.val=null`` trains without validation)
    or its ``img_dir`` / ``ann_file`` (under wrappers too). Other keys (a pipeline, ``val_fraction``) leave
    ``--data`` to choose the folder."""
    keys = [str(item).split("=", 1)[0].strip().lstrip("+") for item in overrides]
    return any(
        key == "data.val" or (key.startswith("data.val.") and key.endswith((".img_dir", ".ann_file"))) for key in keys
    )


def checkpoint_arg(checkpoint: str | os.PathLike, config: str | os.PathLike | None = None) -> Path:
    """Refuse a CHECKPOINT argument that cannot be a torch file (missing, empty, truncated, text, YAML, ...).

    CONFIG (when given and not '-') is checked first with :func:`check_config_file`: when it is a checkpoint
    and CHECKPOINT a YAML file, the message says the two are swapped.
    """
    if config is not None and config != "-":
        check_config_file(config, checkpoint)
    return check_checkpoint_file(checkpoint)


def device_arg(device: str | None) -> str | None:
    """Check ``--device`` (cpu, cuda, cuda:N, N, mps) against this machine; returns the canonical name or None."""
    if device is None or str(device).strip().lower() in ("", "auto"):
        return None
    from detkit.utils.device import parse_device

    return str(parse_device(device))


def input_arg(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """An input file (a folder with ``folder``) that must exist and be readable; ``what`` names it (e.g. 'GT_JSON')."""
    path = Path(path)
    want, other = ("folder", "file") if folder else ("file", "folder")
    if path.exists() and path.is_dir() != folder:
        raise UserError(f"{what} {path} is a {other}; give a {want}")
    if not path.exists():
        raise UserError(f"{what} not found: {path} (check the path)")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise UserError(f"{what} {path} is not readable (permission denied); fix its permissions")
    return path


def _check_writable(folder: Path, flag: str, given: Path) -> None:
    """Create and delete a temporary file in ``folder``: the only test that also holds for root, read-only
    mounts and special file systems (``os.access`` says yes to root everywhere)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or type(e).__name__)
        raise UserError(
            f"{flag} {given}: cannot write in {folder} ({reason}); choose a folder you can write to"
        ) from None


def _writable_parent(path: Path, flag: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we can write in."""
    probe = path.absolute().parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{flag} {path}: {probe} is a file, not a folder; choose another {flag}")
    _check_writable(probe, flag, path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def out_dir_arg(path: str | os.PathLike, flag: str = "--out-dir", inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """An output folder: absent (it will be made) or a writable folder; never a folder that holds an input
    file directly (outputs named after the inputs would overwrite them), nor one inside an input folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    if path.is_dir():
        _check_writable(path, flag, path)
    else:
        _writable_parent(path, flag)
    for item in map(Path, inputs):
        if item.is_dir() and is_inside(path, item):
            raise UserError(
                f"{flag} {path} is inside the input folder {item}; outputs written there would change (or "
                f"overwrite) its files: choose another {flag} outside it (e.g. {_sibling(item)})"
            )
        if item.is_file() and _same_file(item.parent, path):
            raise UserError(
                f"{flag} {path} holds the input {item}; outputs written there could overwrite inputs: choose "
                f"another {flag} outside the inputs (e.g. {_sibling(path)})"
            )
    return path


def out_file_arg(path: str | os.PathLike, flag: str = "--out", inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """An output file: not a folder, in a writable folder, and not one of the tool's input files."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name (e.g. {path / 'out.json'})")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path} is not writable (permission denied); choose another {flag}")
    _writable_parent(path, flag)
    for item in map(Path, inputs):
        if _same_file(item, path):
            raise UserError(f"{flag} {path} is the input {item}; writing it would overwrite it: choose another {flag}")
        if item.is_dir() and path.exists() and is_inside(path, item):
            raise UserError(
                f"{flag} {path} is a file of the input folder {item}; writing it would overwrite it: choose another "
                f"{flag} outside that folder"
            )
    return path


def _sibling(path: Path) -> Path:
    """``DIR_out`` next to the folder ``DIR`` (an output folder out of reach of a recursive input search)."""
    path = path.absolute()
    return path.with_name(f"{path.name}_out") if path.name else Path.home() / "detkit_out"


DATA_PATH_KEYS = ("ann_file", "img_dir", "mask_dir", "label_dir", "data_yaml", "root")


def config_data_paths(cfg: dict | None) -> list[Path]:
    """The files and folders that a config's ``data`` sections read (:data:`DATA_PATH_KEYS` at any depth,
    e.g. a MixDataset's inner ``dataset``), for the checks that an output does not land on an input."""
    from detkit.utils.output_names import data_paths

    return [p for _, p in data_paths((cfg or {}).get("data"), DATA_PATH_KEYS)]


MAX_SIDE = 8192  # px: the largest image side the size flags take (a larger one only exhausts memory)


def hw_type(text: str) -> tuple[int, int]:
    """argparse type of ``H,W`` (or ``HxW``, or one number for a square) sizes of 32 to :data:`MAX_SIDE` px."""
    import argparse

    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 32 or max(parts) > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"expected H,W (or one number) of 32 to {MAX_SIDE} px, got {text!r}")
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def max_dets_arg(value: int, flag: str = "--max-dets") -> int:
    """The detections per image that COCO AP counts (pycocotools' maxDets): an integer >= 1."""
    if value < 1:
        raise UserError(f"{flag} {value}: give the number of detections per image that AP counts, >= 1 (COCO: 100)")
    return value
