"""Data-loading throughput: images per second through a DataLoader (tools/benchmark.py --task data)."""

from __future__ import annotations

import time

from torch.utils.data import DataLoader

from detkit.data.build import set_loader_epoch


def measure_throughput(loader: DataLoader, num_iters: int, warmup: int = 2) -> dict[str, float]:
    """Time ``num_iters`` batches after ``warmup`` ones (worker start-up excluded); cycles epochs as needed.

    Returns:
        ``images_per_s``, ``ms_per_batch``, ``images``, ``batches``, ``seconds``.
    """
    epoch = 0

    def batches():
        nonlocal epoch
        while True:
            set_loader_epoch(loader, epoch)
            n = 0
            for b in loader:
                n += 1
                yield b
            if n == 0:
                raise ValueError("the data loader yields no batches (empty dataset?)")
            epoch += 1

    it = batches()
    try:
        for _ in range(warmup):
            next(it)
        images, t0 = 0, time.perf_counter()
        for _ in range(num_iters):
            b = next(it)
            images += 0 if b is None else int(b["images"].shape[0])
        dt = time.perf_counter() - t0
    finally:
        it.close()
    return {
        "images_per_s": images / dt if dt > 0 else float("inf"),
        "ms_per_batch": 1000 * dt / max(1, num_iters),
        "images": float(images),
        "batches": float(num_iters),
        "seconds": dt,
    }
