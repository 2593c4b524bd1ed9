"""The classical baseline of docs/classification.md: an RBF support-vector machine on raw pixels.

``python tests/engine/svm_baseline.py --digits OUT`` writes scikit-learn's bundled 8x8 digits (1797 grey images,
10 classes) as OUT/train/<digit>/ and OUT/val/<digit>/ (a stratified 80 / 20 split; ``--digits OUT SEED`` picks
another split than seed 0): a small low-resolution
set that is not the shapes data, for the generality check.

``python tests/engine/svm_baseline.py DATA_DIR [DATA_DIR ...]`` prints the top-1 of scikit-learn's ``SVC`` (RBF,
gamma 'scale', C chosen by 3-fold cross-validation among 1, 10, 100 on the training split) trained on the raw
pixels (0..1) of DATA_DIR/train/<class>/* and scored on DATA_DIR/val/<class>/*, the split the detkit recipes use.
scikit-learn is a test-only dependency (setup.cfg's ``peers`` extra).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np


def load_pixels(split_dir: str | Path, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw pixels float [N, H*W*channels] in 0..1 (as the files store them: grey stays grey) and labels [N]."""
    root = Path(split_dir)
    classes = classes or sorted(d.name for d in root.iterdir() if d.is_dir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()) if (root / name).is_dir() else []:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            xs.append(image.reshape(-1).astype(np.float32) / 255.0)
            ys.append(label)
    return np.stack(xs), np.array(ys), classes


def svm_top1(data_dir: str | Path, cs: tuple[float, ...] = (1.0, 10.0, 100.0), n_jobs: int = 1) -> dict:
    """Fit the SVC on DATA_DIR/train, score on DATA_DIR/val; returns top1, the chosen C and the seconds taken."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    start = time.perf_counter()
    x, y, classes = load_pixels(Path(data_dir) / "train")
    xv, yv, _ = load_pixels(Path(data_dir) / "val", classes)
    search = GridSearchCV(SVC(kernel="rbf", gamma="scale"), {"C": list(cs)}, cv=3, n_jobs=n_jobs).fit(x, y)
    top1 = float((search.predict(xv) == yv).mean())
    return {
        "top1": top1,
        "C": search.best_params_["C"],
        "train": len(y),
        "val": len(yv),
        "seconds": time.perf_counter() - start,
    }


def write_digits(out_dir: str | Path, split_seed: int = 0) -> Path:
    """scikit-learn's digits (values 0..16 scaled to 0..255) as 8x8 grey PNGs in class folders, 80 / 20 split.

    ``split_seed`` picks the stratified split (0: the split of docs/classification.md's first table; others give
    fresh validation images that no recipe choice was made on).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    idx = np.arange(len(images))
    train, val = train_test_split(idx, test_size=0.2, stratify=digits.target, random_state=split_seed)
    for split, ids in (("train", train), ("val", val)):
        for i in sorted(ids):
            folder = Path(out_dir) / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:04d}.png"), images[i])
    return Path(out_dir)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--digits"]:  # --digits OUT [SPLIT_SEED]
        print(f"wrote {write_digits(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)}")
        sys.exit(0)
    for d in sys.argv[1:]:
        r = svm_top1(d, n_jobs=-1)
        print(
            f"{d}: RBF SVC top-1 {r['top1']:.4f} (C={r['C']:g}, {r['train']} train / {r['val']} val, {r['seconds']:.0f}s)"
        )
