"""Ultralytics' ``yolo val`` settings on ``detkit eval``'s command line (``conf=0.25 imgsz=640 batch=16``,
``model=runs/A/best.pth``, ``--batch 4``) in detkit's words: :func:`translate_eval` gives one setting's form for
the config at hand, :func:`eval_name` the Ultralytics name of a word (``detkit.cli.ultralytics_args`` uses both).
"""

from __future__ import annotations

from typing import Any

from detkit.ultralytics_names import CONFIG_KEYS, FALSE, Translation, canonical, translate

__all__ = ["EVAL_NAMES", "eval_name", "translate_eval"]

# yolo val's own settings (on top of the training names that ``canonical`` knows)
EVAL_NAMES = ("conf", "iou", "max_det", "split", "save_json", "plots", "half", "augment")
SWITCHES = ("save_json", "plots", "half", "augment")  # Ultralytics takes them as bare words too
EVAL_NOTES = {
    "plots": "`detkit analyze` draws the PR curves, the confusion matrix and the error breakdown (docs/analysis.md)",
    "half": "not offered: the evaluation runs in float32",
    "project": "detkit eval writes where --out (metrics), --per-class and --save-json say",
    "name": "detkit eval writes where --out (metrics), --per-class and --save-json say",
}
# (the model's test settings: the key of each head kind, in the order they are looked for)
HEAD_KEYS = ("model.head", "model.head.det", "model.box_head")


def eval_name(name: str) -> str | None:
    """The Ultralytics name of ``name`` on ``detkit eval`` (``--batch`` -> ``batch``, ``conf``), or None."""
    key = name.lstrip("-").replace("-", "_").lower()
    return key if key in EVAL_NAMES else canonical(name)


def _head_key(cfg: dict | None, leaf: str) -> tuple[str, str]:
    """``(key, note)``: the config key of the model's test setting ``leaf`` (``score_thr``, ``nms_thr``,
    ``max_per_img``) in ``cfg``; without it, the YOLO configs' key and the others' in the note."""
    model = (cfg or {}).get("model") if isinstance(cfg, dict) else None
    for key in HEAD_KEYS:
        node: Any = {"model": model}
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            return f"{key}.{leaf}", f"now {node[leaf]}"
    return f"model.head.{leaf}", f"the YOLO configs' key; R-CNN: model.box_head.{leaf}, YOLO-seg: model.head.det.{leaf}"


def _val_size(value: Any, cfg: dict | None) -> Translation:
    """``imgsz``: the size keys of the validation pipeline only (the training ones do nothing here)."""
    found = translate("imgsz", value, cfg)
    sets = [s for s in found.sets if s.startswith("data.val.")]
    if not sets:
        return Translation(
            "imgsz",
            note="set the resize of the config's data.val pipeline, e.g. a YOLO config's "
            "data.val.pipeline.0.size (LetterBox)",
        )
    return Translation("imgsz", sets=sets)


def translate_eval(name: str, value: Any, cfg: dict | None = None) -> Translation | None:
    """detkit eval's form of the Ultralytics ``yolo val`` setting ``name=value`` for the config ``cfg``."""
    name = eval_name(name) or ""
    text = str(value)
    if name in SWITCHES and text.lower() in FALSE:
        return Translation(name, note="off unless given: leave it out")
    if name in ("conf", "iou", "max_det"):
        leaf = {"conf": "score_thr", "iou": "nms_thr", "max_det": "max_per_img"}[name]
        key, note = _head_key(cfg, leaf)
        if name == "max_det":
            note += "; --max-dets N sets how many detections per image COCO AP counts (100)"
        return Translation(name, sets=[f"{key}={value}"], note=note)
    if name == "batch":
        return Translation(name, sets=[f"data.val_batch_size={value}"], note="images per forward pass")
    if name == "imgsz":
        return _val_size(value, cfg)
    if name == "model":
        return Translation(name, checkpoint=text, note="CONFIG - takes the config the checkpoint holds")
    if name == "split":
        if text not in ("val", "test"):
            return Translation(name, note=f"detkit eval scores the val or test split; {text}: not offered")
        return Translation(name, flags=["--split", text])
    if name == "save_json":
        return Translation(name, flags=["--save-json", "predictions.json"], note="COCO results, as scored")
    if name == "augment":
        return Translation(name, flags=["--tta"])
    if name in EVAL_NOTES:
        return Translation(name, note=EVAL_NOTES[name])
    if name in CONFIG_KEYS and name != "workers":
        return Translation(name, note="a training setting: detkit eval does not train; drop it")
    return translate(name, value, cfg)
