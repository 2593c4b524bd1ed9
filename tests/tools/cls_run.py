"""A tiny trained classifier (config.yaml + best.pth) for the tool tests: classification shapes, 2 epochs."""

from __future__ import annotations

from pathlib import Path

from detkit.data.synthetic_cls import make_shapes_cls

CONFIG = Path(__file__).resolve().parents[2] / "detkit" / "configs" / "cls" / "resnet18_shapes.yaml"


def train_tiny_classifier(root: Path, epochs: int = 2) -> dict[str, Path]:
    """Train the packaged ResNet-18 recipe for ``epochs`` on 6 / 3 images per class; returns the paths
    ``config`` (the run's config.yaml), ``checkpoint`` (best.pth), ``train`` / ``val`` (class folders)."""
    from detkit.config import load_config
    from detkit.engine import Trainer

    data = make_shapes_cls(root / "data", num_train=6, num_val=3, size=32)
    cfg = load_config(CONFIG)
    cfg["data"].update(batch_size=8, num_workers=0)
    cfg["data"]["train"]["img_dir"] = str(data["train_img_dir"])
    cfg["data"]["val"].update(img_dir=str(data["val_img_dir"]), classes=str(data["train_img_dir"]))
    cfg["train"].update(max_epochs=epochs, eval_interval=epochs, log_interval=1)
    work = root / "run"
    Trainer(cfg, work_dir=work, device="cpu").fit()
    return {
        "config": work / "config.yaml",
        "checkpoint": work / "best.pth",
        "train": data["train_img_dir"],
        "val": data["val_img_dir"],
        "work_dir": work,
    }
