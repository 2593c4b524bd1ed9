"""Decoded images kept for the next epoch: in RAM (``cache: ram``) or as ``.npy`` files (``cache: disk``).

A dataset builds one :class:`ImageCache` and reads every image through :meth:`ImageCache.read`. An entry
is keyed by the file's real path, modification time (ns) and size, so a file changed on disk is read
again. :meth:`ImageCache.fill` decodes every image once, up front, in threads (OpenCV releases the GIL),
in the main process: DataLoader workers started afterwards by ``fork`` share the RAM cache's pages.
Before filling the RAM cache, its size is estimated from a sample of the images; when it would take more
than ``max_share`` of the available memory, the cache is switched off with a warning (``cache: disk``
holds any size). The disk cache writes each file through a temporary name + rename (workers and
processes may share a folder) and keeps one file per image: a changed image replaces its old entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from detkit.data.image_io import ImageReadError, read_image

__all__ = ["CACHE_MODES", "CacheMode", "ImageCache", "available_memory", "default_cache_dir"]

CacheMode = Literal["ram", "disk", False] | None
CACHE_MODES = ("ram", "disk", False, None)
SAMPLE = 16  # images decoded to estimate the cache's size


def default_cache_dir() -> Path:
    """``$DETKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/detkit/images`` (``~/.cache/detkit/images``)."""
    if os.environ.get("DETKIT_CACHE_DIR"):
        return Path(os.environ["DETKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "detkit" / "images"


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``, else psutil); None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def _key(path: str) -> tuple[str, int, int] | None:
    """``(real path, mtime_ns, size)`` of an image file, None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), st.st_mtime_ns, st.st_size


class ImageCache:
    """Read images (:func:`detkit.data.image_io.read_image`) through a RAM or disk cache, or straight.

    Args:
        mode: ``'ram'``, ``'disk'``, or ``False`` / ``None`` (no cache: every read decodes the file).
        cache_dir: folder of the disk cache (default :func:`default_cache_dir`).
        owner: the dataset, named in warnings (e.g. its annotation file).
        max_share: the RAM cache may take at most this share of the available memory.
        workers: threads that decode images in :meth:`fill`.

    Attributes: ``mode`` (None once switched off), ``hits`` / ``misses`` (reads served from the cache /
    decoded), ``nbytes`` (bytes held in RAM), ``cache_dir`` (disk mode).
    """

    def __init__(
        self,
        mode: CacheMode = None,
        cache_dir: str | os.PathLike | None = None,
        owner: str = "dataset",
        max_share: float = 0.5,
        workers: int | None = None,
    ):
        if mode not in CACHE_MODES:
            raise ValueError(
                f"{owner}: cache must be 'ram' (decoded images in memory), 'disk' (.npy files in cache_dir) "
                f"or false, got {mode!r}"
            )
        self.mode = mode or None
        self.owner, self.max_share = owner, max_share
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.hits = self.misses = self.nbytes = 0
        self._ram: dict[str, tuple[tuple, np.ndarray]] = {}
        self._lock = threading.Lock()
        if self.mode == "disk":
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValueError(
                    f"{owner}: cannot create the image cache folder {self.cache_dir} ({e.strerror}); "
                    "give a writable cache_dir"
                ) from e

    def read(self, path: str | os.PathLike) -> np.ndarray:
        """The image ``uint8 [H, W, 3]`` RGB: from the cache when its entry matches the file, else decoded (and kept).

        Raises :class:`ImageReadError` as ``read_image`` does (an unreadable file is never cached).
        """
        image, shared = self._get(os.fspath(path))
        return image.copy() if shared else image  # the pipeline may change the sample's image in place

    def _get(self, path: str) -> tuple[np.ndarray, bool]:
        """The image and whether it is the RAM cache's own array."""
        key = _key(path) if self.mode else None
        if key is None:
            return read_image(path), False
        image = self._ram_get(key) if self.mode == "ram" else self._disk_get(key)
        with self._lock:  # fill() reads in threads
            self.hits += image is not None
            self.misses += image is None
        if image is not None:
            return image, self.mode == "ram"
        image = read_image(path)
        if self.mode == "ram":
            with self._lock:
                self._ram[key[0]] = (key, image)
                self.nbytes += image.nbytes
            return image, True
        self._disk_put(key, image)
        return image, False

    def _ram_get(self, key: tuple) -> np.ndarray | None:
        entry = self._ram.get(key[0])
        if entry is None:
            return None
        if entry[0] != key:  # the file changed since it was cached
            with self._lock:
                if self._ram.pop(key[0], None) is not None:
                    self.nbytes -= entry[1].nbytes
            return None
        return entry[1]

    def disk_path(self, key: tuple) -> Path:
        """The ``.npy`` file of a key: ``<hash of the path>-<mtime_ns>-<size>.npy``."""
        digest = hashlib.sha1(key[0].encode("utf-8", "surrogatepass")).hexdigest()[:20]
        return self.cache_dir / f"{digest}-{key[1]}-{key[2]}.npy"

    def _disk_get(self, key: tuple) -> np.ndarray | None:
        file = self.disk_path(key)
        try:
            image = np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent, or cut short: decode again
            return None
        ok = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        return image if ok else None

    def _disk_put(self, key: tuple, image: np.ndarray) -> None:
        """Write the entry (temporary file + rename) and delete the entries of older versions of the file."""
        file = self.disk_path(key)
        for old in self.cache_dir.glob(file.name.split("-", 1)[0] + "-*.npy"):
            if old != file:
                old.unlink(missing_ok=True)
        tmp = file.with_name(f".{file.stem}.{os.getpid()}.tmp.npy")
        try:
            np.save(tmp, image, allow_pickle=False)
            os.replace(tmp, file)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"{self.owner}: cannot write the image cache file {file} ({e.strerror})", stacklevel=3)

    def fill(self, paths: Sequence[str | os.PathLike], progress: bool = True) -> None:
        """Decode every image of ``paths`` into the cache now (unreadable ones are left to the dataset's read).

        A RAM cache estimated larger than ``max_share`` of the available memory (a disk cache larger than the
        free disk space) is switched off with a warning, after the sample decoded for the estimate.
        """
        if not self.mode or not paths:
            return
        paths = [os.fspath(p) for p in paths]
        step = max(1, len(paths) // SAMPLE)
        sample = paths[::step][:SAMPLE]
        self._read_all(sample, progress=False)
        sizes = [self._held(p) for p in sample]
        sizes = [s for s in sizes if s]
        if sizes and not self._fits(int(np.mean(sizes) * len(paths))):
            return
        done = set(sample)
        self._read_all([p for p in paths if p not in done], progress)

    def _held(self, path: str) -> int:
        key = _key(path)
        if key is None:
            return 0
        if self.mode == "ram":
            entry = self._ram.get(key[0])
            return entry[1].nbytes if entry else 0
        file = self.disk_path(key)
        return file.stat().st_size if file.is_file() else 0

    def _fits(self, estimate: int) -> bool:
        """Whether a cache of ``estimate`` bytes fits; if not, switch the cache off with a warning."""
        if self.mode == "ram":
            avail = available_memory()
            if avail is None or estimate <= self.max_share * avail:
                return True
            where = f"{self.max_share:.0%} of the {avail / 2**30:.1f} GiB of memory available"
            fix = "use cache: disk, or cache: false"
        else:
            avail = shutil.disk_usage(self.cache_dir).free
            if estimate <= avail:
                return True
            where = f"the {avail / 2**30:.1f} GiB free in {self.cache_dir}"
            fix = "give another cache_dir, or cache: false"
        warnings.warn(
            f"{self.owner}: the decoded images would take about {estimate / 2**30:.1f} GiB, more than {where}; "
            f"the {self.mode} image cache is off ({fix})",
            stacklevel=3,
        )
        self.clear()
        self.mode = None
        return False

    def _read_all(self, paths: list[str], progress: bool) -> None:
        from tqdm import tqdm

        def one(p: str) -> None:
            with contextlib.suppress(ImageReadError):
                self._get(p)

        with ThreadPoolExecutor(self.workers) as pool:
            bar = tqdm(
                pool.map(one, paths),
                total=len(paths),
                desc=f"caching images ({self.mode})",
                unit="img",
                disable=not progress or len(paths) < 2 * SAMPLE,
                leave=False,
            )
            for _ in bar:
                pass

    def __getstate__(self) -> dict:  # DataLoader workers started by spawn get a copy (locks don't pickle)
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget the RAM entries (the disk cache's files stay for the next run)."""
        self._ram.clear()
        self.nbytes = 0

    def __repr__(self) -> str:
        where = f", {self.cache_dir}" if self.mode == "disk" else f", {self.nbytes / 2**20:.1f} MiB"
        return f"ImageCache({self.mode}{where if self.mode else ''}, hits={self.hits}, misses={self.misses})"
