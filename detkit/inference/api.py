"""Inference entry points: ``init_model`` builds a model from a config and/or checkpoint, ``predict`` runs it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from detkit.config import ConfigError, load_config
from detkit.inference.runner import ImageInput
from detkit.models.backbones.init_weights import without_init_checkpoint
from detkit.models.build import build_model
from detkit.models.detectors.classifier import Classifier
from detkit.utils.checkpoint import CheckpointMismatchError, load_checkpoint, load_model_state, model_state
from detkit.utils.device import parse_device


def _class_names(cfg: dict, meta: dict, config: Any, checkpoint: Any) -> list[str] | None:
    """The checkpoint's class names, checked against the config's ``model.num_classes``."""
    names = meta.get("class_names")
    n_cfg = cfg["model"].get("num_classes")
    if names is None:
        if n_cfg is None:
            raise ConfigError(
                f"model.num_classes is null in {config if isinstance(config, (str, os.PathLike)) else 'the config'} "
                + (f"and checkpoint {checkpoint} stores no class names" if checkpoint else "and no checkpoint is given")
                + "; set model.num_classes, or pass the checkpoint trained with this config"
            )
        return None
    names = [str(n) for n in names]
    if n_cfg is not None and int(n_cfg) != len(names):
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint} was trained for {len(names)} classes ({shown}) but {_config_label(config)} sets "
            f"model.num_classes: {n_cfg}; use the config it was trained with (CONFIG '-' takes the one stored in "
            "the checkpoint), or set model.num_classes: null to take the checkpoint's classes"
        )
    return names


def _config_label(config: Any) -> str:
    """The config as a message names it: its path or packaged name; a dict by its origin, never its contents."""
    if isinstance(config, (str, os.PathLike)):
        return str(config)
    return "the config given (a dict)"


def _checked_stored_config(cfg: dict, checkpoint: Any) -> dict:
    """A checkpoint's stored config after ``check_config``: one written by an older detkit may hold old
    spellings (``score_thresh``) or keys this version does not know; that is a ConfigError naming them."""
    from detkit.config_check import check_config

    try:
        check_config(cfg)
    except ConfigError as e:
        raise ConfigError(
            f"the config stored in checkpoint {checkpoint} does not fit this detkit: {e}. Give a config file "
            "instead of '-' (e.g. the run's config.yaml, with these keys fixed)"
        ) from None
    return cfg


def init_model(
    config: str | os.PathLike | dict | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Build a model in eval mode, with its class names and config; weights from ``checkpoint`` when given.

    Without ``config`` the config stored in the checkpoint is used. ``device`` (cpu, cuda, cuda:N, N, mps)
    defaults to CUDA when available. The model carries ``model.cfg`` (the resolved config),
    ``model.class_names`` and ``model.cat_ids`` (label -> dataset category id, when the checkpoint knows them).

    Raises:
        CheckpointError: the checkpoint is not readable; ``CheckpointMismatchError`` when its class count
            differs from the config's ``model.num_classes`` or its tensors do not fit the config's model.
        DeviceError: ``device`` does not exist on this machine.
        ConfigError: a bad config, or no config at all.
    """
    for name, value in (("config", config), ("checkpoint", checkpoint)):
        if (
            value is not None
            and not isinstance(value, (str, os.PathLike))
            and not (name == "config" and isinstance(value, dict))
        ):
            accepted = "a path, a packaged config name or a config dict" if name == "config" else "a path"
            raise TypeError(f"init_model: {name} must be {accepted}, got {type(value).__name__}")
    dev = parse_device(device, flag="device")  # first: a wrong device costs no checkpoint read
    ckpt = load_checkpoint(checkpoint) if checkpoint is not None else None
    meta = (ckpt or {}).get("meta") or {}
    if config is None:
        if not isinstance(meta.get("config"), dict):
            raise ConfigError(
                f"init_model: no config given and checkpoint {checkpoint} stores none; pass the config file"
            )
        cfg = _checked_stored_config(meta["config"], checkpoint)
    elif isinstance(config, dict):
        cfg = config
    else:
        cfg = load_config(config)
    if not isinstance(cfg.get("model"), dict):
        state = "has no 'model' section" if cfg.get("model") is None else "has a 'model' that is not a mapping"
        raise ConfigError(f"{config if isinstance(config, (str, os.PathLike)) else checkpoint}: the config {state}")
    names = _class_names(cfg, meta, config, checkpoint)
    # the checkpoint's weights replace the backbone's start weights: do not read (or need) that file again
    model = build_model(without_init_checkpoint(cfg) if ckpt is not None else cfg, class_names=names)
    if ckpt is not None:
        load_model_state(model, model_state(ckpt), str(checkpoint))
    model.cfg = cfg  # as given, init_checkpoint included
    model.cat_ids = meta.get("cat_ids")  # label -> dataset category id, when known
    return model.to(dev).eval()


_SET_CFG = (
    "set it in the config: cfg = detkit.load_config(CONFIG, ['{key}=...']); model = detkit.init_model(cfg, CKPT) "
    "(CLI: --set {key}=...)"
)
# Ultralytics' predict keywords -> detkit's way to say the same (docs/inference.md has the table)
ULTRALYTICS_KEYWORDS = {
    "conf": "score_thr=",
    "iou": "the NMS IoU is the config's model.head.nms_thr (YOLO-seg: model.head.det.nms_thr; R-CNN: "
    "model.box_head.nms_thr): " + _SET_CFG.format(key="model.head.nms_thr"),
    "imgsz": "the input size is the config's test pipeline (data.test, else data.val), e.g. a YOLO LetterBox's "
    "data.val.pipeline.0.size: " + _SET_CFG.format(key="data.val.pipeline.0.size"),
    "device": "the model's device: detkit.init_model(..., device='cuda:0') (or model.to(device)); predict runs there",
    "source": "the images argument: predict(model, images)",
    "classes": "filter the result: keep = torch.isin(r['labels'], torch.tensor(CLASS_IDS)), then r['boxes'][keep], ...",
    "max_det": "the config's model.head.max_per_img (R-CNN: model.box_head.max_per_img): "
    + _SET_CFG.format(key="model.head.max_per_img"),
    "augment": "tta=True",
    "batch": "batch_size=",
    "half": "not offered (predict runs in the model's dtype)",
    "verbose": "progress=True (a progress bar on stderr; progress=None, the default, shows one for a long input "
    "on a terminal or in a notebook; predict prints nothing else)",
    "save": "not offered: draw with detkit.visualization.draw_prediction(image, result, model.class_names) and "
    "write it, or run `detkit infer CONFIG CKPT IMAGES --out-dir DIR`",
    "show": "not offered: draw with detkit.visualization.draw_prediction(image, result, model.class_names)",
}
_PREDICT_ARGS = "model, inputs, score_thr, batch_size, tile, channel_order, tta, progress"


def _keyword_answer(name: str, value: Any) -> str:
    """detkit's form of the Ultralytics keyword ``name=value`` (``verbose=False`` is ``progress=False``)."""
    if name == "verbose" and not value:
        return "progress=False (no progress bar; predict prints nothing else)"
    return ULTRALYTICS_KEYWORDS[name]


def _unknown_keywords(kwargs: dict) -> TypeError:
    """One TypeError for every keyword ``predict`` does not take, with detkit's equivalent where there is one."""
    lines = [
        f"  {k}: {_keyword_answer(k, v)}" if k in ULTRALYTICS_KEYWORDS else f"  {k}: not an argument of predict"
        for k, v in kwargs.items()
    ]
    return TypeError(
        f"predict() got unexpected keyword argument(s) {', '.join(map(repr, kwargs))}; it takes {_PREDICT_ARGS}:\n"
        + "\n".join(lines)
    )


@torch.no_grad()  # not inference_mode: the results are ordinary tensors a caller may edit in place
def predict(
    model: nn.Module | Sequence[nn.Module],
    inputs: ImageInput | Sequence[ImageInput],
    score_thr: float | None = None,
    batch_size: int = 1,
    tile: Any = None,
    channel_order: str = "rgb",
    tta: Any = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> list[dict] | dict:
    """Run ``model`` on one image or a list of images; returns one dict per image of CPU tensors.

    Args:
        model: a detkit detector, segmentor or classifier (e.g. from :func:`init_model`), or a list of them
            (an ensemble: models of the same classes, predictions merged as ``tta`` says; the first model's
            test pipeline), or a ``detkit.inference.ensemble.Ensemble``.
        inputs: a path, a PIL image, a numpy image [H,W,3] (or [H,W], [H,W,4]), a torch tensor (float [3,H,W]
            in 0..1, RGB, as torchvision's; uint8 [H,W,3]), or a list of them, of any sizes (mixed sizes are
            padded into one batch); or a folder (its images, sorted: a list of results) or a float batch tensor
            [B,3,H,W] in 0..1 (a list of results). Numpy images are taken as **RGB**; pass
            ``channel_order='bgr'`` for arrays from OpenCV (``cv2.imread``, ``VideoCapture``). uint8 as is;
            uint16 keeps its high byte (as 16-bit files; a warning when it holds 8-bit values); float in 0..1
            is scaled by 255, float in 0..255 rounded; other values are a ValueError saying the conversion
            (``inputs.numpy_to_uint8``). A video is refused: ``detkit.track`` reads videos. Every input is
            checked before the first forward pass (types, files exist, array shapes and values); files and PIL
            images are decoded one batch at a time (tiled: one image at a time), so a long list of large files
            never sits in memory at once; a file that cannot be decoded is an ``ImageReadError`` naming it.
        score_thr: minimum score (default: the model config's test threshold).
        batch_size: images (or tiles) per forward pass.
        tile: tiled inference for large images (``detkit.inference.tiling``): ``(h, w)``, ``"H,W"``, an int
            (whole pixels >= 32), or a dict ``{size, overlap, whole_image, nms_thr, merge_edges, ios_thr,
            edge_margin, max_per_img, batch_size}`` (``overlap``: one fraction in [0, 1), or an equal pair);
            None runs each image whole.
        channel_order: ``'rgb'`` or ``'bgr'``, the channel order of numpy inputs.
        tta: test-time augmentation (``detkit.inference.tta``): True for the default views (scales 0.83, 1,
            1.2, each also mirrored; detections merged by class-aware NMS), a dict of ``TTAOptions``
            (``scales``, ``flip``, ``merge`` 'nms' | 'wbf', ``iou_thr``, ``conf_type``, ``max_per_img``) or
            ``TTAOptions``; for a list of models without ``tta`` each model runs once (merged by NMS).
        progress: a tqdm bar over the images on stderr: True always, False never, None (default) for more than
            ``runner.PROGRESS_MIN_IMAGES`` (8) images and more than one batch, when stderr is a terminal or a
            notebook's output (never in a log file, a pipe or a test's captured output).
        **kwargs: none taken: Ultralytics' keywords (``conf``, ``iou``, ``imgsz``, ``device``, ...) are one
            TypeError naming detkit's equivalent of each (``ULTRALYTICS_KEYWORDS``).

    Returns:
        per input ``boxes`` float32 [N,4] xyxy in the input's pixels, ``scores`` [N], ``labels`` int64 [N]
        (``model.class_names[label]``), ``masks`` bool [N,H,W] for instance models, ``sem_seg`` int64 [H,W]
        for segmentors; for classifiers ``scores`` float32 [C] (class probabilities) and ``labels`` int64 [k]
        (the top-k classes, most likely first; k = the config's ``model.topk``). A single (non-list) input
        gives a single dict.
    """
    from detkit.inference.arguments import check_channel_order, check_count, check_model, check_score_thr
    from detkit.inference.ensemble import Ensemble, as_ensemble
    from detkit.inference.inputs import LazyImages, predict_items, warn_low_uint16
    from detkit.inference.runner import check_image_input
    from detkit.inference.tiling import parse_tile

    if kwargs:
        raise _unknown_keywords(kwargs)
    check_model(model, "predict")
    score_thr = check_score_thr(score_thr, "predict")
    batch_size = check_count(batch_size, "batch_size", "predict")
    channel_order = check_channel_order(channel_order, "predict")
    progress = _check_progress(progress, "predict")
    items, single = predict_items(inputs, "predict")
    warn_low_uint16(items, "predict")  # once for the call, not once per image
    for item in items:  # every input checked before any work; files decoded one batch at a time
        check_image_input(item, "predict")
    images = LazyImages(items, channel_order, "predict")
    try:
        options = parse_tile(tile)
    except ValueError as e:
        raise ValueError(f"predict: {e}") from None
    if options is not None and isinstance(model, Classifier):
        raise ValueError("predict: tile is for detectors and segmentors; a Classifier classifies whole images")
    model = as_ensemble(model, tta)
    if options is not None and isinstance(model, Ensemble):
        raise ValueError("predict: tta (and ensembles) and tile do not combine; run one or the other")
    results = _run(model, images, options, score_thr, batch_size, progress)
    return results[0] if single else results


def _check_progress(progress: Any, who: str) -> bool | None:
    """``progress``: True, False or None (auto)."""
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"{who}: progress must be True, False or None (a bar for long inputs), got {progress!r}")
    return progress


def _run(
    model: nn.Module, images: Sequence, options: Any, score_thr: float | None, batch_size: int, progress: Any
) -> list[dict]:
    """The results of ``images`` (RGB uint8 arrays; ``inputs.LazyImages`` reads them as they are indexed), whole
    ``batch_size`` at a time or tiled (``options``) one image at a time, with a progress bar as ``progress`` says
    (``runner.progress_bar``)."""
    from detkit.inference.runner import predict_arrays, progress_bar
    from detkit.inference.tiling import predict_tiled

    bar = progress_bar(len(images), batch_size if options is None else 1, progress)
    update = None if bar is None else bar.update
    try:
        if options is None:
            return predict_arrays(model, images, score_thr, batch_size, on_batch=update)
        results = []
        for index in range(len(images)):  # no reference kept: one decoded image at a time
            results.append(predict_tiled(model, images[index], options, score_thr, batch_size))
            if update is not None:
                update(1)
        return results
    finally:
        if bar is not None:
            bar.close()
